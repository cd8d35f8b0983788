"""JobSpec and TaskSpec fields the contract carries as messages and enums (locks, retried
failures, fact conditions, continuation rule kinds), converted to and from the domain's words;
and, for one release, the deprecated text fields they replace (README: "Changes to the
contract"). When those go, so do the branches marked deprecated here.
"""

from __future__ import annotations

import json

from jobplane.v1 import job_pb2

from ..domain.facts import MAX_CONDITIONS, parse_conditions
from ..domain.limits import check_entries, shown
from ..domain.model import Notify, Status
from ..domain.notifications import MAX_NOTIFY, check_notify
from ..domain.timing import TimingRule
from ..errors import InvalidArgument


def refuse_deprecated(m, path: str, deprecated: tuple[str, ...], new: str) -> None:
    """A spec may say a thing in the deprecated fields or in `new`, not in both."""
    given = {field.name for field, _ in m.ListFields()}
    for name in deprecated:
        if name in given:
            raise InvalidArgument(f"{path}.{name}", f"is deprecated and {path}.{new} is set too; "
                                                    f"set it in {path}.{new} only")


def retry_on_from_proto(m: job_pb2.TaskSpec, path: str) -> tuple[str, ...]:
    """The domain's retry rules ("error", "timeout", "exit_code:N") from `retry_failures`, or
    the deprecated `retry_on` when it is unset (its words are checked by the domain)."""
    if not m.HasField("retry_failures"):
        return tuple(m.retry_on)
    refuse_deprecated(m, path, ("retry_on",), "retry_failures")
    r = m.retry_failures
    check_entries(f"{path}.retry_failures.exit_codes", r.exit_codes, 100)
    return (("error",) if r.any else ()) + (("timeout",) if r.timeout else ()) + \
        tuple(f"exit_code:{code}" for code in r.exit_codes)


def retry_failures_to_proto(retry_on: tuple[str, ...]) -> job_pb2.RetryFailures | None:
    if not retry_on:
        return None
    codes = [int(rule.partition(":")[2]) for rule in retry_on if rule.startswith("exit_code:")]
    return job_pb2.RetryFailures(any="error" in retry_on, timeout="timeout" in retry_on, exit_codes=codes)


_RULE_KINDS = {job_pb2.CONTINUATION_RULE_KIND_END_OF_MONTH: "end_of_month",
               job_pb2.CONTINUATION_RULE_KIND_END_OF_QUARTER: "end_of_quarter",
               job_pb2.CONTINUATION_RULE_KIND_END_OF_YEAR: "end_of_year",
               job_pb2.CONTINUATION_RULE_KIND_END_OF_PERIOD: "end_of_period",
               job_pb2.CONTINUATION_RULE_KIND_DATE: "date", job_pb2.CONTINUATION_RULE_KIND_CRON: "cron"}


def rule_from_proto(path: str, r: job_pb2.ContinuationRule) -> TimingRule:
    """A timing rule by `rule_kind`, or by the deprecated `kind` word when it is unset (the
    word is checked by the domain)."""
    if r.rule_kind == job_pb2.CONTINUATION_RULE_KIND_UNSPECIFIED and r.kind:
        return TimingRule(r.kind, r.priority, r.value, r.days or 1)
    refuse_deprecated(r, path, ("kind",), "rule_kind")
    if r.rule_kind not in _RULE_KINDS:
        raise InvalidArgument(f"{path}.rule_kind", f"{'missing' if not r.rule_kind else r.rule_kind}; use "
                                                   "CONTINUATION_RULE_KIND_END_OF_MONTH, ..._DATE or ..._CRON")
    return TimingRule(_RULE_KINDS[r.rule_kind], r.priority, r.value, r.days or 1)


def rule_to_proto(rule: TimingRule) -> job_pb2.ContinuationRule:
    kinds = {word: kind for kind, word in _RULE_KINDS.items()}
    return job_pb2.ContinuationRule(rule_kind=kinds[rule.kind], priority=rule.priority, value=rule.value,
                                    days=rule.days)


_COMPARISONS = {job_pb2.COMPARISON_LESS: "<", job_pb2.COMPARISON_LESS_OR_EQUAL: "<=",
                job_pb2.COMPARISON_GREATER: ">", job_pb2.COMPARISON_GREATER_OR_EQUAL: ">=",
                job_pb2.COMPARISON_EQUAL: "=", job_pb2.COMPARISON_NOT_EQUAL: "!="}


def conditions_from_proto(m: job_pb2.JobSpec) -> tuple[str, ...]:
    """The domain's conditions ("FACT OP NUMBER") from `fact_conditions`, or the deprecated
    `conditions` when it is empty (their text is checked by the domain)."""
    if not m.fact_conditions:
        return tuple(m.conditions)
    refuse_deprecated(m, "spec", ("conditions",), "fact_conditions")
    check_entries("spec.fact_conditions", m.fact_conditions, MAX_CONDITIONS)
    return tuple(_condition_text(f"spec.fact_conditions[{i}]", c) for i, c in enumerate(m.fact_conditions))


