"""Runtime conditions: what a provider's live facts (sent with every heartbeat) must say
when a task starts there, e.g. "load_average<2" or "free_memory_bytes>=512Mi"."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidArgument
from .model import ProviderState, Status, TaskState
from .status import task_status

if TYPE_CHECKING:
    from .engine import Engine

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


STATIC_FACTS = ("cpu_count", "memory_bytes")  # numeric facts of the hello that conditions may name


class Conditions:
    """Tasks of jobs with conditions go only to providers that meet them (ReadyQueue `meets`);
    while no eligible provider does, they wait ON_HOLD saying why. A component of Engine: the
    queued conditional tasks are its state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conditional: dict[int, None] = {}  # queued tasks whose job has runtime conditions

    def meets(self, provider) -> Callable[[tuple], bool]:
        facts = provider_facts(provider)
        return lambda conditions: not unmet(conditions, facts)

    def waits_on_facts(self) -> bool:
        """Whether queued work has runtime conditions, so a change of live facts may start it."""
        return bool(self._conditional)

    def track(self, task) -> None:
        """A task with conditions was queued."""
        self._conditional[task.id] = None

    def forget(self, task_id: int) -> None:
        """It was assigned: its conditions held there."""
        self._conditional.pop(task_id, None)

    def live_facts(self, provider_id: str, conn_id: int, facts: dict[str, float]) -> None:
        """A heartbeat's facts: conditions that failed may hold now."""
        e = self.engine
        provider = e.providers.get(provider_id)
        if provider is not None and provider.conn_id == conn_id:
            provider.live = dict(facts)
            if self._conditional:
                e.want_dispatch()

    def explain(self) -> None:
        """After dispatch: conditional tasks still queued say whether they are on hold and why
        (worked out once per set of label requirements and conditions)."""
        e = self.engine
        reasons: dict[tuple, str] = {}
        for tid in list(self._conditional):
            task = e.tasks.get(tid)
            if task is None or task.state != TaskState.QUEUED or tid not in e.ready:
                self._conditional.pop(tid, None)
                continue
            key = (frozenset(task.spec.requires.items()), e.jobs[task.job_id].spec.parsed_conditions)
            if key not in reasons:
                reasons[key] = self._reason(task)
            why = reasons[key]
            if why and (task.status != Status.ON_HOLD or task.reason != why):
                e.lifecycle.show(task, Status.ON_HOLD, why)
            elif not why and task.status == Status.ON_HOLD:
                e.lifecycle.show(task, task_status(task.state, task.attempt), "a provider meets its conditions")

    def _reason(self, task) -> str:
        e = self.engine
        conditions = e.jobs[task.job_id].spec.parsed_conditions
        live = [p for p in e.providers.values() if p.conn_id and p.state in (ProviderState.ACTIVE,
                ProviderState.STANDBY) and all(p.labels.get(k) == v for k, v in task.spec.requires.items())]
        misses = [(p, unmet(conditions, provider_facts(p))) for p in live]
        if not live or any(not m for _, m in misses):
            return ""
        shown = "; ".join(explain(p.id, m, provider_facts(p)) for p, m in misses[:3])
        return f"waiting for a provider that meets its conditions ({shown})"


def provider_facts(provider) -> dict[str, float]:
    static = {k: float(provider.facts[k]) for k in STATIC_FACTS if isinstance(provider.facts.get(k), (int, float))}
    return {**static, **provider.live}


__all__ = ["Condition", "Conditions", "explain", "parse_conditions", "provider_facts", "unmet"]
