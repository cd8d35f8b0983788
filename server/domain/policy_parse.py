"""Reading policies from documents ({"name": ..., "rules": [...]}) and writing them back: every
mistake is InvalidArgument naming its field path, e.g. `policy.rules[3].when.status`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

from ..errors import InvalidArgument
from .model import Status
from .policy_rules import (
    ANY, MAX_CONDITIONS, MAX_NAME, MAX_RULES, MAX_VALUE, MAX_VALUES, OPERATORS, PROPERTIES, PROPERTY_VALUES, STATUS,
    _IDENTIFIER, _NAME, Condition, Equals, Glob, In, Policy, Range, Rule)
# The same wording as prerequisite errors ("did you mean ...", "must be ..., got ...").
from .signatures import choices, wrong_type

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
    "ignore_case": ...}; a rule for a property other than the status gives "value" for "status"."""
    if not isinstance(raw, Mapping):
        raise wrong_type(path, raw, 'a table such as { environment = "external", when = { status = "ABEND" }, '
                                     'status = "FAILURE" }')
    _no_unknown_keys(path, raw, ("environment", "when", "status", "property", "ignore_case", "value"), "a rule")
    prop = _property(f"{path}.property", raw.get("property", STATUS))
    result, example = (("status", f"status = one of {', '.join(Status.__members__)}") if prop == STATUS else
                       ("value", f"value = one of {', '.join(PROPERTY_VALUES[prop])}"))
    for key, wanted in (("environment", 'environment = "process", or "*" for any'), (result, example)):
        if key not in raw:
            raise InvalidArgument(f"{path}.{key}", f"is missing; add {wanted}")
    other = "value" if prop == STATUS else "status"
    if other in raw:
        raise InvalidArgument(f"{path}.{other}", f"is not for a rule setting {prop}; give {example}")
    environment = _environment(f"{path}.environment", raw["environment"])
    status = _status(f"{path}.status", raw["status"]) if prop == STATUS else Status.UNKNOWN
    value = "" if prop == STATUS else _value(f"{path}.value", raw["value"], PROPERTY_VALUES[prop])
    fold = raw.get("ignore_case", False)
    if not isinstance(fold, bool):
        raise wrong_type(f"{path}.ignore_case", fold, "true or false")
    when = _when(f"{path}.when", raw.get("when", {}), fold)
    if not when and environment == ANY:
        raise InvalidArgument(f"{path}.when", "is empty while environment is '*', so the rule would match every "
                                              "raw value from every environment and hide all later rules and "
                                              "policies; add a condition or name an environment")
    return Rule(environment, when, status, prop, fold, value)


def policy_to_dict(policy: Policy) -> dict[str, object]:
    """The table parse_policy reads back into an equal policy; equals conditions as bare strings."""
    return {"name": policy.name, "rules": [_rule_to_dict(rule) for rule in policy.rules]}


def _rule_to_dict(rule: Rule) -> dict[str, object]:
    table: dict[str, object] = {"environment": rule.environment,
                                "when": {name: condition.as_raw() for name, condition in rule.when},
                                "status": rule.status.name}
    if rule.property != STATUS:
        del table["status"]
        table["property"], table["value"] = rule.property, rule.value
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


def _value(where: str, value: object, values: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise wrong_type(where, value, "a string")
    name = value.strip().upper()
    if name not in values:
        raise InvalidArgument(where, f"unknown value {value!r}; {choices(name, values)}")
    return name


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