def _condition_text(path: str, c: job_pb2.FactCondition) -> str:
    if c.op not in _COMPARISONS:
        raise InvalidArgument(f"{path}.op", f"{c.op} is not a comparison; use COMPARISON_LESS, COMPARISON_GREATER, ...")
    if not abs(c.value) < 1e18:
        raise InvalidArgument(f"{path}.value", f"{c.value} is out of range; compare with a number between "
                                               "-1e18 and 1e18")
    text = f"{c.fact}{_COMPARISONS[c.op]}{_decimal(c.value)}"
    try:
        parse_conditions(path, [text])
    except InvalidArgument:
        raise InvalidArgument(f"{path}.fact", f"{shown(c.fact)} is not a fact name; use a letter or _, then "
                                              "letters, digits, _ and . (at most 64), e.g. load_average") from None
    return text


def _decimal(value: float) -> str:
    """The number as the condition text writes it: digits, no exponent, no trailing ".0"."""
    text = repr(value) if "e" not in repr(value) else f"{value:.17f}".rstrip("0").rstrip(".")
    return text.removesuffix(".0")


def conditions_to_proto(conditions: tuple[str, ...]) -> list[job_pb2.FactCondition]:
    ops = {text: op for op, text in _COMPARISONS.items()} | {"==": job_pb2.COMPARISON_EQUAL}
    return [job_pb2.FactCondition(fact=c.fact, op=ops[c.op], value=c.value)
            for c in parse_conditions("spec.conditions", conditions)]


_LOCK_MODES = {job_pb2.LOCK_MODE_READ: "read", job_pb2.LOCK_MODE_WRITE: "write"}


def locks_from_proto(m: job_pb2.JobSpec) -> dict[str, str]:
    """resource -> "read"/"write" (the domain's words) from `resource_locks`, or from the
    deprecated `locks` when it is empty (their words are checked by the domain)."""
    if not m.resource_locks:
        return dict(m.locks)
    refuse_deprecated(m, "spec", ("locks",), "resource_locks")
    for resource, mode in m.resource_locks.items():
        if mode not in _LOCK_MODES:
            raise InvalidArgument(f"spec.resource_locks[{json.dumps(resource)}]",
                                  f"{mode} is not a lock mode; use LOCK_MODE_READ or LOCK_MODE_WRITE")
    return {resource: _LOCK_MODES[mode] for resource, mode in m.resource_locks.items()}


def locks_to_proto(locks: dict[str, str]) -> dict[str, int]:
    modes = {word: mode for mode, word in _LOCK_MODES.items()}
    return {resource: modes[word.lower()] for resource, word in locks.items()}


_CONDITION_LOST = {job_pb2.CONDITION_LOST_ACTION_UNSPECIFIED: "", job_pb2.CONDITION_LOST_ACTION_CONTINUE: "continue",
                   job_pb2.CONDITION_LOST_ACTION_SUSPEND: "suspend", job_pb2.CONDITION_LOST_ACTION_REQUEUE: "requeue"}


def condition_lost_from_proto(m: job_pb2.JobSpec) -> str:
    """"" / "continue" / "suspend" / "requeue" (the domain's words) from `on_condition_lost`."""
    if m.on_condition_lost not in _CONDITION_LOST:
        raise InvalidArgument("spec.on_condition_lost", f"{m.on_condition_lost} is not an action; use "
                                                        "CONDITION_LOST_ACTION_CONTINUE, _SUSPEND or _REQUEUE")
    return _CONDITION_LOST[m.on_condition_lost]


def condition_lost_to_proto(action: str) -> int:
    return {word: value for value, word in _CONDITION_LOST.items()}[action]


_HOLD_MODES = {job_pb2.HOLD_MODE_UNSPECIFIED: "", job_pb2.HOLD_MODE_SUSPEND: "suspend",
               job_pb2.HOLD_MODE_REQUEUE: "requeue"}


def hold_mode(path: str, mode: int) -> str:
    """"" (a plain hold), "suspend" or "requeue" (the domain's words) from a HoldMode."""
    if mode not in _HOLD_MODES:
        raise InvalidArgument(path, f"{mode} is not a hold mode; use HOLD_MODE_SUSPEND, HOLD_MODE_REQUEUE or leave "
                                    "it unset for a plain hold")
    return _HOLD_MODES[mode]


def notify_from_proto(m: job_pb2.JobSpec) -> tuple[Notify, ...]:
    """The job's notify entries, checked (their `on` statuses by name, as users write them)."""
    check_entries("spec.notify", m.notify, MAX_NOTIFY)
    notify = tuple(notify_entry_from_proto(n, f"spec.notify[{i}]") for i, n in enumerate(m.notify))
    check_notify(notify)
    return notify


def notify_entry_from_proto(n: job_pb2.Notify, path: str) -> Notify:
    """One notify entry, its statuses by name (the caller checks the rest: check_notify)."""
    for j, status in enumerate(n.on):
        if status not in Status._value2member_map_:
            raise InvalidArgument(f"{path}.on[{j}]", f"{status} is not a normalized status; use "
                                                     "NORMALIZED_STATUS_FAILURE, ..._SUCCESS, ...")
    return Notify(tuple(Status(s).name for s in n.on), n.webhook, tuple(n.command))


def notify_to_proto(notify: tuple[Notify, ...]) -> list[job_pb2.Notify]:
    return [job_pb2.Notify(on=[Status[name].value for name in n.on], webhook=n.webhook, command=list(n.command))
            for n in notify]
