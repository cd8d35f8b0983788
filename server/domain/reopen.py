"""Rerun of a finished job by request (`jobplane rerun JOB [--failed]`, like Slurm's `scontrol
requeue` or a Temporal reset): its unsuccessful tasks run again as new attempts of the same
tasks, not as a new job. FAILED tasks (and, unless only failed ones are asked for, CANCELLED
ones) run again, each with its whole `max_attempts` and from no checkpoint; a task cancelled
because a predecessor did not succeed waits for it again. The job is RUNNING again and ends
again. Its lateness deadlines stay those of its first submit and start (a rerun past them is
late); its run window is not applied again; conflict rules and locks are (the tasks are
admitted like any queued task).

A component of Engine with no state of its own: a finished job is no longer in memory, so the
caller brings it and its tasks back from the database (store.finished), and they leave memory
again when the job ends again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import FailedPrecondition
from .model import JOB_DONE, JobState, Outcome, TaskState
from .state import JobRt, TaskRt

if TYPE_CHECKING:
    from .engine import Engine

F, C, S = TaskState.FAILED, TaskState.CANCELLED, TaskState.SUCCEEDED
NAMES_SHOWN = 5  # task names an event lists before "and N more"


class Reopening:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def rerun(self, job: JobRt, tasks: list[TaskRt], failed_only: bool, by: str,
              unended: dict[int, tuple[str, int]] | None = None) -> list[int]:
        """Reopen the finished `job` (as stored, with all its `tasks`) and queue again the tasks
        to rerun; returns their ids, in the job's order. `unended`: task id -> (provider, attempt)
        of a last attempt the database does not know to have ended (its stop was not confirmed
        before a restart): the task's next attempt waits until it certainly has."""
        self._check_finished(job)
        again = chosen(tasks, failed_only)
        if not again:
            raise FailedPrecondition(_nothing_to_rerun(job, tasks, failed_only))
        e = self.engine
        unended = {**(unended or {}), **self._still_stopping(again)}
        ids = {t.id for t in again}
        e.jobs[job.id] = job
        job.task_ids = [t.id for t in sorted(tasks, key=lambda t: t.idx)]
        # Cancelled by request it stays, while a task cancelled then stays cancelled (failed_only).
        job.cancelled = job.state == JobState.CANCELLED and any(t.state == C and t.id not in ids for t in tasks)
        job.reason = job.reason if job.cancelled else ""
        job.hold, job.late, job.end_time = "", "", None
        job.start_time = job.start_time if job.start_time is not None else e.now
        job.open = len(again)
        if "not_ok" in job.counts:
            job.counts["not_ok"] -= len(again)
        for task in again:
            e.tasks[task.id] = task
            _fresh(task)
            task.pending = sum(1 for d in task.deps if d in ids)
            for dep in task.deps:
                if dep in ids:
                    e.tasks[dep].dependents.append(task.id)
            e.inventory.remember(task)
        e.lifecycle.set_job(job, JobState.RUNNING, f"rerun by {by}: {_count(again, 'task')} run again as new "
                                                   f"attempts ({_names(again)})")
        for task in again:
            self._queue(task, by, unended.get(task.id))
        e.lateness.restore(job, again)  # its deadlines, as after a restart: past them, it is late
        return [t.id for t in again]

    def _check_finished(self, job: JobRt) -> None:
        if job.id in self.engine.jobs or job.state not in JOB_DONE:
            raise FailedPrecondition(
                f"job {job.id} is still running; wait for it to end (`jobplane jobs get {job.id} --wait`) or "
                f"cancel it (`jobplane cancel {job.id}`), then rerun it")

    def _still_stopping(self, again: list[TaskRt]) -> dict[int, tuple[str, int]]:
        """Tasks to rerun whose cancelled attempt has not reported its end yet (a cancel just
        before the rerun): that attempt is over for the server now, and the task's next one
        waits until it has certainly stopped (its late report is then a superseded attempt's)."""
        e = self.engine
        stopping = {}
        for task in again:
            live = e.tasks.pop(task.id, None)
            if live is not None and live.current is not None:
                attempt = live.current
                e.close_attempt(live, attempt, int(Outcome.CANCELLED), None, "cancelled; its job was rerun")
                stopping[task.id] = (attempt.provider, attempt.number)
        return stopping

    def _queue(self, task: TaskRt, by: str, unended: tuple[str, int] | None) -> None:
        """The task waits again: BLOCKED behind predecessors that run again too, else QUEUED
        (behind its last attempt, if that may still run)."""
        e = self.engine
        reason = f"rerun by {by}"
        waits = e.fencing.fence(task, *unended) if unended is not None else ""
        if waits:
            e.provider_rules.stop_attempt(unended[0], task.id, unended[1], reason)
        if task.pending:
            groups = sorted({e.tasks[d].group for d in task.deps if d in e.tasks})
            e.lifecycle.reopen(task, TaskState.BLOCKED, f"{reason}: waiting for {', '.join(groups)}")
        else:
            e.lifecycle.reopen(task, TaskState.QUEUED, f"{reason}; it starts {waits}" if waits else reason)


