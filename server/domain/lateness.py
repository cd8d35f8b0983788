"""Lateness: a job or task not started by its deadline becomes LATE_TO_START, one still running
past its expected end RUNNING_LATE, on time (a timer per deadline) and as an event. A component
of Engine, with no state of its own: its timers carry what they need.

Held work is not late for the time it is held: a task suspended in place is not RUNNING_LATE
while it is paused, and its finish deadline moves on by the time it spent suspended (TaskRt.paused,
timers armed anew on resume; a timer armed before that is stale and does nothing). A job's own
finish deadline moves on by the longest suspension of its tasks' attempts, and it is not late while
everything of it out at providers is suspended. Late-to-start
does not fire for a job held by hand (its tasks wait by the operator's choice; once released, one
past its deadline that still waits is late at once, as after a restart), nor for a task
requeued by a hold (it started already; it waits to go on). A task given back unstarted by the
agent it was handed to (ahead.py: queued ahead, or taken back by a hold or its conditions), or
requeued by a hold before it started, never started: it is late as any other."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .model import EventKind, JobState, Lateness, Status, TaskState
from .lifecycle import NOT_STARTED
from .state import JobRt, TaskRt
from .suspension import SUSPEND

if TYPE_CHECKING:
    from .engine import Engine


def start_deadline(lateness: Lateness, submitted: float) -> float | None:
    """When it must have started: start_by, or max_wait after submit, whichever is first."""
    times = [t for t in (lateness.start_by, submitted + lateness.max_wait_seconds if lateness.max_wait_seconds
                         else None) if t]
    return min(times) if times else None


def finish_deadline(lateness: Lateness, started: float) -> float | None:
    """When it must have finished: finish_by, or max_runtime after it started."""
    times = [t for t in (lateness.finish_by, started + lateness.max_runtime_seconds
                         if lateness.max_runtime_seconds else None) if t]
    return min(times) if times else None


class LatenessWatch:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def watch_start(self, job: JobRt, task: TaskRt | None = None, *, passed_only: bool = False) -> None:
        """At submit (or restore): a timer for the start deadline, if there is one (with
        `passed_only`, only if it has passed: the timer armed at submit waits for the others)."""
        lateness = task.spec.lateness if task is not None else job.spec.lateness
        deadline = start_deadline(lateness, job.submit_time) if lateness else None
        if deadline is not None and not (passed_only and deadline > self.engine.now):
            e, key = self.engine, (job.id, task.id if task is not None else None)
            e.changes.timer(max(0.0, deadline - e.now), lambda engine: engine.lateness.late_start(*key, deadline))

    def watch_finish(self, job: JobRt, task: TaskRt | None, started: float) -> None:
        """When it starts (or on restore, or a suspended task resumes): a timer for the finish
        deadline, if there is one (a task's moved on by the time it spent suspended)."""
        deadline = _task_deadline(task, started) if task is not None else self._job_deadline(job, started)
        if deadline is not None:
            e, key = self.engine, (job.id, task.id if task is not None else None)
            e.changes.timer(max(0.0, deadline - e.now), lambda engine: engine.lateness.late_run(*key, deadline))

    def late_start(self, job_id: int, task_id: int | None, deadline: float) -> None:
        job = self.engine.jobs.get(job_id)
        if job is None:
            return
        if job.hold:  # held by hand: not late for waiting on the operator
            return
        if task_id is None:
            if job.state == JobState.QUEUED and not job.late:
                job.late = "start"
                self._late_event(job, Status.LATE_TO_START, f"not started by {clock(deadline)}")
            return
        task = self.engine.tasks.get(task_id)
        if task is not None and task.state in NOT_STARTED and not task.late and not task.held_attempts:
            task.late = "start"
            self.engine.lifecycle.transition(task, task.state, f"late to start: not started by {clock(deadline)}",
                                              enqueue=False)

    def late_run(self, job_id: int, task_id: int | None, deadline: float) -> None:
        job = self.engine.jobs.get(job_id)
        if job is None:
            return
        if task_id is None:
            if job.state != JobState.RUNNING or job.late == "run" or self._suspended(job):
                return  # over, late already, or all its work suspended: the release arms its timer anew
            if job.start_time is not None and (self._job_deadline(job, job.start_time) or deadline) > deadline:
                return  # its tasks' suspensions moved the deadline on: a newer timer decides
            job.late = "run"
            self._late_event(job, Status.RUNNING_LATE, f"still running at {clock(deadline)}")
            return
        task = self.engine.tasks.get(task_id)
        if task is None or task.state != TaskState.RUNNING or task.late == "run" or task.suspended:
            return  # over, late already, or held: a suspended task's resume arms its timer anew
        if task.current is not None and (_task_deadline(task, task.current.start_time) or deadline) > deadline:
            return  # a timer armed before a suspension moved the deadline on: the newer one decides
        task.late = "run"
        self.engine.lifecycle.transition(task, task.state, f"running late: still running at {clock(deadline)}",
                                          enqueue=False)

    def _job_deadline(self, job: JobRt, started: float) -> float | None:
        """When the job must have finished: its finish deadline, moved on by the longest time
        one of its tasks' attempts spent suspended (a job held with --suspend pauses them all)."""
        deadline = finish_deadline(job.spec.lateness, started) if job.spec.lateness else None
        if deadline is None:
            return None
        tasks = self.engine.tasks
        return deadline + max((tasks[t].paused for t in job.task_ids if t in tasks), default=0.0)

    def _suspended(self, job: JobRt) -> bool:
        """Whether everything of the job out at providers is suspended in place."""
        running = self.engine.suspension.running(job)
        return bool(running) and all(t.suspended.get("mode") == SUSPEND for t in running)

    def _late_event(self, job: JobRt, status: Status, message: str) -> None:
        self.engine.changes.job(job)
        self.engine.event(EventKind.JOB, job_id=job.id, raw_status=job.state.name, status=status, message=message,
                          environment="jobplane", raw={"late": job.late})

    def restore(self, job: JobRt, tasks: list[TaskRt]) -> None:
        if job.state == JobState.RUNNING and job.start_time is not None:
            self.watch_finish(job, None, job.start_time)
        self.watch_starts(job, tasks)
        for task in tasks:
            if task.state == TaskState.RUNNING and task.current is not None and task.current.start_time:
                self.watch_finish(job, task, task.current.start_time)

    def watch_starts(self, job: JobRt, tasks: list[TaskRt], *, passed_only: bool = False) -> None:
        """Timers for the start deadlines of the job (if it has not started) and of its tasks
        that have not: on restore; and as a hold by hand ends, `passed_only` (a deadline that
        passed while it held them fires now: the job is late if it still waits)."""
        if job.state == JobState.QUEUED:
            self.watch_start(job, passed_only=passed_only)
        for task in tasks:
            if task.state in NOT_STARTED and task.spec.lateness:
                self.watch_start(job, task, passed_only=passed_only)


def _task_deadline(task: TaskRt, started: float | None) -> float | None:
    """When the task's running attempt must have finished: its finish deadline, moved on by the
    time the attempt spent suspended."""
    deadline = finish_deadline(task.spec.lateness, started) if task.spec.lateness and started else None
    return deadline + task.paused if deadline is not None else None


def clock(when: float) -> str:
    """A time as users read it in reasons: `2026-12-04 13:00:00 UTC`."""
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
