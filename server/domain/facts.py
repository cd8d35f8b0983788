"""Runtime conditions as written in a job ("load_average<2", "free_memory_bytes>=512Mi"): their
parsing and checking against a provider's facts. Pure: the job model parses them with the spec,
and the engine's Conditions component (conditions.py) applies them."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

from ..errors import InvalidArgument

_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]{0,63})\s*(<=|>=|==|!=|<|>|=)\s*"
                        r"(-?\d+(?:\.\d+)?)\s*([KMGT]i?)?\s*$")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq,
        "==": operator.eq, "!=": operator.ne}
_UNITS = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
MAX_CONDITIONS = 20


@dataclass(frozen=True)
class Condition:
    fact: str
    op: str
    value: float
    text: str

    def holds(self, facts: dict[str, float]) -> bool:
        have = facts.get(self.fact)
        return have is not None and _OPS[self.op](have, self.value)


def parse_conditions(path: str, texts) -> tuple[Condition, ...]:
    """Conditions from their text; InvalidArgument naming the bad one otherwise."""
    if len(texts) > MAX_CONDITIONS:
        raise InvalidArgument(path, f"at most {MAX_CONDITIONS} conditions")
    out = []
    for i, text in enumerate(texts):
        if isinstance(text, Condition):
            out.append(text)
            continue
        m = _CONDITION.match(text)
        if m is None:
            raise InvalidArgument(f"{path}[{i}]", f"{text!r} is not FACT OP NUMBER, e.g. \"load_average<2\" or "
                                                  "\"free_memory_bytes>=512Mi\" (ops < <= > >= = !=)")
        fact, op, number, unit = m.groups()
        value = float(number) * _UNITS.get(unit or "", 1)
        if not math.isfinite(value):
            raise InvalidArgument(f"{path}[{i}]", f"{text!r}: the number is out of range")
        out.append(Condition(fact, op, value, text.strip()))
    return tuple(out)


def unmet(conditions: tuple[Condition, ...], facts: dict[str, float]) -> list[Condition]:
    return [c for c in conditions if not c.holds(facts)]


def explain(provider: str, missed: list[Condition], facts: dict[str, float]) -> str:
    """e.g. "a: load_average<2 (is 3.5)"."""
    parts = [f"{c.text} (is {facts[c.fact]:g})" if c.fact in facts else f"{c.text} (not reported)" for c in missed]
    return f"{provider}: " + ", ".join(parts)


__all__ = ["Condition", "MAX_CONDITIONS", "explain", "parse_conditions", "unmet"]
