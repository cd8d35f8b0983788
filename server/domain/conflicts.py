"""The conflict matrix: which jobs must not run at the same time. A rule is either
exclusive (jobs matching one selector never run with jobs matching another) or a lock on a
named resource (many readers or one writer). Jobs may also declare locks themselves.
Pure values and functions; the engine's use of them is in holds.py."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field

from ..errors import InvalidArgument

EXCLUSIVE, LOCK = 1, 2  # jobplane.v1.ConflictKind
READ, WRITE = 1, 2  # jobplane.v1.LockMode
MODE_NAMES = {"read": READ, "write": WRITE}
RULE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
RESOURCE = re.compile(r"[A-Za-z0-9_.:/\-]{1,200}")


@dataclass(frozen=True)
class Selector:
    """Which jobs: every field that is set must match."""

    job_class: str = ""
    name: str = ""  # a glob
    labels: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.job_class or self.name or self.labels)

    def matches(self, job_class: str, name: str, labels: dict[str, str]) -> bool:
        return ((not self.job_class or self.job_class == job_class)
                and (not self.name or fnmatch.fnmatchcase(name, self.name))
                and all(labels.get(k) == v for k, v in self.labels.items()))

    def describe(self) -> str:
        terms = ([f"class={self.job_class}"] if self.job_class else []) + ([f"name={self.name}"] if self.name else [])
        return " ".join(terms + [f"label.{k}={v}" for k, v in sorted(self.labels.items())])


@dataclass(frozen=True)
class ConflictRule:
    name: str
    kind: int
    jobs: Selector
    other: Selector = field(default_factory=Selector)
    resource: str = ""
    mode: int = 0
    created_by: str = ""
    create_time: float = 0.0

    def describe(self) -> str:
        if self.kind == LOCK:
            return f"{self.jobs.describe()} take a {_mode_name(self.mode)} lock on {self.resource}"
        if not self.other:
            return f"jobs with {self.jobs.describe()} never run together"
        return f"{self.jobs.describe()} never with {self.other.describe()}"


@dataclass(frozen=True)
class JobFacts:
    """What rules look at in a job."""

    id: int
    name: str
    job_class: str
    labels: dict[str, str]
    locks: dict[str, int]  # resource -> READ/WRITE the job declared itself


def selector_for(term: str) -> Selector:
    """The selector of a learned-conflict term: "class=X" or "name=Y" (reruns.job_class)."""
    key, _, value = term.partition("=")
    return Selector(job_class=value) if key == "class" else Selector(name=value)


def covers(rules, a: str, b: str) -> bool:
    """Whether an exclusive rule already keeps apart the jobs of terms `a` and `b`."""
    def matches(s: Selector, term: str) -> bool:
        key, _, value = term.partition("=")
        return not s.labels and (s.matches(value, "", {}) if key == "class" else s.matches("", value, {}))

    return any(r.kind == EXCLUSIVE and ((matches(r.jobs, a) and matches(r.other or r.jobs, b))
                                        or (matches(r.jobs, b) and matches(r.other or r.jobs, a))) for r in rules)


def check_rule(rule: ConflictRule) -> ConflictRule:
    """The rule if it is well formed; else InvalidArgument naming the field and the fix."""
    if not RULE_NAME.fullmatch(rule.name):
        raise InvalidArgument("rule.name", f"{rule.name!r}: use 1 to 64 letters, digits, '-', '_' or '.'")
    if not rule.jobs:
        raise InvalidArgument("rule.jobs", "say which jobs the rule is about: a job_class, a name pattern or labels")
    if rule.kind == EXCLUSIVE:
        if rule.resource or rule.mode:
            raise InvalidArgument("rule.resource", "an exclusive rule names no resource or mode; "
                                                   "use kind LOCK for a lock on a resource")
    elif rule.kind == LOCK:
        if not RESOURCE.fullmatch(rule.resource):
            raise InvalidArgument("rule.resource", f"{rule.resource!r}: name the resource the lock is on "
                                                   "(letters, digits and _ . : / -)")
        if rule.mode not in (READ, WRITE):
            raise InvalidArgument("rule.mode", "must be LOCK_MODE_READ (shared) or LOCK_MODE_WRITE (alone)")
        if rule.other:
            raise InvalidArgument("rule.other", "a lock rule has one side (jobs); conflicts come from the lock modes")
    else:
        raise InvalidArgument("rule.kind", "must be CONFLICT_KIND_EXCLUSIVE or CONFLICT_KIND_LOCK")
    return rule


def parse_locks(path: str, locks: dict[str, str]) -> dict[str, int]:
    """A job's own `locks` (resource -> "read"/"write") as resource -> READ/WRITE."""
    out = {}
    for resource, mode in locks.items():
        if not RESOURCE.fullmatch(resource):
            raise InvalidArgument(f"{path}[{json.dumps(resource)}]", "name the resource with letters, digits and _ . : / -")
        if mode.lower() not in MODE_NAMES:
            raise InvalidArgument(f"{path}[{json.dumps(resource)}]", f"{mode!r} is not a lock mode; use read or write")
        out[resource] = MODE_NAMES[mode.lower()]
    return out


def locks_of(job: JobFacts, rules: list[ConflictRule]) -> dict[str, tuple[int, str]]:
    """resource -> (mode, rule name or "" for the job's own) of every lock the job takes;
    the strongest mode wins where several give one."""
    out: dict[str, tuple[int, str]] = {r: (m, "") for r, m in job.locks.items()}
    for rule in rules:
        if rule.kind == LOCK and rule.jobs.matches(job.job_class, job.name, job.labels):
            if rule.mode > out.get(rule.resource, (0, ""))[0]:
                out[rule.resource] = (rule.mode, rule.name)
    return out


@dataclass(frozen=True)
class Clash:
    """Why two jobs may not run together."""

    rule: str  # the rule's name; "" for locks both jobs declared themselves
    short: str  # for hold reasons: "rule loads", "write lock on orders (rule w)"
    detail: str  # what the rule says, or which locks collide


def conflict(job: JobFacts, other: JobFacts, rules: list[ConflictRule]) -> Clash | None:
    """Why `job` may not run beside `other` (an exclusive rule, or a contended resource)."""
    for rule in rules:
        if rule.kind == EXCLUSIVE and _exclusive(rule, job, other):
            return Clash(rule.name, f"rule {rule.name}", rule.describe())
    mine, theirs = locks_of(job, rules), locks_of(other, rules)
    for resource in sorted(mine.keys() & theirs.keys()):
        (m1, r1), (m2, r2) = mine[resource], theirs[resource]
        if WRITE in (m1, m2):
            via = r2 or r1
            short = f"{_mode_name(m2)} lock on {resource}" + (f" (rule {via})" if via else "")
            return Clash(via, short, f"it holds a {_mode_name(m2)} lock on {resource}; this job takes a "
                                     f"{_mode_name(m1)} lock")
    return None


def _exclusive(rule: ConflictRule, a: JobFacts, b: JobFacts) -> bool:
    left, right = rule.jobs, rule.other or rule.jobs
    return ((left.matches(a.job_class, a.name, a.labels) and right.matches(b.job_class, b.name, b.labels))
            or (right.matches(a.job_class, a.name, a.labels) and left.matches(b.job_class, b.name, b.labels)))


def _mode_name(mode: int) -> str:
    return "write" if mode == WRITE else "read"


__all__ = ["Clash", "ConflictRule", "JobFacts", "Selector", "check_rule", "conflict", "locks_of", "parse_locks"]
