"""What one batch of engine operations changed: the ChangeSet the core commits in one
transaction before anything is announced, and the named records it is made of (named tuples:
immutable, and they unpack where that reads well)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from .model import Event, EventKind

if TYPE_CHECKING:
    from .inventory import InvEntry
    from .state import AttemptRt, JobRt, ProviderRt, TaskRt


@dataclass(frozen=True)
class ContinuedRec:
    """One task of a continuation, as ordered at the failure."""

    task_id: int
    job_id: int
    task_name: str
    from_attempt: int
    position: int
    priority: int
    rule: str


@dataclass(frozen=True)
class ContinuationRec:
    """A provider's unfinished tasks handed on together, in continuation order."""

    id: int
    provider: str
    time: float
    reason: str
    tasks: tuple[ContinuedRec, ...]


class Continued(NamedTuple):
    """A waiting continuation went out: where, as which attempt, from which checkpoint."""

    continuation_id: int
    task_id: int
    provider: str
    attempt: int
    time: float
    checkpoint: str


class Assigned(NamedTuple):
    """An attempt to send its provider."""

    task: TaskRt
    attempt: int
    ahead: bool = False  # queued ahead, beyond the provider's slots (ahead.py)


class Stop(NamedTuple):
    """An attempt its provider must stop. `keep_job`: an outside job another attempt follows
    now, which it leaves running if it follows that one (adoption.py). `unstarted_only`: only if
    it has not started, giving it back unstarted; one that started runs on (ahead.py take_back)."""

    task_id: int
    attempt: int
    reason: str
    keep_job: str = ""
    unstarted_only: bool = False


class Suspend(NamedTuple):
    """An attempt its provider must pause in place, or (`resume`) let go on."""

    task_id: int
    attempt: int
    resume: bool
    reason: str


class ScanAsk(NamedTuple):
    """A prerequisite signature a provider is asked to scan for."""

    signature_id: str
    signature: dict[str, Any]


class InventoryChange(NamedTuple):
    """What a scan found for one signature on one provider."""

    provider: str
    signature_id: str
    entry: InvEntry
    signature: dict[str, Any]


class Overlap(NamedTuple):
    """Two job classes seen running together when one of them failed transiently."""

    first: str
    second: str
    time: float


class Timing(NamedTuple):
    """A duration for /metrics, measured where the engine has both times: `what` is "assigned"
    (ready to assigned), "running" (ready to running) or "restarted" (its provider's loss to
    running again elsewhere)."""

    what: str
    seconds: float


class Timer(NamedTuple):
    """Run `op(engine)` in a batch of its own `delay` seconds after this batch commits."""

    delay: float
    op: Callable[[Any], None]


