"""The task lifecycle: every state change of a task goes through `Lifecycle.transition`,
checked against one table. The same state again is allowed where a task is shown anew without
moving (a hold's reason, lateness): that is what `show` is for when only the status changes.

    BLOCKED  --(its predecessors succeeded)-->  QUEUED
    QUEUED   --(dispatched)-->                  ASSIGNED
    ASSIGNED --(the agent started it)-->        RUNNING
    ASSIGNED, RUNNING --(it ended well)-->      SUCCEEDED
    ASSIGNED, RUNNING --(lost, retried, handed on, rerun)--> QUEUED
    any unfinished --(cancelled)-->             CANCELLED
    any unfinished --(failed for good; an unstarted one when its window closes)--> FAILED
    BLOCKED  --(a predecessor did not succeed)--> CANCELLED

Final states are final, with one exception outside the table, `reopen`: when a finished job
is rerun by request (reopen.py), its FAILED or CANCELLED tasks become BLOCKED or QUEUED again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .changes import task_event
from .model import TASK_DONE, EventKind, JobState, Status, TaskState
from .policies import normalize
from .state import JobRt, TaskRt
from .status import COUNT_BUCKETS, task_status

if TYPE_CHECKING:
    from .engine import Engine

B, Q, A, R = TaskState.BLOCKED, TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING
S, F, C = TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    B: frozenset({B, Q, C, F}),
    Q: frozenset({Q, A, C, F}),
    A: frozenset({A, R, Q, S, F, C}),
    R: frozenset({R, Q, S, F, C}),
    S: frozenset(),
    F: frozenset(),
    C: frozenset(),
}
NOT_STARTED = (B, Q, A)  # states in which a task is late to start
REOPENED = {F: frozenset({B, Q}), C: frozenset({B, Q})}  # a finished job's task, rerun by request


class IllegalTransition(RuntimeError):
    """A task was moved in a way the lifecycle does not allow: a bug in the engine."""


def check(old: TaskState, new: TaskState) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"a task may not go from {old.name} to {new.name}")


class Lifecycle:
    """States of tasks and jobs, their statuses and counts, and the events that say so."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, job: JobRt, task: TaskRt, why_waiting: str = "") -> None:
        """A new task of `job`: BLOCKED behind its predecessors, else QUEUED."""
        e = self.engine
        e.tasks[task.id] = task
        job.task_ids.append(task.id)
        job.open += 1
        task.pending = len(task.deps)
        for dep in task.deps:
            e.tasks[dep].dependents.append(task.id)
        task.state, task.status = B, Status.UNKNOWN  # new: counted as a change from "nothing"
        e.changes.task(task, new=True)
        if task.pending:
            why_waiting = "waiting for " + ", ".join(sorted({e.tasks[d].group for d in task.deps}))
        self.transition(task, Q if task.pending == 0 else B, why_waiting)

    def transition(self, task: TaskRt, to: TaskState, reason: str = "", *, raw: dict | None = None,
                   enqueue: bool = True, status: Status | None = None) -> None:
        """Move the task to `to` (or show it anew in its state), with its status, counts and event.

        `raw`: the environment's properties that decided a final state (`status`: as the default
        policy reads them, when the caller worked that out already). A task QUEUED with
        `enqueue` goes to the ready queue unless something holds it (holds.py); without, it waits
        for whoever queued it (a retry's backoff, the continuation line) and keeps a hold's reason."""
        if to not in TRANSITIONS[task.state]:
            check(task.state, to)  # raises, saying which move
        e = self.engine
        job = e.jobs[task.job_id]
        task.state = to
        decided, status = status, task_status(to, task.attempt)
        if raw and to in TASK_DONE:  # how it ended, in the environment's words, as the default policy reads them
            status = decided if decided is not None else normalize(task.spec.environment, raw, user=None,
                                                                   default=e.default_policy).status
        held = ""
        if to == Q:
            held = e.holds.admit(task, job) if enqueue else e.holds.still_held(task)
            if held:
                status, reason = Status.ON_HOLD, (reason if not enqueue and reason else held)
        self.restatus(task, job, _late(task, status) if task.late else status)
        task.reason = reason
        task.environment, task.raw = (task.spec.environment, dict(raw)) if raw else ("jobplane", {})
        e.changes.task(task)
        if to == Q and enqueue and not held:
            e.enqueue(task, job)
        e.task_moved(task, to, reason)

    def reopen(self, task: TaskRt, to: TaskState, reason: str) -> None:
        """A FAILED or CANCELLED task of a job that is rerun (reopen.py) waits again: BLOCKED
        behind predecessors that run again too, or QUEUED. Nothing else leaves a final state."""
        if to not in REOPENED.get(task.state, ()):
            raise IllegalTransition(f"a task may not be reopened from {task.state.name} to {to.name}")
        task.state = B
        self.transition(task, to, reason)

    def show(self, task: TaskRt, status: Status, reason: str) -> None:
        """A new status and reason for a task whose state stays as it is (a hold, say)."""
        self.restatus(task, self.engine.jobs[task.job_id], _late(task, status, running=False))
        task.reason = reason
        self.engine.changes.task(task)
        self._task_event(task, task.state.name, reason)

    def restatus(self, task: TaskRt, job: JobRt, status: Status) -> None:
        """Set the task's normalized status, keeping the job's counts per bucket true."""
        old, new = COUNT_BUCKETS.get(task.status), COUNT_BUCKETS.get(status)
        task.status = status
        if old != new:
            if old:
                job.counts[old] = job.counts.get(old, 0) - 1
            if new:
                job.counts[new] = job.counts.get(new, 0) + 1
            self.engine.changes.job(job)

    def _task_event(self, task: TaskRt, raw_status: str, message: str) -> None:
        e = self.engine
        e.changes.add_event(task_event(e.ids.take("event"), e.now, task, raw_status, message))

    # ----- ends ----------------------------------------------------------------------

    def task_done(self, task: TaskRt) -> None:
        """A task reached a final state: release or cancel dependents, finish the job."""
        e = self.engine
        job = e.jobs[task.job_id]
        e.fencing.unfence(task)
        for dep_id in task.dependents:
            dep = e.tasks.get(dep_id)
            if dep is None or dep.state != B:
                continue
            if task.state == S:
                dep.pending -= 1
                if dep.pending == 0:
                    self.transition(dep, Q)
            else:
                self.transition(dep, C, f"upstream task {task.name} did not succeed")
                self.task_done(dep)
        if task.state in (F, C) and "not_ok" in job.counts:
            job.counts["not_ok"] += 1
            e.changes.job(job)
        if task.state == F and (not job.reason or job.reason == job.hold_reason):
            job.reason = f"task {task.name} {task.reason}"
        job.open -= 1
        if job.open == 0:
            self.finish_job(job)

    def finish_job(self, job: JobRt) -> None:
        e = self.engine
        if job.cancelled:
            state = JobState.CANCELLED
        elif _any_not_ok(job.counts):
            state = JobState.FAILED
        else:
            state = JobState.SUCCEEDED
        self.set_job(job, state, job.reason if state != JobState.SUCCEEDED else "")
        job.end_time = e.now
        e.reruns.remember_run(job)
        del e.jobs[job.id]
        e.holds.end_holding(job)
        e.schedules.job_ended(job)
        for tid in job.task_ids:
            task = e.tasks.get(tid)
            if task is not None and task.current is None:
                del e.tasks[tid]

    def set_job(self, job: JobRt, state: JobState, message: str = "") -> None:
        job.state = state
        self.engine.changes.job(job)
        self.engine.event(EventKind.JOB, job_id=job.id, raw_status=state.name, status=job.status,
                          message=message, environment="jobplane")


def _late(task: TaskRt, status: Status, running: bool = True) -> Status:
    """The status a late task shows instead (`running`: RUNNING_LATE too)."""
    if task.late == "start" and task.state in NOT_STARTED:
        return Status.LATE_TO_START
    if running and task.late == "run" and task.state == R:
        return Status.RUNNING_LATE
    return status


def _any_not_ok(counts: dict[str, int]) -> bool:
    """Whether a task ended FAILED or CANCELLED: by state (jobs since `not_ok` was kept), else
    (jobs stored before it) by the failure and cancel buckets."""
    if "not_ok" in counts:
        return counts["not_ok"] > 0
    return bool(counts.get("failure", 0) or counts.get("cancel", 0))


__all__ = ["IllegalTransition", "Lifecycle", "NOT_STARTED", "REOPENED", "TRANSITIONS", "check"]
