"""Normalization policies: which raw properties, from which environment, mean which normalized status.

A policy is an ordered list of rules. A rule names an environment ("process", "python",
"external", "slurm", "jobplane", or "*" for any), conditions on raw properties (all must hold) and
the status they mean. Conditions, one per raw property:

    status = "ABEND"                      shorthand for { equals = "ABEND" }
    status = { in = ["ABEND", "JCL ERROR"] }
    exit_code = { range = [1, inf] }      numbers, inclusive; an open end is null (JSON) or inf
    specific = { glob = "S0C*" }          fnmatch syntax: * ? [seq]

Matching is case-sensitive and on the raw text as reported; an integer operand is compared as
its decimal text. A range parses the raw value as a number, so "007" is in [0, 10] and "n/a"
is in no range. A condition on a property the raw values lack never holds.

Precedence, for each normalized property: the first matching rule of the user's policy, else
of the group policies in the order given, else of the default policy; nothing matches ->
UNKNOWN. The default policy in force is the built-in one (DEFAULT_POLICY, its version 1) unless
an operator stored another version; callers pass the one in force. Inside a policy "*" rules and rules naming the environment compete in list order.

Besides the status, a rule may set another normalized property of the vocabulary:
`property = "priority_class"` with `value = "HIGH" | "NORMAL" | "LOW"` (instead of `status`),
read from e.g. Slurm's QOS or an LSF queue's name. Such rules are matched by the same engine,
each property on its own: a priority-class rule never decides a status, nor the reverse.

A rule with no conditions is a catch-all for its environment; it must name one, because with
"*" it would match every raw value from everywhere and hide every later rule and policy.
"""


from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from .model import Status
from .policy_parse import parse_policy, parse_rule, policy_to_dict
from .policy_rules import (
    ANY, MAX_CONDITIONS, MAX_NAME, MAX_RULES, MAX_VALUE, MAX_VALUES, OPERATORS, PRIORITY_CLASS, PROPERTIES,
    PROPERTY_VALUES, STATUS, Condition, Equals, Glob, In, Policy, Range, Rule)
from .vocabulary import DEFAULT_RULES

__all__ = [
    "ANY", "BUILTIN_VERSION", "Condition", "DEFAULT_NAME", "DEFAULT_POLICY", "Decision", "Equals", "Glob", "In",
    "MAX_CONDITIONS", "MAX_NAME", "MAX_RULES", "MAX_VALUE", "MAX_VALUES", "OPERATORS", "PRIORITY_CLASS",
    "PROPERTIES", "PROPERTY_VALUES", "Policy",
    "Range", "Rule", "STATUS", "is_decision_reason", "normalize", "parse_policy", "parse_rule", "policy_to_dict",
    "priority_class",
    "redecide", "renormalize"]

# --- the default (enterprise) policy: its rules are data in vocabulary.py --------------------

DEFAULT_NAME = "default"
BUILTIN_VERSION = 1  # the built-in rules are the default policy's first version
DEFAULT_POLICY = parse_policy("default_policy", {"name": "default",
                                                 "rules": [{**rule, "ignore_case": True} for rule in DEFAULT_RULES]})


# --- normalization ---------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """A normalized status (or another property's value) and what decided it; `policy` is "",
    `rule_index` None and `value` "" when nothing matched."""

    status: Status
    policy: str
    rule_index: int | None
    reason: str
    value: str = ""  # what the rule set its property to: the status's name, or e.g. "HIGH"


def normalize(
    environment: str,
    raw: Mapping[str, str],
    *,
    user: Policy | None,
    groups: Sequence[Policy] = (),
    default: Policy = DEFAULT_POLICY,
    property_name: str = STATUS,
) -> Decision:
    """The normalized status of `raw` from `environment` for a user with these policies (or,
    with `property_name`, that property's value: Decision.value).

    `raw` is only read. The reason names the level (user, group, default), the policy and the
    rule, or, when nothing matched, the raw values and the policies consulted.
    """
    if user is None and not groups and len(raw) <= DECIDED_RAW:  # the server's own reading: most tasks end alike
        key = (property_name, environment, *raw.items())
        try:
            decision = default.decided.get(key)
        except TypeError:  # a value that does not hash (not a string): decided anew
            return _normalize(environment, raw, None, (), default, property_name)
        if decision is None:
            if len(default.decided) >= DECIDED_MAX:
                default.decided.clear()
            decision = default.decided[key] = _normalize(environment, raw, None, (), default, property_name)
        return decision
    return _normalize(environment, raw, user, groups, default, property_name)


DECIDED_RAW = 4  # raw properties at most, for a decision to be kept (Policy.decided)
DECIDED_MAX = 1024  # decisions kept per policy


def _normalize(environment: str, raw: Mapping[str, str], user: Policy | None, groups: Sequence[Policy],
               default: Policy, property_name: str) -> Decision:
    for level, policy in _levels(user, groups, default):
        index = policy.first_match(environment, raw, property_name=property_name)
        if index is not None:
            rule = policy.rules[index]
            return Decision(rule.status, policy.name, index,
                            f"{level} policy {policy.name!r} rules[{index}]: {rule.description}", rule.result)
    shown = ", ".join(f"{name}={value!r}" for name, value in sorted(raw.items())) or "no raw properties"
    consulted = ", ".join(f"{level} {policy.name!r}" for level, policy in _levels(user, groups, default))
    return Decision(Status.UNKNOWN, "", None, f"no rule matches {environment} with {shown} (consulted {consulted})")


# Statuses the server derives from time or its own holds rather than from raw values: a
# caller's policies re-map the raw values, never these.
_TIMELY = frozenset({Status.LATE_TO_START, Status.RUNNING_LATE})


def redecide(environment: str, raw: Mapping[str, str], stored: Status, *, user: Policy | None,
             groups: Sequence[Policy] = (), default: Policy = DEFAULT_POLICY) -> Decision | None:
    """The decision a caller with these policies gets for something stored with `stored` (its
    status under the default policy, plus lateness and holds); None where `stored` stands."""
    if stored in _TIMELY or (stored == Status.ON_HOLD and environment == "jobplane"):
        return None
    return normalize(environment, raw, user=user, groups=groups, default=default)


def renormalize(environment: str, raw: Mapping[str, str], stored: Status, *, user: Policy | None,
                groups: Sequence[Policy] = (), default: Policy = DEFAULT_POLICY) -> Status:
    """The status a caller with these policies sees for something stored with `stored`."""
    decision = redecide(environment, raw, stored, user=user, groups=groups, default=default)
    return stored if decision is None else decision.status


def priority_class(environment: str, raw: Mapping[str, str], *, user: Policy | None,
                   groups: Sequence[Policy] = (), default: Policy = DEFAULT_POLICY) -> str:
    """The normalized priority class ("HIGH", "NORMAL", "LOW", or "" when no rule sets it) of
    something reporting `raw` from `environment`, for a caller with these policies."""
    return normalize(environment, raw, user=user, groups=groups, default=default, property_name=PRIORITY_CLASS).value


def is_decision_reason(text: str) -> bool:
    """Whether a message is a Decision's reason (which policy rule decided, or that none did)."""
    return text.startswith(("user policy ", "group policy ", "default policy ", "no rule matches "))


def _levels(user: Policy | None, groups: Sequence[Policy], default: Policy) -> Iterator[tuple[str, Policy]]:
    """The policies to consult, first to last, with the level each stands at."""
    if user is not None:
        yield "user", user
    for group in groups:
        yield "group", group
    yield "default", default