@dataclass
class ChangeSet:
    """What one batch changed: persisted in one transaction, then announced."""

    jobs: dict[int, JobRt] = field(default_factory=dict)
    new_jobs: set[int] = field(default_factory=set)
    tasks: dict[int, TaskRt] = field(default_factory=dict)
    new_tasks: set[int] = field(default_factory=set)
    attempts: dict[int, AttemptRt] = field(default_factory=dict)
    new_attempts: set[int] = field(default_factory=set)
    providers: dict[str, ProviderRt] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # task id -> index in `events` of its RUNNING event of this batch while that is its last one
    # (add_event): the attempt's end, if it comes in the same batch, takes its place.
    starts: dict[int, int] = field(default_factory=dict)
    continuations: list[ContinuationRec] = field(default_factory=list)
    continued: list[Continued] = field(default_factory=list)
    audits: list[dict] = field(default_factory=list)  # audit rows (see store.models.AuditRow)
    inventory: list[InventoryChange] = field(default_factory=list)
    conflict_rules: dict[str, object] = field(default_factory=dict)  # name -> ConflictRule, or None: deleted
    overlaps: list[Overlap] = field(default_factory=list)
    schedules: dict[int, object] = field(default_factory=dict)  # id -> schedules.Schedule (deleted: .deleted)
    notifications: list = field(default_factory=list)  # notifications.Delivery rows, new or settled
    alert_rules: dict[int, object] = field(default_factory=dict)  # id -> alerts.AlertRule (deleted: .deleted)
    # Not persisted: scans to ask for, explicitly or along with this batch's assignments.
    scans: dict[str, list[ScanAsk]] = field(default_factory=dict)
    piggyback: dict[str, list[ScanAsk]] = field(default_factory=dict)
    # Not persisted: what to tell providers and when to look again, after the commit.
    assignments: dict[str, list[Assigned]] = field(default_factory=dict)
    stops: dict[str, list[Stop]] = field(default_factory=dict)
    suspends: dict[str, list[Suspend]] = field(default_factory=dict)
    probes: dict[str, int] = field(default_factory=dict)
    closes: list[int] = field(default_factory=list)  # connection ids to hang up
    timers: list[Timer] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)  # for /metrics (server/metrics.py)
    # After dispatch, what no provider could take: (requirement set, queued tasks) per set,
    # for the provider manager's scale-out signal (server/hooks.py); None: no dispatch this batch.
    demand: list | None = None

    @property
    def unmet(self) -> int:
        """Queued tasks no provider could take (0 when this batch did not dispatch)."""
        return sum(n for _, n in self.demand or ())

    def add_event(self, event: Event, *, start: bool = False) -> None:
        """Append an event; `start`: a task's move to RUNNING, which its end may replace."""
        if event.task_id is not None:
            if start:
                self.starts[event.task_id] = len(self.events)
            else:
                self.starts.pop(event.task_id, None)
        self.events.append(event)

    def end_replaces_start(self, time: float, task: TaskRt, raw_status: str, message: str) -> bool:
        """Put a task's end (its event, as task_event makes it) in the place of its RUNNING
        event of this batch, with that event's id, if nothing else of the task came between and
        it is the same attempt; False otherwise. Both are in one commit, so no one could ever
        have seen the task RUNNING: a watcher misses no state, and a fast task costs one event,
        not two (ids stay consecutive). The end's Event is built only when it takes the place."""
        at = self.starts.pop(task.id, None)
        if at is None or self.events[at].attempt != task.attempt:
            return False
        self.events[at] = task_event(self.events[at].id, time, task, raw_status, message)
        return True

    def persisted(self) -> bool:
        return bool(self.jobs or self.tasks or self.attempts or self.providers or self.events
                    or self.continuations or self.continued or self.audits or self.inventory
                    or self.conflict_rules or self.overlaps or self.schedules or self.notifications
                    or self.alert_rules)

    def job(self, job: JobRt, new: bool = False) -> None:
        self.jobs[job.id] = job
        if new:
            self.new_jobs.add(job.id)

    def task(self, task: TaskRt, new: bool = False) -> None:
        self.tasks[task.id] = task
        if new:
            self.new_tasks.add(task.id)

    def attempt(self, attempt: AttemptRt, new: bool = False) -> None:
        self.attempts[attempt.id] = attempt
        if new:
            self.new_attempts.add(attempt.id)

    def provider(self, provider: ProviderRt) -> None:
        self.providers[provider.id] = provider

    def timer(self, delay: float, op: Callable[[Any], None]) -> None:
        self.timers.append(Timer(delay, op))

    def assign(self, provider_id: str, task: TaskRt, attempt: int, ahead: bool = False) -> None:
        self.assignments.setdefault(provider_id, []).append(Assigned(task, attempt, ahead))

    def timing(self, what: str, since: float, now: float) -> None:
        """A duration from `since` (0: unknown, as after a restart: nothing is measured)."""
        if since:
            self.timings.append(Timing(what, max(0.0, now - since)))

    def stop(self, provider_id: str, stop: Stop) -> None:
        self.stops.setdefault(provider_id, []).append(stop)

    def suspend(self, provider_id: str, suspend: Suspend) -> None:
        self.suspends.setdefault(provider_id, []).append(suspend)


def task_event(event_id: int, time: float, task: TaskRt, raw_status: str, message: str) -> Event:
    """The event of a task as it is now (its state named `raw_status`). Positional arguments,
    in Event's field order: built several times per task, keywords cost a dict each time."""
    return Event(event_id, time, EventKind.TASK, task.job_id, task.id, task.name, task.provider or "",
                 task.attempt, raw_status, task.raw, task.status, message, task.environment)


__all__ = ["Assigned", "ChangeSet", "Continued", "ContinuationRec", "ContinuedRec", "InventoryChange", "Overlap",
           "ScanAsk", "Stop", "Suspend", "Timer", "Timing", "task_event"]
