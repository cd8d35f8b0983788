"""Continuation: when a provider fails or is drained, its unfinished tasks continue on
others one by one, most important first, from their last checkpoint.

The order is the effective continuation priority (a smaller number is more important;
timing rules may replace a job's own priority at the moment of failover), then job
priority (higher first), then submit time. Continuations go out before ordinary queued
work, to standby providers first; a continuation no free slot can take waits, keeping its
place. A standby that took continuations is promoted to ACTIVE once none is left for it.
A component of Engine.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from jobplane.resources import Resources, shortfall

from ..errors import FailedPrecondition, NotFound
from .model import TASK_DONE, EventKind, ProviderState, Status, TaskState
from .changes import Continued, ContinuationRec, ContinuedRec
from .state import JobRt, ProviderRt, TaskRt
from .timing import effective_priority

if TYPE_CHECKING:
    from .engine import Engine

DEFAULT_PRIORITY = 100
RECEIVING = (ProviderState.ACTIVE, ProviderState.STANDBY)


@dataclass(order=True)
class Pending:
    """A task waiting to continue; instances sort in continuation order."""

    key: tuple
    task_id: int = field(compare=False)
    continuation_id: int = field(compare=False)
    priority: int = field(compare=False)
    rule: str = field(compare=False)
    requires: dict[str, str] = field(compare=False)
    prerequisites: frozenset = field(default=frozenset(), compare=False)
    resources: Resources = field(default=Resources(), compare=False)
    waiting_noted: bool = field(default=False, compare=False)


@dataclass
class Receiver:
    """A provider that can take continuations now, and how many."""

    id: str
    labels: dict[str, str]
    free: int
    standby: bool
    has: Callable[[frozenset], bool] = lambda ids: True  # whether it has these prerequisites
    capacity: Resources | None = None  # what it advertised (None: nothing; jobplane.resources)
    used: Resources = Resources()  # what its tasks ask for, those placed here included


@dataclass(frozen=True)
class PlannedTask:
    task_id: int
    job_id: int
    task_name: str
    position: int
    priority: int
    rule: str
    to_provider: str | None
    checkpoint: str
    from_provider: bool


def place(pending: Sequence[Pending], receivers: list[Receiver]) -> list[str | None]:
    """Where each pending task (in order) goes now: the standby, else the receiver with the
    most free slots, whose labels meet its requirements and that has room for its resource
    requests; None when it has to wait."""
    out: list[str | None] = []
    for entry in pending:
        fits = [r for r in receivers if r.free > 0 and all(r.labels.get(k) == v for k, v in entry.requires.items())
                and (not entry.prerequisites or r.has(entry.prerequisites))
                and not shortfall(entry.resources, r.capacity, r.used)]
        if not fits:
            out.append(None)
            continue
        chosen = min(fits, key=lambda r: (not r.standby, -r.free, r.id))
        chosen.free -= 1
        chosen.used = chosen.used.plus(entry.resources)
        out.append(chosen.id)
    return out


class Continuations:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: list[Pending] = []  # tasks waiting to continue, in continuation order

    def restore(self, pending: Sequence[Pending]) -> None:
        self.pending = sorted(pending)

    # ----- failover ------------------------------------------------------------------

    def hand_on(self, provider: ProviderRt, reason: str, *, stop: bool) -> None:
        """Every unfinished task of the provider continues elsewhere, in continuation order;
        `stop` tells the agent to kill the attempts it still runs. A task that already ended (a
        cancel whose attempt the agent has not yet reported stopped) has nothing to continue: its
        attempt just closes."""
        e = self.engine
        for task in [e.tasks[tid] for tid in provider.in_flight if e.tasks[tid].state in TASK_DONE]:
            if stop:
                e.provider_rules.stop_attempt(provider.id, task.id, task.current.number, reason)
            e.lose(task, reason, fence=False)
        if not provider.in_flight:
            return
        now = datetime.fromtimestamp(e.now, timezone.utc)
        entries = sorted(self._entry(e.tasks[tid], 0, now) for tid in provider.in_flight)
        cid = e.ids.take("continuation")
        records = []
        for position, entry in enumerate(entries, 1):
            task = e.tasks[entry.task_id]
            entry.continuation_id = cid
            records.append(ContinuedRec(task.id, task.job_id, task.name, task.current.number, position,
                                        entry.priority, entry.rule))
            if stop:  # an outside job that goes on with the next attempt is left running
                e.provider_rules.stop_attempt(provider.id, task.id, task.current.number, reason,
                                              e.adoption.handed_job(task))
            e.lose(task, f"{reason}; continuing in priority order ({position} of {len(entries)})", continue_as=entry)
        e.changes.continuations.append(ContinuationRec(cid, provider.id, e.now, reason, tuple(records)))
        e.event(EventKind.CONTINUATION, provider_id=provider.id, raw_status="CONTINUED", status=Status.RESTART,
                message=f"{len(entries)} tasks to continue elsewhere (continuation {cid})",
                raw={"continuation_id": str(cid)})

    def _entry(self, task: TaskRt, cid: int, when: datetime) -> Pending:
        job = self.engine.jobs[task.job_id]
        priority, rule = self._effective(job, when)
        key = (priority, -job.priority, job.submit_time, job.id, task.idx)
        return Pending(key, task.id, cid, priority, rule, dict(task.spec.requires), task.spec.prerequisite_ids,
                       task.spec.resources)

    def _effective(self, job: JobRt, when: datetime) -> tuple[int, str]:
        spec = job.spec
        base = DEFAULT_PRIORITY if spec.continuation_priority is None else spec.continuation_priority
        return effective_priority(base, spec.continuation_rules, when, self.engine.calendar)

    def wait_to_continue(self, task: TaskRt, entry: Pending, reason: str) -> None:
        """The task waits in the continuation line, in its place (on hold while its job is held
        by hand: the release lets it continue, in that place)."""
        e = self.engine
        e.lifecycle.transition(task, TaskState.QUEUED, reason, enqueue=False)
        if self._held(entry):
            e.lifecycle.show(task, Status.ON_HOLD, f"{reason}; held by hand: {e.jobs[task.job_id].hold}; "
                                                   "it continues once released")
        task.ready_at = task.lost_at = e.now
        bisect.insort(self.pending, entry)
        e.want_dispatch()

    def _held(self, entry: Pending) -> bool:
        """Whether the entry's job is held by hand (holds.py): it waits in its place until released."""
        e = self.engine
        task = e.tasks.get(entry.task_id)
        job = e.jobs.get(task.job_id) if task is not None else None
        return job is not None and bool(job.hold)

    def held_by_hand(self, job: JobRt) -> None:
        """The job was held by hand (or released): its tasks waiting in the line show ON_HOLD
        in their place (or, released, wait again as the line's next dispatch notes them)."""
        for entry in self.pending:
            task = self.engine.tasks.get(entry.task_id)
            if task is None or task.job_id != job.id:
                continue
            entry.waiting_noted = False
            if job.hold:
                self.engine.lifecycle.show(task, Status.ON_HOLD, f"held by hand: {job.hold}; it continues "
                                                                 "in its place in the continuation line once released")

    def wanted_at(self, provider: ProviderRt) -> bool:
        """Whether a task waiting in the line for a free slot could continue at the provider (its
        labels meet its requirements): no quick task is queued ahead there meanwhile (ahead.py), or
        its slots would never free while quick tasks are left to queue."""
        e = self.engine
        return any(p.task_id not in e.fencing and not self._held(p)
                   and all(provider.labels.get(k) == v for k, v in p.requires.items()) for p in self.pending)

    def drop(self, task_id: int) -> None:
        """The task waits no more (cancelled, or failed for good)."""
        if self.pending:
            self.pending = [p for p in self.pending if p.task_id != task_id]

    # ----- dispatch ------------------------------------------------------------------

    def dispatch(self) -> None:
        """Send waiting continuations, in order, to providers with free slots; those whose
        earlier attempt may still run (fencing.py), or whose job is held by hand, wait in their place."""
        if not self.pending:
            return
        e = self.engine
        waits = {p.task_id for p in self.pending if p.task_id in e.fencing or self._held(p)}
        fenced = [p for p in self.pending if p.task_id in waits]
        line = [p for p in self.pending if p.task_id not in waits] if waits else self.pending
        targets = place(line, self._receivers(exclude=None))
        waiting = []
        for entry, target in zip(line, targets):
            if target is None:
                waiting.append(entry)
                self._note_waiting(entry, len(waiting))
            else:
                self._send(entry, target)
        self.pending = sorted(waiting + fenced) if fenced else waiting
        self._promote_standbys()

    def _send(self, entry: Pending, target: str) -> None:
        e = self.engine
        task, provider = e.tasks[entry.task_id], e.providers[target]
        if provider.state == ProviderState.STANDBY:
            provider.took_continuations = True
        e.assign(task, provider)
        e.changes.continued.append(Continued(entry.continuation_id, task.id, target, task.attempt, e.now,
                                             task.checkpoint))
        e.event(EventKind.CONTINUATION, job_id=task.job_id, task_id=task.id, task_name=task.name,
                provider_id=target, attempt=task.attempt, raw_status="CONTINUED", status=Status.RESTART,
                message=_continued_message(entry, target, task.checkpoint),
                raw={"continuation_id": str(entry.continuation_id), "priority": str(entry.priority),
                     "rule": entry.rule})

    def _receivers(self, exclude: str | None) -> list[Receiver]:
        e = self.engine
        out = []
        for p in e.providers.values():
            free = p.slots - len(p.in_flight)
            if p.id != exclude and p.accepting and p.state in RECEIVING and not p.drained and free > 0:
                out.append(Receiver(p.id, p.labels, free, p.state == ProviderState.STANDBY, e.inventory.has_all(p),
                                    p.capacity, e.capacity.used(p)))
        return out

    def _note_waiting(self, entry: Pending, place_in_line: int) -> None:
        if entry.waiting_noted:
            return
        entry.waiting_noted = True
        task = self.engine.tasks[entry.task_id]
        self.engine.lifecycle.transition(
            task, TaskState.QUEUED, f"waiting for a free slot to continue (continuation {entry.continuation_id}, "
            f"priority {entry.priority}, next in line: {place_in_line})", enqueue=False)

    def _promote_standbys(self) -> None:
        for p in self.engine.providers.values():
            if p.state != ProviderState.STANDBY or not p.took_continuations:
                continue
            if not any(all(p.labels.get(k) == v for k, v in e.requires.items()) for e in self.pending):
                p.took_continuations = False
                p.idle_since = None
                p.promoted = True
                self.engine.provider_rules.took_place()
                self.engine.provider_rules.set_state(p, ProviderState.ACTIVE, "promoted: no continuation left to start")

    # ----- what if -------------------------------------------------------------------

    def plan(self, provider_id: str, at: float | None = None) -> list[PlannedTask]:
        """What would continue where, in what order, if the provider failed now (or at `at`);
        continuations already waiting are included. Changes nothing."""
        e = self.engine
        provider = e.providers.get(provider_id)
        if provider is None:
            raise NotFound(f"provider {provider_id!r} not found; `jobplane providers list` shows them")
        if provider.state in (ProviderState.LOST, ProviderState.REVOKED):
            raise FailedPrecondition(f"provider {provider_id!r} is {provider.state.name.lower()} already; "
                                     "`jobplane continuations list` shows what happened to its tasks")
        when = datetime.fromtimestamp(e.now if at is None else at, timezone.utc)
        mine = {tid for tid in provider.in_flight
                if e.tasks[tid].current is not None and e.tasks[tid].state not in TASK_DONE}
        entries = sorted([*self.pending, *(self._entry(e.tasks[tid], 0, when) for tid in mine)])
        targets = place(entries, self._receivers(exclude=provider_id))
        return [self._planned(entry, position, target, entry.task_id in mine)
                for position, (entry, target) in enumerate(zip(entries, targets), 1)]

    def _planned(self, entry: Pending, position: int, target: str | None, mine: bool) -> PlannedTask:
        task = self.engine.tasks[entry.task_id]
        return PlannedTask(task.id, task.job_id, task.name, position, entry.priority, entry.rule, target,
                           task.checkpoint, mine)


def _continued_message(entry: Pending, target: str, checkpoint: str) -> str:
    why = f"rule {entry.rule}" if entry.rule else "its job's continuation priority"
    start = f"from checkpoint {checkpoint}" if checkpoint else "from the beginning"
    return f"continues on {target} {start} (priority {entry.priority}, by {why})"
