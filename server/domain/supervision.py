"""Supervision: hold every provider to the heartbeat it promised, probe before giving up
on it, check on overdue tasks (wait, reassign or terminate, each decision an event), and
release retries after their backoff. A mixin of Engine, driven by a periodic tick."""

from __future__ import annotations

import random

from .model import EventKind, ProviderState, TaskState
from .providers import SUPERVISED
from .state import ProviderRt, TaskRt


class Supervision:
    def supervise(self) -> None:
        """One tick: silence, unanswered probes, idle standbys, overdue and timed-out tasks."""
        for provider in list(self.providers.values()):
            self._check_provider(provider)
        for tid, check_at in list(self._watch.items()):
            if self.now >= check_at:
                self._check_task(tid)

    # ----- providers ---------------------------------------------------------------------

    def _check_provider(self, p: ProviderRt) -> None:
        if not p.conn_id:
            return
        if p.probe_id:
            if self.now > p.probe_deadline:
                self._lost(p, f"provider {p.id} lost: no answer to a probe within {self.config.probe_deadline:g}s")
            return
        silent = self.now - (p.last_seen or self.now)
        if silent > p.heartbeat * self.config.heartbeat_tolerance and p.state in SUPERVISED:
            p.before_suspect = p.state
            self._set_provider(p, ProviderState.SUSPECT,
                               f"silent for {silent:.1f}s, promised a signal every {p.heartbeat:g}s; probing")
            self._probe(p)
        elif p.standby and p.state == ProviderState.ACTIVE:
            self._maybe_back_to_standby(p)

    def _probe(self, p: ProviderRt) -> None:
        if p.probe_id:
            return
        p.probe_id = self.ids.take("probe")
        p.probe_deadline = self.now + self.config.probe_deadline
        self._cs.probes[p.id] = p.probe_id

    def _maybe_back_to_standby(self, p: ProviderRt) -> None:
        if p.in_flight:
            p.idle_since = None
        elif p.idle_since is None:
            p.idle_since = self.now
        elif self.now - p.idle_since >= self.config.standby_idle:
            p.idle_since = None
            self._set_provider(p, ProviderState.STANDBY, f"idle for {self.config.standby_idle:g}s; back to standby")

    def probe_reply(self, provider_id: str, conn_id: int, probe_id: int, running: list[tuple[int, int, int]]) -> None:
        """The agent answered: it is alive; judge any overdue task it runs by its progress."""
        p = self.providers.get(provider_id)
        if p is None or p.conn_id != conn_id or p.probe_id != probe_id:
            return
        p.probe_id, p.last_seen = 0, self.now
        if p.state == ProviderState.SUSPECT:
            self._set_provider(p, p.before_suspect, f"answered the probe; {len(running)} tasks running")
        if self.fences:  # stops it was to confirm: what it no longer runs has ended
            self._stops_confirmed(provider_id, [(tid, number) for tid, number, _ in running], probe_id)
        for tid, number, progress in running:
            if not self._is_current(tid, number, provider_id):
                self._stop_superseded(provider_id, tid, number)
            elif tid in self._awaiting:  # checkpoints count as progress too
                self._judge(self.tasks[tid], progress + self.tasks[tid].checkpoints)

    # ----- tasks -------------------------------------------------------------------------

    def _watch_task(self, task: TaskRt, since: float | None = None) -> None:
        """Called when a task starts (or is restored running): remember when to look again."""
        spec = task.spec
        start = since or self.now
        checks = []
        if spec.expected_seconds > 0:
            checks.append(start + spec.expected_seconds)
        if spec.timeout_seconds > 0:
            checks.append(start + spec.timeout_seconds + self.config.terminate_grace)
        if checks:
            task.started_at, task.progress = start, 0
            self._watch[task.id] = min(checks)

    def _unwatch(self, task_id: int) -> None:
        self._watch.pop(task_id, None)
        self._awaiting.discard(task_id)

    def _check_task(self, tid: int) -> None:
        task = self.tasks.get(tid)
        if task is None or task.state != TaskState.RUNNING or task.current is None:
            self._unwatch(tid)
            return
        spec = task.spec
        if spec.timeout_seconds > 0 and self.now >= task.started_at + spec.timeout_seconds + self.config.terminate_grace:
            self._terminate(task, f"terminated: still running {self.now - task.started_at:.1f}s after its "
                                  f"{spec.timeout_seconds:g}s hard timeout")
            return
        provider = self.providers.get(task.current.provider)
        if tid in self._awaiting or provider is None or not provider.conn_id:
            return
        self._awaiting.add(tid)
        self._watch[tid] = self.now + self.config.probe_deadline
        self._probe(provider)

    def _judge(self, task: TaskRt, progress: int) -> None:
        self._awaiting.discard(task.id)
        if progress > task.progress:
            extend = task.spec.expected_seconds
            self._decision(task, "wait", f"overdue but progressing (progress {task.progress} -> {progress}); "
                                         f"checking again in {extend:g}s")
            task.progress = progress
            self._watch[task.id] = self.now + extend
            if task.spec.timeout_seconds > 0:
                hard = task.started_at + task.spec.timeout_seconds + self.config.terminate_grace
                self._watch[task.id] = min(self._watch[task.id], hard)
        else:
            reason = f"reassigned: overdue with no progress since the last check (progress {progress})"
            self._decision(task, "reassign", reason)  # its follower is stuck, not an outside job: handed on
            self._stop_attempt(task.current.provider, task.id, task.current.number, reason, self._handed_job(task))
            self._unwatch(task.id)
            self._lose(task, reason)

    def _terminate(self, task: TaskRt, reason: str) -> None:
        attempt = task.current
        self._decision(task, "terminate", reason)
        self._stop_attempt(attempt.provider, task.id, attempt.number, reason)
        self._unwatch(task.id)
        self._close_attempt(task, attempt, 4, None, reason)  # Outcome.TIMED_OUT
        self._fence(task, attempt.provider, attempt.number)  # a retry waits until it has stopped
        self._failed(task, reason, {"state": "terminated"}, timed_out=True)

    def _decision(self, task: TaskRt, decision: str, reason: str) -> None:
        self._event(EventKind.TASK, job_id=task.job_id, task_id=task.id, task_name=task.name,
                    provider_id=task.provider or "", attempt=task.attempt, raw_status=task.state.name,
                    raw={"decision": decision}, status=task.status, message=reason)

    # ----- retries -----------------------------------------------------------------------

    def _backoff(self, task: TaskRt) -> float:
        base = task.spec.retry_backoff_seconds or self.config.retry_backoff
        tries = max(1, task.attempt - task.lost_attempts - task.reruns)
        return min(base * 2 ** (tries - 1), self.config.retry_backoff_max) * random.uniform(0.8, 1.2)

    def release(self, task_id: int, attempt: int) -> None:
        """A retry's backoff is over: the task may be dispatched again."""
        task = self.tasks.get(task_id)
        job = self.jobs.get(task.job_id) if task is not None else None
        if job is not None and task.state == TaskState.QUEUED and task.attempt == attempt:
            self._requeue(task, job)
