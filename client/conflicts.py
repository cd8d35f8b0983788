"""What `Client`, `AsyncClient` and `jobplane conflicts` share for ConflictService: job selectors
as users type them (`class=etl-load name=load-* label.team=etl`), kinds and lock modes by name,
a rule from a mapping, and the requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jobplane.client.jobfile import job_spec_from_mapping
from jobplane.v1 import conflict_pb2, job_pb2

KINDS: dict[str, int] = {"exclusive": conflict_pb2.CONFLICT_KIND_EXCLUSIVE, "lock": conflict_pb2.CONFLICT_KIND_LOCK}
MODES: dict[str, int] = {"read": job_pb2.LOCK_MODE_READ, "write": job_pb2.LOCK_MODE_WRITE}
RULE_KEYS = ("name", "kind", "jobs", "other", "resource", "mode")
SELECTOR_HELP = "terms class=X, name=GLOB or label.KEY=VALUE, separated by spaces or commas; all must match"
_TERM_SEPARATOR = re.compile(r"[\s,]+")


def parse_selector(text: str) -> conflict_pb2.JobSelector:
    """`class=etl-load name=load-* label.team=etl` (spaces or commas between terms) as a JobSelector.

    Raises ValueError naming the term that is not one of class=, name= or label.KEY=.
    """
    terms = [term for term in _TERM_SEPARATOR.split(text.strip()) if term]
    if not terms:
        raise ValueError(f"empty selector; give {SELECTOR_HELP}")
    selector = conflict_pb2.JobSelector()
    for term in terms:
        _add_term(selector, term)
    return selector


def _add_term(selector: conflict_pb2.JobSelector, term: str) -> None:
    key, equals, value = term.partition("=")
    if not equals or not key or not value:
        raise ValueError(f"{term!r} is not KEY=VALUE; use class=X, name=GLOB or label.KEY=VALUE")
    if key in ("class", "name"):
        field = "job_class" if key == "class" else "name"
        if getattr(selector, field):
            raise ValueError(f"{term!r}: {key}= is given twice; a job matches only one, so keep one")
        setattr(selector, field, value)
    elif key.startswith("label.") and len(key) > len("label."):
        selector.labels[key.removeprefix("label.")] = value
    else:
        raise ValueError(f"{term!r}: unknown key {key!r}; use class=X, name=GLOB or label.KEY=VALUE")


def format_selector(selector: conflict_pb2.JobSelector) -> str:
    """The selector as `parse_selector` reads it: `class=etl name=load-* label.team=etl`; "" if empty."""
    terms = [f"class={selector.job_class}"] if selector.job_class else []
    terms += [f"name={selector.name}"] if selector.name else []
    terms += [f"label.{key}={value}" for key, value in sorted(selector.labels.items())]
    return " ".join(terms)


def parse_kind(kind: str | int) -> int:
    """The ConflictKind of "exclusive" or "lock" (any case), or a ConflictKind value; ValueError otherwise."""
    return _enum_value(kind, KINDS, "CONFLICT_KIND_", "conflict kind")


def parse_mode(mode: str | int) -> int:
    """The LockMode of "read" or "write" (any case), or a LockMode value; ValueError otherwise."""
    return _enum_value(mode, MODES, "LOCK_MODE_", "lock mode")


def _enum_value(value: str | int, names: Mapping[str, int], prefix: str, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value in names.values():
        return value
    name = str(value).strip().lower().removeprefix(prefix.lower())
    if name not in names:
        raise ValueError(f"unknown {what} {value!r}; expected one of: {', '.join(names)}")
    return names[name]


def rule_from_mapping(document: Mapping[str, Any]) -> conflict_pb2.ConflictRule:
    """A ConflictRule from `{"name": "loads", "kind": "exclusive", "jobs": "class=etl-load"}` or
    `{"name": "w", "kind": "lock", "resource": "orders", "mode": "write", "jobs": {"job_class": "etl"}}`.

    Selectors are selector text or mappings of job_class, name and labels; `kind` defaults to "lock"
    when a resource is given, else "exclusive". Raises ValueError naming the key; the server checks
    the rest (a valid name, a selector that is not empty, a mode for a lock).
    """
    unknown = [key for key in document if key not in RULE_KEYS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in a conflict rule; expected {', '.join(RULE_KEYS)}")
    resource = str(document.get("resource", ""))
    rule = conflict_pb2.ConflictRule(
        name=str(document.get("name", "")),
        kind=parse_kind(document.get("kind", "lock" if resource else "exclusive")),
        resource=resource,
        mode=parse_mode(document["mode"]) if "mode" in document else job_pb2.LOCK_MODE_UNSPECIFIED,
    )
    for side in ("jobs", "other"):
        if side in document:
            getattr(rule, side).CopyFrom(selector_of(document[side], side))
    return rule


def selector_of(value: str | Mapping[str, Any] | conflict_pb2.JobSelector, key: str = "jobs"
                ) -> conflict_pb2.JobSelector:
    """A JobSelector from selector text, a mapping (job_class, name, labels) or a JobSelector."""
    if isinstance(value, conflict_pb2.JobSelector):
        return value
    if isinstance(value, str):
        return parse_selector(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected selector text such as 'class=etl-load' or a mapping; got {value!r}")
    unknown = [name for name in value if name not in ("job_class", "name", "labels")]
    if unknown:
        raise ValueError(f"{key}.{unknown[0]}: unknown key; expected job_class, name, labels")
    labels = {str(k): str(v) for k, v in dict(value.get("labels", {})).items()}
    return conflict_pb2.JobSelector(job_class=str(value.get("job_class", "")), name=str(value.get("name", "")),
                                    labels=labels)


def rule_from_options(name: str, *, lock: str | None, mode: str | None, jobs: conflict_pb2.JobSelector,
                      other: conflict_pb2.JobSelector | None) -> conflict_pb2.ConflictRule:
    """The rule `jobplane conflicts add` describes: exclusive unless `lock` names a resource.

    Raises ValueError for --mode without --lock, --lock without --mode, or --other with --lock.
    """
    if lock is None:
        if mode is not None:
            raise ValueError("--mode goes with --lock RESOURCE; an exclusive rule has no mode")
        rule = conflict_pb2.ConflictRule(name=name, kind=conflict_pb2.CONFLICT_KIND_EXCLUSIVE, jobs=jobs)
        if other is not None:
            rule.other.CopyFrom(other)
        return rule
    if mode is None:
        raise ValueError(f"--lock {lock} needs --mode read (shared with other readers) or --mode write (alone)")
    if other is not None:
        raise ValueError("--other goes with --exclusive; a lock rule has one side, --jobs")
    return conflict_pb2.ConflictRule(name=name, kind=conflict_pb2.CONFLICT_KIND_LOCK, jobs=jobs, resource=lock,
                                     mode=parse_mode(mode))


def create_request(rule: conflict_pb2.ConflictRule | Mapping[str, Any]) -> conflict_pb2.CreateConflictRuleRequest:
    """Raises ValueError for a mapping `rule_from_mapping` cannot read; a ConflictRule is sent as it is."""
    if not isinstance(rule, conflict_pb2.ConflictRule):
        rule = rule_from_mapping(rule)
    return conflict_pb2.CreateConflictRuleRequest(rule=rule)


def check_request(job_id: str = "", spec: job_pb2.JobSpec | Mapping[str, Any] | None = None
                  ) -> conflict_pb2.CheckConflictsRequest:
    """Ask about a submitted job (`job_id`) or one not submitted yet (`spec`: a JobSpec or a job-file
    mapping; JobFileError if malformed). Raises ValueError unless exactly one is given."""
    if bool(job_id) == (spec is not None):
        raise ValueError("give job_id (a submitted job) or spec (a job not submitted yet), not both or neither")
    if spec is None:
        return conflict_pb2.CheckConflictsRequest(job_id=job_id)
    if not isinstance(spec, job_pb2.JobSpec):
        spec = job_spec_from_mapping(spec)
    return conflict_pb2.CheckConflictsRequest(spec=spec)


def describe_rule(rule: conflict_pb2.ConflictRule) -> str:
    """`class=etl-load never with class=backup`, `class=report take a read lock on orders`."""
    jobs = format_selector(rule.jobs) or "(no jobs)"
    if rule.kind == conflict_pb2.CONFLICT_KIND_LOCK:
        mode = {value: name for name, value in MODES.items()}.get(rule.mode, "?")
        return f"{jobs} take a {mode} lock on {rule.resource}"
    other = format_selector(rule.other)
    return f"{jobs} never with {other}" if other else f"{jobs} never with each other"


def blocker_line(blocker: conflict_pb2.ConflictBlocker) -> str:
    """`job 7 nightly-load (rule loads): ...` for a running job; the reason for a window or a hold."""
    if not blocker.job_id:
        return blocker.reason or f"rule {blocker.rule}"
    text = f"job {blocker.job_id} {blocker.job_name}".rstrip()
    text += f" (rule {blocker.rule})" if blocker.rule else ""
    return f"{text}: {blocker.reason}" if blocker.reason else text
