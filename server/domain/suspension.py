"""Suspension: holding work that already runs. A running attempt is either suspended (paused in
place at its agent: every process stopped or its cgroup frozen, its slot kept, its overdue and
timeout checks paused) or requeued (stopped, SIGTERM first so it may checkpoint, and queued
again, to start from its last checkpoint as a continuation does). Either shows ON_HOLD with the
reason. A hold by hand (HoldJob with a mode, or a conflict rule applied to running jobs) is let
go by ReleaseJob; a lost runtime condition (`on_condition_lost`) by the condition holding again.
A component of Engine: the tasks' `suspended` records are its state (persisted with them)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import FailedPrecondition
from .ahead import HELD
from .changes import Suspend
from .model import EventKind, Outcome, Report, Status, TaskState
from .state import AttemptRt, JobRt, TaskRt
from .status import task_status

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

SUSPEND, REQUEUE = "suspend", "requeue"  # modes
# The normalized status of a task held while it runs, here and nowhere else: ON_HOLD, with the
# reason (the INACTIVE mapping of policies.py may choose otherwise for a suspended task).
HELD_STATUS = Status.ON_HOLD
HOLD, CONDITION = "hold", "condition"  # causes: what lets it go


class Suspension:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ----- what runs ----------------------------------------------------------------

    def running(self, job: JobRt) -> list[TaskRt]:
        """The job's tasks out at a provider (assigned or running)."""
        e = self.engine
        tasks = (e.tasks.get(tid) for tid in job.task_ids)
        return [t for t in tasks if t is not None and t.current is not None
                and t.state in (TaskState.ASSIGNED, TaskState.RUNNING)]

    def check(self, job: JobRt, mode: str) -> None:
        """FailedPrecondition, before anything changes, when the mode cannot hold what runs."""
        if mode != SUSPEND:
            return
        for task in self.running(job):
            if task.spec.environment != "process":
                raise FailedPrecondition(f"task {task.name} of job {job.id} is a {task.spec.environment} task, and "
                                         "only command tasks can be suspended in place; use --requeue (mode "
                                         "HOLD_MODE_REQUEUE) to stop it and run it again from its checkpoint on release")

    def hold_running(self, job: JobRt, mode: str, why: str, cause: str = HOLD) -> tuple[int, int]:
        """Suspend or requeue every task of the job that runs: how many, and how many of those
        its agent was asked to give back too (`hold_task`)."""
        tasks = [t for t in self.running(job) if (not t.suspended if mode == SUSPEND
                                                   else t.suspended.get("mode") != REQUEUE)]
        return len(tasks), sum(self.hold_task(task, mode, why, cause) for task in tasks)

    def hold_task(self, task: TaskRt, mode: str, why: str, cause: str) -> bool:
        """Suspend the task's attempt in place, or stop it to be queued again. One assigned but
        not known to have started is suspended too: its agent may have started it already (the
        start report is on its way), or starts it and pauses it at once (`started`). Before
        that, its agent is asked to give it back if it has not given it a slot (ahead.py), so
        that a task queued ahead waits unstarted, as queued ones do, instead of taking a slot
        to be paused in. Whether it was asked that."""
        if mode == SUSPEND:
            return self._suspend(task, why, cause)
        self._requeue(task, why, cause)
        return False

    def _suspend(self, task: TaskRt, why: str, cause: str) -> bool:
        e = self.engine
        attempt = task.current
        # (given back: close_attempt forgets the suspension)
        asked = task.state == TaskState.ASSIGNED and e.queue_ahead.take_back(
            task, HELD.format(why) if cause == HOLD else why)
        task.suspended = {"mode": SUSPEND, "cause": cause, "since": e.now, "reason": why}
        e.supervision.unwatch(task.id)  # a paused attempt is neither overdue nor past its timeout
        e.changes.suspend(attempt.provider, Suspend(task.id, attempt.number, False, why))
        e.lifecycle.show(task, HELD_STATUS, f"suspended: {why}")
        return asked

    def started(self, task: TaskRt) -> bool:
        """The start report of an attempt suspended while it was assigned: its agent pauses it
        as it starts, so it stays held (not watched for overdue, timeout or lateness: the
        release arms those), and its pause counts from now; True. False if it is not held."""
        if task.suspended.get("mode") != SUSPEND:
            return False
        e = self.engine
        task.suspended["since"] = e.now
        e.lifecycle.show(task, HELD_STATUS, f"suspended: {task.suspended.get('reason', '')} (it started as the "
                                            "suspension reached its agent, which pauses it)")
        return True

    def _requeue(self, task: TaskRt, why: str, cause: str) -> None:
        e = self.engine
        attempt = task.current
        task.suspended = {"mode": REQUEUE, "cause": cause, "since": e.now, "reason": why}
        e.provider_rules.stop_attempt(attempt.provider, task.id, attempt.number, f"requeued: {why}")
        e.lifecycle.show(task, HELD_STATUS, f"stopping to be queued again: {why}")

    # ----- letting go ---------------------------------------------------------------

    def release(self, job: JobRt, cause: str = HOLD, why: str = "") -> int:
        """Continue the job's tasks suspended for `cause` (`why`: what let them go); how many.
        (Requeued ones wait as queued tasks: the holds let them go.)"""
        tasks = [t for t in self.running(job) if t.suspended.get("mode") == SUSPEND
                 and t.suspended.get("cause") == cause]
        for task in tasks:
            self.resume(task, why or ("released by hand" if cause == HOLD else "its conditions hold again"))
        if tasks and job.start_time and job.late != "run":  # the job's own finish deadline moves on too
            self.engine.lateness.watch_finish(job, None, job.start_time)
        return len(tasks)

    def resume(self, task: TaskRt, why: str) -> None:
        """The attempt goes on where it stopped; its checks count on from there."""
        e = self.engine
        attempt = task.current
        paused = max(0.0, e.now - task.suspended.get("since", e.now))
        task.suspended = {}
        task.paused += paused
        e.changes.suspend(attempt.provider, Suspend(task.id, attempt.number, True, why))
        if attempt.start_time:  # its overdue and timeout checks move on by the time it was paused
            e.supervision.watch(task, since=attempt.start_time + task.paused)
        if attempt.start_time and task.late != "run":  # and its finish deadline (lateness.py)
            e.lateness.watch_finish(e.jobs[task.job_id], task, attempt.start_time)
        status = Status.RUNNING_LATE if task.late == "run" else task_status(task.state, task.attempt)
        e.lifecycle.show(task, status, f"resumed: {why}")

    def reconnected(self, provider) -> None:
        """A provider (re)connected holding attempts suspended here: it is told again (a restarted
        agent process adopted them and knows nothing of it, or the message was lost with a stream).
        Those resumed since their attempt began are told to go on, again: a release made while
        no stream was open went nowhere, and its keeper still holds them stopped (a resume of an
        attempt not paused changes nothing)."""
        e = self.engine
        for tid in provider.in_flight:
            task = e.tasks.get(tid)
            if task is None or task.current is None:
                continue
            if task.suspended.get("mode") == SUSPEND:
                why = task.suspended.get("reason", "")
                e.changes.suspend(provider.id, Suspend(task.id, task.current.number, False, why))
            elif task.paused > 0:
                e.changes.suspend(provider.id, Suspend(task.id, task.current.number, True, "released"))

    # ----- the stopped attempt's end ------------------------------------------------

    def requeued(self, task: TaskRt, attempt: AttemptRt, report: Report) -> bool:
        """The report ends an attempt stopped to be requeued: the task is queued again (held,
        if its job is), to start from its last checkpoint; True. False for any other end (it
        finished on its own first), which counts as usual. Neither attempt counts as a try; one
        still ASSIGNED never started (its agent reports in order, and no start came before its
        end), so it counts as one given back unstarted (TaskRt.given_back), not as one a hold
        stopped: the task may still become late to start."""
        if (task.suspended.get("mode") != REQUEUE or report.outcome != Outcome.CANCELLED
                or task.state not in (TaskState.ASSIGNED, TaskState.RUNNING)):
            return False
        e = self.engine
        why = task.suspended.get("reason", "")
        task.suspended = {}
        if task.state == TaskState.ASSIGNED:
            task.given_back += 1
            e.close_attempt(task, attempt, int(Outcome.CANCELLED), report.exit_code, f"requeued before it started: {why}")
            e.lifecycle.transition(task, TaskState.QUEUED, f"requeued before it started: {why}")
            return True
        task.held_attempts += 1
        e.close_attempt(task, attempt, int(Outcome.CANCELLED), report.exit_code, f"requeued: {why}")
        resumes = "from its last checkpoint" if task.checkpoint else "from the start (it saved no checkpoint)"
        e.lifecycle.transition(task, TaskState.QUEUED, f"requeued: {why}; it runs again {resumes}")
        return True

    def forget(self, task: TaskRt) -> None:
        """Its attempt is over (lost, ended): nothing is held in place any more."""
        task.suspended = {}

    # ----- runtime conditions -------------------------------------------------------

    def facts_changed(self, provider_id: str, unmet) -> None:
        """A heartbeat's facts: a task assigned there but not started whose conditions fail is
        taken back (ahead.py; it is queued again, to wait for a provider that meets them); a
        running task whose job says what to do when its conditions stop holding is suspended or
        requeued; a suspended one continues when they hold again. `unmet(task)` lists what the
        provider does not meet of the task's job's conditions."""
        e = self.engine
        provider = e.providers.get(provider_id)
        if provider is None:
            return
        for tid in list(provider.in_flight):
            task = e.tasks.get(tid)
            job = e.jobs.get(task.job_id) if task is not None else None
            if job is None or task.current is None or not job.spec.conditions:
                continue
            if task.state == TaskState.ASSIGNED and not task.suspended:
                missing = unmet(task)  # not started there: while they fail it must not start, as a queued one does not
                if missing:
                    e.queue_ahead.take_back(task, f"provider {provider_id} no longer meets its conditions ({missing})")
                continue
            if job.spec.on_condition_lost not in (SUSPEND, REQUEUE):
                continue
            missing = unmet(task)
            if missing and not task.suspended and task.state == TaskState.RUNNING:
                self.hold_task(task, job.spec.on_condition_lost, f"provider {provider_id} no longer meets its "
                                                                 f"conditions ({missing})", CONDITION)
                self._event(task, job.spec.on_condition_lost, missing)
            elif not missing and task.suspended.get("cause") == CONDITION and task.suspended.get("mode") == SUSPEND:
                if job.hold:  # held by hand meanwhile: the release lets it go
                    task.suspended["cause"] = HOLD
                else:
                    self.resume(task, "its conditions hold again")

    def _event(self, task: TaskRt, action: str, missing: str) -> None:
        self.engine.event(EventKind.TASK, job_id=task.job_id, task_id=task.id, task_name=task.name,
                          provider_id=task.provider or "", attempt=task.attempt, raw_status=task.state.name,
                          raw={"decision": f"condition_lost_{action}"}, status=task.status,
                          message=f"on_condition_lost = {action}: {missing}")


__all__ = ["CONDITION", "HELD_STATUS", "HOLD", "REQUEUE", "SUSPEND", "Suspension"]
