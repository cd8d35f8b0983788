"""Policy rules as values: conditions on raw properties, rules, and policies (ordered rules,
indexed so that matching is a lookup). policies.py says how they are used; policy_parse.py reads
them from documents."""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from .model import Status

ANY = "*"
STATUS = "status"
PRIORITY_CLASS = "priority_class"
# The normalized properties a rule may set, and the values of each but the status (whose
# values are the Status vocabulary). A rule for one of them gives `value` instead of `status`.
PROPERTY_VALUES: dict[str, tuple[str, ...]] = {PRIORITY_CLASS: ("HIGH", "NORMAL", "LOW")}
PROPERTIES: tuple[str, ...] = (STATUS, *PROPERTY_VALUES)
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
    """Raw properties in an environment that mean a normalized status (or, for another
    property, a value of it: `status` is then UNKNOWN and unused).

    `when` keeps the conditions in the order written: (raw property name, condition).
    """

    environment: str
    when: tuple[tuple[str, Condition], ...]
    status: Status
    property: str = STATUS  # the normalized property the rule sets
    ignore_case: bool = False  # its text conditions match whatever the case ("Abend", "ABEND")
    value: str = ""  # what it sets a property other than the status to, e.g. "HIGH"

    @cached_property  # `property` is a field here
    def result(self) -> str:
        """What the rule sets its property to: a status's name, or the value."""
        return self.status.name if self.property == STATUS else self.value

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
        return f"{self.environment}: {conditions}{case} -> {target}{self.result}"


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
    # What normalize() decided lately with this policy alone (policies.normalize): a small cache
    # of frozen Decisions by (property, environment, raw items), for the few raw sets most tasks end with.
    decided: dict[tuple, object] = field(init=False, repr=False, compare=False)

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
        object.__setattr__(self, "decided", {})

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
