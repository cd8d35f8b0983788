"""Runtime conditions in the engine: what a provider's live facts (sent with every heartbeat)
must say when a task starts there; the conditions themselves are parsed in facts.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .facts import explain, unmet
from .model import EventKind, ProviderState, Status, TaskState
from .status import task_status

if TYPE_CHECKING:
    from .engine import Engine

STATIC_FACTS = ("cpu_count", "memory_bytes")  # numeric facts of the hello that conditions may name


class Conditions:
    """Tasks of jobs with conditions go only to providers that meet them (ReadyQueue `meets`);
    while no eligible provider does, they wait ON_HOLD saying why. A component of Engine: the
    queued conditional tasks are its state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conditional: dict[int, None] = {}  # queued tasks whose job has runtime conditions
        self._held_jobs: set[int] = set()  # jobs shown ON_HOLD for a task's conditions

    def meets(self, provider) -> Callable[[tuple], bool]:
        """Whether the provider's facts meet a set of conditions. Its facts are gathered on the
        first call only: the ready queue asks once per task it dispatches, and only for work
        that has conditions (most has none)."""
        facts: list[dict[str, float]] = []

        def check(conditions: tuple) -> bool:
            if not facts:
                facts.append(provider_facts(provider))
            return not unmet(conditions, facts[0])
        return check

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
            if provider.in_flight:
                e.suspension.facts_changed(provider_id, lambda task: self._unmet(provider, task))

    def _unmet(self, provider, task) -> str:
        """What of its job's conditions the provider does not meet now ("" if it meets them all)."""
        facts = provider_facts(provider)
        missed = unmet(self.engine.jobs[task.job_id].spec.parsed_conditions, facts)
        return explain(provider.id, missed, facts) if missed else ""

    def explain(self) -> None:
        """After dispatch: conditional tasks still queued say whether they are on hold and why
        (worked out once per set of label requirements and conditions)."""
        e = self.engine
        reasons: dict[tuple, str] = {}
        held_jobs: dict[int, str] = {}
        for tid in list(self._conditional):
            task = e.tasks.get(tid)
            if task is None or task.state != TaskState.QUEUED or tid not in e.ready:
                self._conditional.pop(tid, None)
                continue
            key = (frozenset(task.spec.requires.items()), e.jobs[task.job_id].spec.parsed_conditions)
            if key not in reasons:
                reasons[key] = self._reason(task)
            why = reasons[key]
            if why:
                held_jobs.setdefault(task.job_id, why)
            if why and (task.status != Status.ON_HOLD or task.reason != why):
                e.lifecycle.show(task, Status.ON_HOLD, why)
            elif not why and task.status == Status.ON_HOLD:
                e.lifecycle.show(task, task_status(task.state, task.attempt), "a provider meets its conditions")
        self._show_jobs(held_jobs)

    def _show_jobs(self, held_jobs: dict[int, str]) -> None:
        """A job not yet started whose task waits on conditions is ON_HOLD too, saying why."""
        e = self.engine
        for job_id in set(held_jobs) | self._held_jobs:
            job = e.jobs.get(job_id)
            why = held_jobs.get(job_id, "")
            if job is None or job.condition_hold == why:
                continue
            before = job.status
            job.condition_hold = why
            e.changes.job(job)
            if job.status != before:
                e.event(EventKind.JOB, job_id=job.id, raw_status=job.state.name, status=job.status,
                        message=why or "a provider meets its conditions", environment="jobplane")
        self._held_jobs = set(held_jobs)

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


__all__ = ["Conditions", "provider_facts"]
