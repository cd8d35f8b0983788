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

A rule with no conditions is a catch-all for its environment; it must name one, because with
"*" it would match every raw value from everywhere and hide every later rule and policy.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ..errors import InvalidArgument
from .model import Status
from .vocabulary import DEFAULT_RULES
# The same wording as prerequisite errors ("did you mean ...", "must be ..., got ...").
from .signatures import choices, wrong_type

ANY = "*"
STATUS = "status"
PROPERTIES: tuple[str, ...] = (STATUS,)  # the normalized properties a rule may set
OPERATORS: tuple[str, ...] = ("equals", "in", "range", "glob")
MAX_RULES = 500
MAX_CONDITIONS = 16  # per rule
MAX_VALUES = 256  # in one `in` list
MAX_NAME = 128  # characters in a policy, environment or raw property name
MAX_VALUE = 1024  # characters in a raw value operand

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- conditions --------------------------------------------------------------------------


def _folded(text: str, fold: bool) -> str:
    return text.casefold() if fold else text


@dataclass(frozen=True)
class Equals:
    value: str
    fold: bool = False  # compare ignoring case (the rule's ignore_case)

    def test(self, raw: str) -> bool:
        return _folded(raw, self.fold) == _folded(self.value, self.fold)

    def as_raw(self) -> object:
        return self.value

    def describe(self, name: str) -> str:
        return f"{name} = {self.value!r}"


@dataclass(frozen=True)
class In:
    values: tuple[str, ...]
    fold: bool = False
    _set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_set", frozenset(_folded(v, self.fold) for v in self.values))

    def test(self, raw: str) -> bool:
        return _folded(raw, self.fold) in self._set

    def as_raw(self) -> object:
        return {"in": list(self.values)}

    def describe(self, name: str) -> str:
        return f"{name} in [{', '.join(repr(v) for v in self.values)}]"


@dataclass(frozen=True)
class Range:
    low: int | float | None
    high: int | float | None

    def test(self, raw: str) -> bool:
        number = _as_number(raw)
        return (number is not None and (self.low is None or number >= self.low)
                and (self.high is None or number <= self.high))

    def as_raw(self) -> object:
        return {"range": [self.low, self.high]}

    def describe(self, name: str) -> str:
        ends = ("*" if end is None else str(end) for end in (self.low, self.high))
        return f"{name} in range [{', '.join(ends)}]"


