"""Supervision: hold every provider to the heartbeat it promised, probe before giving up
on it, check on overdue tasks (wait, reassign or terminate, each decision an event), and
space retries. A component of Engine, driven by a periodic tick."""

from __future__ import annotations

import bisect
import heapq
import random
from typing import TYPE_CHECKING, TypeVar

from .model import EventKind, ProviderState, TaskState
from .pace import HeartbeatPace
from .providers import SUPERVISED
from .state import ProviderRt, TaskRt

if TYPE_CHECKING:
    from .engine import Engine

T = TypeVar("T")
STALLS_KEPT = 4096  # the server's own recent stalls kept for crediting silences (older ones are long judged)
# A supervision tick this many seconds late: the server is behind (its loop busier than it can keep
# up with, or stopped), and the heartbeats sent meanwhile wait on their connections to be read.
BEHIND = 0.05


class Supervision:
    """What is due when is kept in two heaps, so a tick costs nothing per provider or task that
    has nothing due: a provider is looked at when its promised signal would be overdue, its
    probe's deadline passes, or (an activated standby) every tick; a task when it is expected
    to be done or its hard timeout passes. Entries are checked against the present when they
    come due (a heartbeat does not touch the heap: the provider's entry, once due, finds it
    heard from and is put back for its next deadline)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._watch: dict[int, float] = {}  # task id -> when to check on it
        self._tasks_due: list[tuple[float, int]] = []  # heap of (check time, task id); stale ones skipped
        self._providers_due: list[tuple[float, str]] = []  # heap of (when to look, provider id)
        self._provider_next: dict[str, float] = {}  # provider id -> its live entry's time (others are stale)
        self._awaiting: set[int] = set()  # overdue tasks whose provider was probed
        # The server's own stalls, oldest first: when it resumed, and the seconds stalled up to then
        # (a running sum, so a provider's credit is one bisect however many are kept).
        self._resumed: list[float] = []
        self._stalled: list[float] = []
        self._forgotten = 0.0  # the running sum up to the first stall kept (older ones are dropped)
        self.pace = HeartbeatPace()  # heartbeats taken against those promised (the core counts them)

    def stalled(self, seconds: float) -> None:
        """The server itself did not run for `seconds` (its loop was starved of CPU or blocked,
        found by a supervision tick that came that late): a provider is not blamed for it. Its
        heartbeats were sent meanwhile and wait in the connection to be read, so each silence
        (and probe deadline) spanning the stall is that much longer before it counts."""
        self._resumed.append(self.engine.now)
        self._stalled.append((self._stalled[-1] if self._stalled else 0.0) + seconds)
        if len(self._resumed) > STALLS_KEPT:
            self._forgotten = self._stalled[-STALLS_KEPT - 1]
            del self._resumed[:-STALLS_KEPT], self._stalled[:-STALLS_KEPT]

    def _credit(self, since: float) -> float:
        """Seconds the server stalled after `since` (none in the common case: no stall kept)."""
        if not self._resumed or self._resumed[-1] <= since:
            return 0.0
        first = bisect.bisect_right(self._resumed, since)  # the first stall it resumed from after `since`
        return self._stalled[-1] - (self._stalled[first - 1] if first else self._forgotten)

    def tick(self, late: float = 0.0) -> None:
        """Silence, unanswered probes, idle standbys, overdue and timed-out tasks. `late`: how
        late the server ran this tick; past BEHIND the server was behind for that long, and the
        supervision clock stands still for it (stalled): a loop that falls behind a little at
        every tick is credited as surely as one that stops for seconds, while a fleet that really
        went silent on an idle server is judged on time. While the server is behind, the share
        of promised heartbeats it did not take is credited too (pace.py)."""
        e = self.engine
        if late > BEHIND:
            self.stalled(late)
            self.pace.late(late)
        shortfall = self.pace.credit(e.now)
        if shortfall:
            self.stalled(shortfall)
        limit = e.config.heartbeat_tolerance
        for when, provider_id in _pop_due(self._providers_due, e.now):
            if self._provider_next.get(provider_id) != when:
                continue  # superseded by a sooner entry
            provider = e.providers.get(provider_id)
            if provider is None:
                del self._provider_next[provider_id]
            elif not self._still_heard(provider, limit):
                del self._provider_next[provider_id]
                self._check_provider(provider)
                self.schedule(provider)
        for when, tid in _pop_due(self._tasks_due, e.now):
            if self._watch.get(tid) == when:  # else superseded, or no longer watched
                self._check_task(tid)

    def _still_heard(self, p: ProviderRt, tolerance: float) -> bool:
        """The common case, at a fraction of a full look (one per provider every heartbeat or
        two, 20,000 of them): a connected provider, neither probed nor a standby to count idle
        time for, heard from within its promise since the server last stalled. Its entry is put
        back for when that promise would run out (its rate for the pace is unchanged)."""
        if not p.conn_id or p.probe_id or (p.standby and p.state == ProviderState.ACTIVE and not p.promoted):
            return False
        seen = p.last_seen
        if not seen or (self._resumed and self._resumed[-1] > seen):
            return False
        when = seen + p.heartbeat * tolerance
        if when <= self.engine.now:
            return False
        self._provider_next[p.id] = when
        heapq.heappush(self._providers_due, (when, p.id))
        return True

    def schedule(self, p: ProviderRt) -> None:
        """Look at the provider again when something may be due (connected, probed, ...)."""
        self.pace.track(p.id, p.heartbeat, bool(p.conn_id))
        when = self._due(p)
        if when is None:
            return
        if self._provider_next.get(p.id, float("inf")) > when:  # a sooner entry re-schedules when it comes due
            self._provider_next[p.id] = when
            heapq.heappush(self._providers_due, (when, p.id))

    def _due(self, p: ProviderRt) -> float | None:
        e = self.engine
        if not p.conn_id:
            return None  # nothing to hold it to until it connects again
        if p.probe_id:
            return p.probe_deadline + self._credit(p.probe_sent)
        if p.standby and p.state == ProviderState.ACTIVE and not p.promoted:
            return e.now  # its idle time is counted tick by tick
        seen = p.last_seen or e.now
        return seen + p.heartbeat * e.config.heartbeat_tolerance + self._credit(seen)

    # ----- providers ---------------------------------------------------------------------

    def _check_provider(self, p: ProviderRt) -> None:
        e = self.engine
        if not p.conn_id:
            return
        if p.probe_id:
            if e.now <= p.probe_deadline + self._credit(p.probe_sent):
                return
            if (p.last_seen or 0.0) > p.probe_sent and e.now < p.probe_sent + self._patience(p):
                # Heard from since the probe went out: alive, its answer waits behind what the
                # server has still to read off its connection (a server behind on reading).
                p.probe_deadline = e.now + e.config.probe_deadline
                return
            e.provider_rules.lost(p, f"provider {p.id} lost: no answer to a probe within "
                                     f"{e.config.probe_deadline:g}s")
            return
        seen = p.last_seen or e.now
        silent = e.now - seen - self._credit(seen)
        if silent > p.heartbeat * e.config.heartbeat_tolerance and p.state in SUPERVISED:
            p.before_suspect = p.state
            e.provider_rules.set_state(p, ProviderState.SUSPECT, f"silent for {silent:.1f}s, promised a signal "
                                                                 f"every {p.heartbeat:g}s; probing")
            self.probe(p)
        elif p.standby and p.state == ProviderState.ACTIVE and not p.promoted:
            self._maybe_back_to_standby(p)

    def probe(self, p: ProviderRt) -> None:
        """Ask the provider what it runs; no answer within the probe deadline makes it LOST."""
        if p.probe_id:
            return
        e = self.engine
        p.probe_id = e.ids.take("probe")
        p.probe_sent, p.probe_deadline = e.now, e.now + e.config.probe_deadline
        e.changes.probes[p.id] = p.probe_id
        self.schedule(p)

    def _patience(self, p: ProviderRt) -> float:
        """How long after a probe went out its answer is waited for while the provider is
        still heard from: the probe deadline plus its promise (heartbeat x tolerance)."""
        return self.engine.config.probe_deadline + p.heartbeat * self.engine.config.heartbeat_tolerance

    def _maybe_back_to_standby(self, p: ProviderRt) -> None:
        e = self.engine
        if p.in_flight:
            p.idle_since = None
        elif p.idle_since is None:
            p.idle_since = e.now
        elif e.now - p.idle_since >= e.config.standby_idle:
            p.idle_since = None
            e.provider_rules.set_state(p, ProviderState.STANDBY,
                                       f"idle for {e.config.standby_idle:g}s; back to standby")

    def probe_reply(self, provider_id: str, conn_id: int, probe_id: int, running: list[tuple[int, int, int]]) -> None:
        """The agent answered: it is alive; judge any overdue task it runs by its progress."""
        e = self.engine
        p = e.providers.get(provider_id)
        if p is None or p.conn_id != conn_id or p.probe_id != probe_id:
            return
        p.probe_id, p.last_seen = 0, e.now
        if p.state == ProviderState.SUSPECT:
            e.provider_rules.set_state(p, p.before_suspect, f"answered the probe; {len(running)} tasks running")
        # Stops it was to confirm: what it no longer runs has ended.
        e.fencing.stops_confirmed(provider_id, [(tid, number) for tid, number, _ in running], probe_id)
        for tid, number, progress in running:
            if not e.provider_rules.is_current(tid, number, provider_id):
                e.adoption.stop_superseded(provider_id, tid, number)
            elif tid in self._awaiting:  # checkpoints count as progress too
                self._judge(e.tasks[tid], progress + e.tasks[tid].checkpoints)

    # ----- tasks -------------------------------------------------------------------------

    def watch(self, task: TaskRt, since: float | None = None) -> None:
        """Called when a task starts (or is restored running): remember when to look again."""
        spec = task.spec
        start = since or self.engine.now
        checks = []
        if spec.expected_seconds > 0:
            checks.append(start + spec.expected_seconds)
        if spec.timeout_seconds > 0:
            checks.append(start + spec.timeout_seconds + self.engine.config.terminate_grace)
        if checks:
            task.started_at, task.progress = start, 0
            self._check_at(task.id, min(checks))

    def _check_at(self, task_id: int, when: float) -> None:
        self._watch[task_id] = when
        heapq.heappush(self._tasks_due, (when, task_id))

    def unwatch(self, task_id: int) -> None:
        """Its attempt is over: nothing to check on."""
        self._watch.pop(task_id, None)
        self._awaiting.discard(task_id)

    def _check_task(self, tid: int) -> None:
        e = self.engine
        task = e.tasks.get(tid)
        if task is None or task.state != TaskState.RUNNING or task.current is None:
            self.unwatch(tid)
            return
        spec = task.spec
        if spec.timeout_seconds > 0 and e.now >= task.started_at + spec.timeout_seconds + e.config.terminate_grace:
            self._terminate(task, f"terminated: still running {e.now - task.started_at:.1f}s after its "
                                  f"{spec.timeout_seconds:g}s hard timeout")
            return
        provider = e.providers.get(task.current.provider)
        if tid in self._awaiting or provider is None or not provider.conn_id:
            return
        self._awaiting.add(tid)
        self._check_at(tid, e.now + e.config.probe_deadline)
        self.probe(provider)

    def _judge(self, task: TaskRt, progress: int) -> None:
        e = self.engine
        self._awaiting.discard(task.id)
        if progress > task.progress:
            extend = task.spec.expected_seconds
            self._decision(task, "wait", f"overdue but progressing (progress {task.progress} -> {progress}); "
                                         f"checking again in {extend:g}s")
            task.progress = progress
            when = e.now + extend
            if task.spec.timeout_seconds > 0:
                when = min(when, task.started_at + task.spec.timeout_seconds + e.config.terminate_grace)
            self._check_at(task.id, when)
        else:
            reason = f"reassigned: overdue with no progress since the last check (progress {progress})"
            self._decision(task, "reassign", reason)  # its follower is stuck, not an outside job: handed on
            e.provider_rules.stop_attempt(task.current.provider, task.id, task.current.number, reason,
                                          e.adoption.handed_job(task))
            self.unwatch(task.id)
            e.lose(task, reason)

    def _terminate(self, task: TaskRt, reason: str) -> None:
        e = self.engine
        attempt = task.current
        self._decision(task, "terminate", reason)
        e.provider_rules.stop_attempt(attempt.provider, task.id, attempt.number, reason)
        self.unwatch(task.id)
        e.close_attempt(task, attempt, 4, None, reason)  # Outcome.TIMED_OUT
        e.fencing.fence(task, attempt.provider, attempt.number)  # a retry waits until it has stopped
        e.reports.failed(task, reason, {"state": "terminated"}, timed_out=True)

    def _decision(self, task: TaskRt, decision: str, reason: str) -> None:
        self.engine.event(EventKind.TASK, job_id=task.job_id, task_id=task.id, task_name=task.name,
                          provider_id=task.provider or "", attempt=task.attempt, raw_status=task.state.name,
                          raw={"decision": decision}, status=task.status, message=reason)

    # ----- retries -----------------------------------------------------------------------

    def backoff(self, task: TaskRt) -> float:
        """Seconds before a failed task's retry: doubling from the task's (or the server's)
        base, at most --retry-backoff-max, with jitter."""
        config = self.engine.config
        base = task.spec.retry_backoff_seconds or config.retry_backoff
        tries = max(1, task.tries)
        return min(base * 2 ** (tries - 1), config.retry_backoff_max) * random.uniform(0.8, 1.2)


def _pop_due(heap: list[tuple[float, T]], now: float) -> list[tuple[float, T]]:
    """The entries due by `now`, taken off the heap, soonest first."""
    out = []
    while heap and heap[0][0] <= now:
        out.append(heapq.heappop(heap))
    return out


__all__ = ["Supervision"]