def chosen(tasks: list[TaskRt], failed_only: bool) -> list[TaskRt]:
    """The tasks a rerun runs again, in the job's order: the FAILED ones (and CANCELLED ones,
    unless `failed_only`), and the cancelled tasks every unsuccessful predecessor of which runs
    again (they were cancelled because of those). A task with an unsuccessful predecessor that
    does not run again stays as it is: it could never start."""
    by_id = {t.id: t for t in tasks}
    wanted = {F} if failed_only else {F, C}
    again = {t.id for t in tasks if t.state in wanted}

    def waits_on(task: TaskRt) -> list[int]:
        return [d for d in task.deps if d in by_id and by_id[d].state != S]

    grown = True
    while grown:  # cancelled dependents of what runs again
        grown = False
        for task in tasks:
            if task.id not in again and task.state == C and (deps := waits_on(task)) and set(deps) <= again:
                again.add(task.id)
                grown = True
    shrunk = True
    while shrunk:  # what could never start
        shrunk = False
        for task in tasks:
            if task.id in again and not set(waits_on(task)) <= again:
                again.discard(task.id)
                shrunk = True
    return sorted((t for t in tasks if t.id in again), key=lambda t: t.idx)


def _fresh(task: TaskRt) -> None:
    """A task as it runs again: a new attempt numbered on from its last, with its whole
    max_attempts, from no checkpoint, with nothing of its last run's outcome."""
    task.attempt_base = task.attempt
    task.lost_attempts = task.reruns = task.held_attempts = task.given_back = 0
    task.exit_code, task.provider, task.current, task.fence = None, None, None, None
    task.result_json = task.error = task.stdout_tail = task.stderr_tail = task.checkpoint = ""
    task.late = task.adopt_job = ""
    task.dependents = []


def _nothing_to_rerun(job: JobRt, tasks: list[TaskRt], failed_only: bool) -> str:
    if job.state == JobState.SUCCEEDED:
        return f"job {job.id} succeeded: every task did, so there is nothing to rerun; submit it again to run it anew"
    cancelled = sum(1 for t in tasks if t.state == C)
    if failed_only and cancelled:
        return (f"job {job.id} has no failed task to rerun ({_count(cancelled, 'task')} cancelled); rerun it "
                "without --failed (failed_only = false) to run the cancelled ones again")
    return f"job {job.id} has no failed or cancelled task that could run again; there is nothing to rerun"


def _count(items, noun: str) -> str:
    n = items if isinstance(items, int) else len(items)
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _names(tasks: list[TaskRt]) -> str:
    shown = ", ".join(t.name for t in tasks[:NAMES_SHOWN])
    return shown + (f" and {len(tasks) - NAMES_SHOWN} more" if len(tasks) > NAMES_SHOWN else "")


__all__ = ["Reopening", "chosen"]