@dataclass(frozen=True)
class Glob:
    pattern: str
    fold: bool = False
    _match: Callable[[str], re.Match[str] | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        flags = re.IGNORECASE if self.fold else 0
        object.__setattr__(self, "_match", re.compile(fnmatch.translate(self.pattern), flags).match)

    def test(self, raw: str) -> bool:
        return self._match(raw) is not None

    def as_raw(self) -> object:
        return {"glob": self.pattern}

    def describe(self, name: str) -> str:
        return f"{name} like {self.pattern!r}"


Condition = Equals | In | Range | Glob


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- rules and policies ------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Raw properties in an environment that mean a normalized status.

    `when` keeps the conditions in the order written: (raw property name, condition).
    """

    environment: str
    when: tuple[tuple[str, Condition], ...]
    status: Status
    property: str = STATUS  # the normalized property the rule sets
    ignore_case: bool = False  # its text conditions match whatever the case ("Abend", "ABEND")

    def matches(self, raw: Mapping[str, str]) -> bool:
        for name, condition in self.when:
            value = raw.get(name)
            if value is None or not condition.test(value):
                return False
        return True

    def anchor(self) -> tuple[str, tuple[str, ...]] | None:
        """A raw property and the only values it can match (casefolded when the rule ignores
        case), for indexing; None if no condition pins one."""
        for name, condition in self.when:
            if isinstance(condition, Equals):
                return name, (_folded(condition.value, self.ignore_case),)
            if isinstance(condition, In):
                return name, tuple(_folded(v, self.ignore_case) for v in condition.values)
        return None

    @cached_property  # in every Decision's reason, so worked out once
    def description(self) -> str:
        """E.g. "process: state = 'exited' and exit_code in range [1, *] -> FAILURE"."""
        conditions = " and ".join(c.describe(name) for name, c in self.when) or "any raw values"
        target = "" if self.property == STATUS else f"{self.property} "
        case = " (any case)" if self.ignore_case and any(not isinstance(c, Range) for _, c in self.when) else ""
        return f"{self.environment}: {conditions}{case} -> {target}{self.status.name}"


@dataclass(frozen=True)
class _Bucket:
    """The rules of one (property, environment) pair, indexed by the values their anchors pin."""

    anchors: tuple[tuple[str, bool, Mapping[str, tuple[int, ...]]], ...]  # (property, folded, value -> rules)
    rest: tuple[int, ...]  # rules with no anchor: always candidates

    def candidates(self, raw: Mapping[str, str]) -> Sequence[int]:
        """Indexes of the rules that may match, in rule order."""
        found: Sequence[int] = self.rest
        for name, fold, table in self.anchors:
            value = raw.get(name)
            hits = table.get(_folded(value, fold)) if value is not None else None
            if hits:
                found = sorted((*found, *hits)) if found else hits
        return found


def _bucket(rules: Sequence[Rule], indexes: Sequence[int]) -> _Bucket:
    anchors: dict[tuple[str, bool], dict[str, list[int]]] = {}
    rest = []
    for i in indexes:
        anchor = rules[i].anchor()
        if anchor is None:
            rest.append(i)
            continue
        table = anchors.setdefault((anchor[0], rules[i].ignore_case), {})
        for value in dict.fromkeys(anchor[1]):
            table.setdefault(value, []).append(i)
    frozen = tuple((name, fold, {value: tuple(ids) for value, ids in table.items()})
                   for (name, fold), table in anchors.items())
    return _Bucket(frozen, tuple(rest))


@dataclass(frozen=True)
class Policy:
    """A named, ordered list of rules; the first rule that matches decides."""

    name: str
    rules: tuple[Rule, ...] = ()
    # (property, environment) -> its rules and the "*" ones; (property, "*") serves other environments.
    _buckets: dict[tuple[str, str], _Bucket] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        buckets = {}
        environments = {rule.environment for rule in self.rules} | {ANY}
        for prop in {rule.property for rule in self.rules}:
            for environment in environments:
                indexes = [i for i, rule in enumerate(self.rules)
                           if rule.property == prop and rule.environment in (environment, ANY)]
                buckets[(prop, environment)] = _bucket(self.rules, indexes)
        object.__setattr__(self, "_buckets", buckets)

    def match(self, environment: str, raw: Mapping[str, str], *, property_name: str = STATUS) -> Rule | None:
        """The first rule setting `property_name` that matches, or None."""
        index = self.first_match(environment, raw, property_name=property_name)
        return None if index is None else self.rules[index]

    def first_match(self, environment: str, raw: Mapping[str, str], *, property_name: str = STATUS) -> int | None:
        """The index of the first rule setting `property_name` that matches, or None."""
        bucket = self._buckets.get((property_name, environment)) or self._buckets.get((property_name, ANY))
        if bucket is None:
            return None
        for index in bucket.candidates(raw):
            if self.rules[index].matches(raw):
                return index
        return None


# --- parsing and storage -----------------------------------------------------------------


def parse_policy(path: str, raw: Mapping[str, object]) -> Policy:
    """Validate a policy table {"name": ..., "rules": [...]}; raises InvalidArgument naming
    e.g. f'{path}.rules[3].when.status'."""
    if not isinstance(raw, Mapping):
        raise wrong_type(path, raw, 'a table such as { name = "ops", rules = [...] }')
    _no_unknown_keys(path, raw, ("name", "rules"), "a policy")
    if "name" not in raw:
        raise InvalidArgument(f"{path}.name", 'is missing; add name = "..." (e.g. the user or group it is for)')
    name = _name(f"{path}.name", raw["name"])
    rules = raw.get("rules", [])
    where = f"{path}.rules"
    if isinstance(rules, (str, bytes, Mapping)) or not isinstance(rules, Sequence):
        raise wrong_type(where, rules, "a list of rule tables")
    if len(rules) > MAX_RULES:
        raise InvalidArgument(where, f"has {len(rules)} rules; a policy may have at most {MAX_RULES}, "
                                     "so merge rules with `in` or `glob` conditions")
    parsed = tuple(parse_rule(f"{where}[{i}]", rule) for i, rule in enumerate(rules))
    _no_repeats(where, parsed)
    return Policy(name, parsed)


def parse_rule(path: str, raw: Mapping[str, object]) -> Rule:
    """Validate one rule table {"environment": ..., "when": {...}, "status": ..., "property": ...,
    "ignore_case": ...}."""
    if not isinstance(raw, Mapping):
        raise wrong_type(path, raw, 'a table such as { environment = "external", when = { status = "ABEND" }, '
                                     'status = "FAILURE" }')
    _no_unknown_keys(path, raw, ("environment", "when", "status", "property", "ignore_case"), "a rule")
    for key, example in (("environment", 'environment = "process", or "*" for any'),
                         ("status", f"status = one of {', '.join(Status.__members__)}")):
        if key not in raw:
            raise InvalidArgument(f"{path}.{key}", f"is missing; add {example}")
    environment = _environment(f"{path}.environment", raw["environment"])
    prop = _property(f"{path}.property", raw.get("property", STATUS))
    status = _status(f"{path}.status", raw["status"])
    fold = raw.get("ignore_case", False)
    if not isinstance(fold, bool):
        raise wrong_type(f"{path}.ignore_case", fold, "true or false")
    when = _when(f"{path}.when", raw.get("when", {}), fold)
    if not when and environment == ANY:
        raise InvalidArgument(f"{path}.when", "is empty while environment is '*', so the rule would match every "
                                              "raw value from every environment and hide all later rules and "
                                              "policies; add a condition or name an environment")
    return Rule(environment, when, status, prop, fold)


def policy_to_dict(policy: Policy) -> dict[str, object]:
    """The table parse_policy reads back into an equal policy; equals conditions as bare strings."""
    return {"name": policy.name, "rules": [_rule_to_dict(rule) for rule in policy.rules]}


def _rule_to_dict(rule: Rule) -> dict[str, object]:
    table: dict[str, object] = {"environment": rule.environment,
                                "when": {name: condition.as_raw() for name, condition in rule.when},
                                "status": rule.status.name}
    if rule.property != STATUS:
        table["property"] = rule.property
    if rule.ignore_case:
        table["ignore_case"] = True
    return table


def _no_repeats(path: str, rules: Sequence[Rule]) -> None:
    first: dict[tuple[object, ...], int] = {}
    for i, rule in enumerate(rules):
        key = (rule.environment, rule.property, frozenset(rule.when), rule.ignore_case)
        if key in first:
            raise InvalidArgument(f"{path}[{i}]", f"has the same environment and conditions as {path}[{first[key]}], "
                                                  "which comes first, so it never applies; remove one of them")
        first[key] = i


def _no_unknown_keys(path: str, raw: Mapping[str, object], keys: Sequence[str], what: str) -> None:
    for key in raw:
        if key not in keys:
            raise InvalidArgument(_member(path, str(key)), f"is not a field of {what}; {choices(str(key), keys)}")


def _member(path: str, name: str) -> str:
    """`path.name`, or `path["name"]` when the name is not a bare word (TOML's quoted key)."""
    return f"{path}.{name}" if _IDENTIFIER.fullmatch(name) else f"{path}[{json.dumps(name)}]"


def _name(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise wrong_type(where, value, "a string")
    if not _NAME.fullmatch(value) or len(value) > MAX_NAME:
        raise InvalidArgument(where, f"{value!r} is not a name; use up to {MAX_NAME} letters, digits and _ . : @ + -, "
                                     "starting with a letter or digit, e.g. 'ops'")
    return value


def _environment(where: str, value: object) -> str:
    return value if value == ANY else _name(where, value)


def _property(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise wrong_type(where, value, "a string")
    if value not in PROPERTIES:
        raise InvalidArgument(where, f"unknown normalized property {value!r}; {choices(value, PROPERTIES)}")
    return value


def _status(where: str, value: object) -> Status:
    if not isinstance(value, str):
        raise wrong_type(where, value, "a string")
    name = value.strip().upper()
    if name not in Status.__members__:
        raise InvalidArgument(where, f"unknown status {value!r}; {choices(name, list(Status.__members__))}")
    return Status[name]


def _when(where: str, value: object, fold: bool = False) -> tuple[tuple[str, Condition], ...]:
    if not isinstance(value, Mapping):
        raise wrong_type(where, value, 'a table of raw property = condition, e.g. { status = "ABEND" }')
    if len(value) > MAX_CONDITIONS:
        raise InvalidArgument(where, f"has {len(value)} conditions; give at most {MAX_CONDITIONS}")
    conditions = []
    for name, condition in value.items():
        key = _member(where, str(name))
        if not isinstance(name, str) or not name or len(name) > MAX_NAME or not name.isprintable():
            raise InvalidArgument(key, f"is not a raw property name; use 1 to {MAX_NAME} printable characters")
        conditions.append((name, _condition(key, condition, fold)))
    return tuple(conditions)


def _condition(where: str, value: object, fold: bool = False) -> Condition:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return Equals(_operand(where, value), fold)
    if not isinstance(value, Mapping):
        raise wrong_type(where, value, 'a value or a table with one operator, e.g. "ABEND", { in = ["ABEND", '
                                        '"JCL ERROR"] }, { range = [1, inf] } or { glob = "S0C*" }')
    if len(value) != 1:
        raise InvalidArgument(where, f"has {len(value)} operators; give exactly one of {', '.join(OPERATORS)}")
    ((operator, operand),) = value.items()
    key = f"{where}.{operator}"
    if operator not in OPERATORS:
        raise InvalidArgument(key, f"is not an operator; {choices(str(operator), OPERATORS)}")
    if operator == "equals":
        return Equals(_operand(key, operand), fold)
    if operator == "in":
        return In(_operands(key, operand), fold)
    if operator == "range":
        return _range(key, operand)
    pattern = _operand(key, operand)
    if not pattern:
        raise InvalidArgument(key, "is empty; give a pattern such as 'S0C*', or use equals = '' for an empty value")
    return Glob(pattern, fold)


def _operand(where: str, value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise wrong_type(where, value, "a string (raw values are text; use range for numeric comparisons)")
    if len(value) > MAX_VALUE:
        raise InvalidArgument(where, f"has {len(value)} characters; shorten it to at most {MAX_VALUE}")
    if "\x00" in value:
        raise InvalidArgument(where, "contains a NUL character; remove it")
    return value


def _operands(where: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise wrong_type(where, value, 'a list of values, e.g. ["ABEND", "JCL ERROR"]')
    if not value or len(value) > MAX_VALUES:
        raise InvalidArgument(where, f"has {len(value)} values; give 1 to {MAX_VALUES}")
    values = tuple(_operand(f"{where}[{i}]", item) for i, item in enumerate(value))
    for i, item in enumerate(values):
        if item in values[:i]:
            raise InvalidArgument(f"{where}[{i}]", f"repeats {where}[{values.index(item)}] ({item!r}); remove it")
    return values


def _range(where: str, value: object) -> Range:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise wrong_type(where, value, "a list of two numbers [min, max]; an open end is null or inf")
    low, high = (_bound(f"{where}[{i}]", end, side) for i, end, side in ((0, value[0], -1), (1, value[1], 1)))
    if low is not None and high is not None and low > high:
        raise InvalidArgument(where, f"has min {low} above max {high}; swap them")
    return Range(low, high)


def _bound(where: str, value: object, side: int) -> int | float | None:
    """One end of a range: None when open (null, or inf on its own side)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise wrong_type(where, value, "a number, or null / inf for an open end")
    if math.isinf(value) and (value > 0) == (side > 0):
        return None
    if not math.isfinite(value):
        end = "min" if side < 0 else "max"
        raise InvalidArgument(where, f"is {value} as the {end}, which no number satisfies; give a finite number "
                                     f"or {'-inf' if side < 0 else 'inf'}")
    return int(value) if float(value).is_integer() else value


# --- the default (enterprise) policy: its rules are data in vocabulary.py --------------------

DEFAULT_NAME = "default"
BUILTIN_VERSION = 1  # the built-in rules are the default policy's first version
DEFAULT_POLICY = parse_policy("default_policy", {"name": "default",
                                                 "rules": [{**rule, "ignore_case": True} for rule in DEFAULT_RULES]})


# --- normalization ---------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """A normalized status and what decided it; `policy` is "" and `rule_index` None when nothing matched."""

    status: Status
    policy: str
    rule_index: int | None
    reason: str


def normalize(
    environment: str,
    raw: Mapping[str, str],
    *,
    user: Policy | None,
    groups: Sequence[Policy] = (),
    default: Policy = DEFAULT_POLICY,
    property_name: str = STATUS,
) -> Decision:
    """The normalized status of `raw` from `environment` for a user with these policies.

    `raw` is only read. The reason names the level (user, group, default), the policy and the
    rule, or, when nothing matched, the raw values and the policies consulted.
    """
    for level, policy in _levels(user, groups, default):
        index = policy.first_match(environment, raw, property_name=property_name)
        if index is not None:
            rule = policy.rules[index]
            return Decision(rule.status, policy.name, index,
                            f"{level} policy {policy.name!r} rules[{index}]: {rule.description}")
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
