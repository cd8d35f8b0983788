"""Reports: what agents say about their attempts (started, checkpoint, the environment's raw
status, finished) taken in, fenced by the attempt number: only the provider holding the
current attempt is heard; a superseded attempt is told to stop, and its end confirms the stop.
A finished attempt succeeds the task, or fails it: rerun (transient), retried (backoff), or
failed for good. A component of Engine."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from jobplane.logs import ids

from .adoption import JOB_ID_MAX
from .model import EventKind, JobState, Outcome, Report, ReportKind, Status, TaskState
from .policies import Policy, normalize
from .state import AttemptRt, TaskRt

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

CHECKPOINT_MAX = 1024 * 1024  # bytes of JSON; the agent refuses larger ones too

Rejection = tuple[int, int, str, str]  # (task id, attempt, gRPC code name, reason)


class Reports:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def take(self, provider_id: str, conn_id: int, reports: list[Report]) -> list[Rejection] | None:
        """Accept each report from the provider holding the current attempt; the others are
        rejected: returned as (task id, attempt, gRPC code name, reason). None when `conn_id` is
        not the provider's current connection: nothing was taken, so nothing may be acknowledged
        (the agent sends its reports again on a current one)."""
        e = self.engine
        provider = e.providers.get(provider_id)
        if provider is None or provider.conn_id != conn_id:
            return None
        provider.last_seen = e.now
        rejected = []
        for report in reports:
            rejection = self._one(provider_id, report)
            if rejection is not None:
                rejected.append(rejection)
        return rejected

    def _one(self, provider_id: str, report: Report) -> Rejection | None:
        task = self.engine.tasks.get(report.task_id)
        attempt = task.current if task is not None else None
        tid, number = report.task_id, report.attempt
        if attempt is not None and attempt.provider != provider_id and number >= attempt.number:
            return tid, number, "PERMISSION_DENIED", f"task {tid} is assigned to another provider, not {provider_id}"
        if attempt is None or attempt.number != number or attempt.provider != provider_id:
            self._stale(provider_id, report)
            return tid, number, "FAILED_PRECONDITION", f"attempt {number} of task {tid} is not the current " \
                                                      f"attempt on {provider_id}"
        if len(report.external_job_id) > JOB_ID_MAX:
            return tid, number, "INVALID_ARGUMENT", f"external_job_id of {len(report.external_job_id)} " \
                                                   f"characters is over the limit of {JOB_ID_MAX}"
        if report.kind == ReportKind.CHECKPOINT and len(report.checkpoint_json) > CHECKPOINT_MAX:
            return tid, number, "INVALID_ARGUMENT", f"checkpoint of {len(report.checkpoint_json)} bytes is " \
                                                   f"over the limit of {CHECKPOINT_MAX}"
        if report.kind == ReportKind.STARTED:
            self.engine.adoption.record_job(attempt, report.external_job_id)
            self._started(task, attempt)
        elif report.kind == ReportKind.CHECKPOINT:
            self._checkpoint(task, attempt, report.checkpoint_json)
        elif report.kind == ReportKind.STATUS:
            self.engine.adoption.record_job(attempt, report.external_job_id)
            self._raw_status(task, report.raw)
        else:
            self._finished(task, attempt, report)
        return None

    def _stale(self, provider_id: str, report: Report) -> None:
        """A report from a superseded attempt: never accepted; the agent must stop it."""
        log.info("rejected report for task %s attempt %s from %s: not the current attempt",
                 report.task_id, report.attempt, provider_id,
                 extra=ids(task_id=report.task_id, attempt=report.attempt, provider_id=provider_id))
        if report.kind != ReportKind.FINISHED:  # it still runs somewhere: stop it
            self.engine.adoption.stop_superseded(provider_id, report.task_id, report.attempt)
        else:  # it ended: a task waiting for that may go on
            self.engine.fencing.stop_confirmed(provider_id, report.task_id, report.attempt)

    def _checkpoint(self, task: TaskRt, attempt: AttemptRt, state: str) -> None:
        """The latest progress state of the current attempt: the next attempt starts there."""
        attempt.checkpoint = task.checkpoint = state
        task.checkpoints += 1
        self.engine.changes.attempt(attempt)
        self.engine.changes.task(task)

    def _raw_status(self, task: TaskRt, raw: dict[str, str]) -> None:
        """The environment's raw properties changed (e.g. an external scheduler's queue and
        status): an event with them and their normalized status under the default policy."""
        e = self.engine
        environment = task.spec.environment
        decision = normalize(environment, raw, user=None, default=e.default_policy)
        attempt = task.current
        if attempt is not None:
            attempt.environment, attempt.raw = environment, dict(raw)
            e.changes.attempt(attempt)
        if task.state == TaskState.RUNNING:  # what the environment says shows while it runs
            late = task.late == "run" and decision.status == Status.RUNNING
            e.lifecycle.restatus(task, e.jobs[task.job_id], Status.RUNNING_LATE if late else decision.status)
            task.environment, task.raw = environment, dict(raw)
            e.changes.task(task)
        e.event(EventKind.TASK, job_id=task.job_id, task_id=task.id, task_name=task.name,
                provider_id=task.provider or "", attempt=task.attempt,
                raw_status=raw.get("status") or raw.get("state") or raw.get("State", ""),  # State: Slurm's
                raw=dict(raw), status=decision.status, message=decision.reason, environment=environment)

    def _started(self, task: TaskRt, attempt: AttemptRt) -> None:
        if task.state != TaskState.ASSIGNED:
            return
        e = self.engine
        attempt.start_time = e.now
        e.changes.attempt(attempt)
        e.queue_ahead.forget(task.id)  # started before it could be taken back (a hold's race): it runs on
        job = e.jobs[task.job_id]
        if job.state == JobState.QUEUED:
            job.start_time = e.now
            e.lifecycle.set_job(job, JobState.RUNNING)
            e.lateness.watch_finish(job, None, e.now)
        e.lifecycle.transition(task, TaskState.RUNNING)
        e.changes.timing("running", task.ready_at, e.now)
        e.changes.timing("restarted", task.lost_at, e.now)
        task.lost_at = 0.0
        task.paused = 0.0  # a new attempt: none of its time was suspended yet
        if e.suspension.started(task):  # suspended while assigned: paused as it starts (suspension.py)
            return
        e.supervision.watch(task)
        if task.spec.lateness:
            e.lateness.watch_finish(job, task, e.now)

    def _finished(self, task: TaskRt, attempt: AttemptRt, report: Report) -> None:
        e = self.engine
        if report.raw.get("state") == "prerequisite_missing" and task.state != TaskState.CANCELLED:
            e.inventory.vanished(task, attempt.provider, report.raw.get("missing", ""), report.error)
            return
        if e.suspension.requeued(task, attempt, report) or e.queue_ahead.given_back(task, attempt, report):
            return
        outcome, verdict, status = _verdict(task.spec.environment, report.outcome or Outcome.FAILED, report.raw,
                                            e.default_policy)
        if report.raw:
            attempt.environment, attempt.raw = task.spec.environment, dict(report.raw)
        e.queue_ahead.finished(e.jobs.get(task.job_id), attempt, e.providers.get(attempt.provider))
        e.close_attempt(task, attempt, int(outcome), report.exit_code, report.error)
        if task.state == TaskState.CANCELLED:
            self._keep_output(task, report)  # a cancelled task's output is kept, as a timed-out one's
            e.forget_if_done(task)
            return
        task.exit_code = report.exit_code
        task.result_json, task.error = report.result_json, report.error
        task.stdout_tail, task.stderr_tail = report.stdout_tail, report.stderr_tail
        if outcome == Outcome.SUCCEEDED:
            e.lifecycle.transition(task, TaskState.SUCCEEDED, "", raw=report.raw, status=status)
            e.lifecycle.task_done(task)
        else:
            self.failed(task, verdict or _describe_failure(outcome, report), report.raw,
                        timed_out=outcome == Outcome.TIMED_OUT, exit_code=report.exit_code, status=status)

    def _keep_output(self, task: TaskRt, report: Report) -> None:
        if report.stdout_tail or report.stderr_tail:
            task.stdout_tail, task.stderr_tail = report.stdout_tail, report.stderr_tail
            self.engine.changes.task(task)

    def failed(self, task: TaskRt, reason: str, raw: dict, *, timed_out: bool = False,
               exit_code: int | None = None, status: Status | None = None) -> None:
        """The attempt failed: rerun it if transient, retry it if it may, else fail the task.
        `status`: `raw` as the default policy reads it, when that was worked out already."""
        e = self.engine
        if not timed_out and e.reruns.rerun(task, reason, raw, exit_code):
            return
        left = task.tries < task.max_attempts
        if left and _retryable(task.spec.retry_on, timed_out, exit_code):
            delay = e.supervision.backoff(task)
            # Restarting: jobplane's state, not the attempt's raw exit; queued once the backoff is over.
            e.lifecycle.transition(task, TaskState.QUEUED, f"attempt {task.attempt} {reason}; retrying in "
                                                           f"{delay:.1f}s", enqueue=False)
            attempt = task.attempt
            e.changes.timer(delay, lambda engine: engine.release(task.id, attempt))
        else:
            e.lifecycle.transition(task, TaskState.FAILED, reason, raw=raw, status=status)
            e.lifecycle.task_done(task)


def _verdict(environment: str, outcome: Outcome, raw: dict[str, str],
             default: Policy) -> tuple[Outcome, str, Status | None]:
    """One truth: how an attempt ended, as the default policy reads its raw properties, decides
    whether it succeeded, for its job and its `after` dependents as for everyone who looks (a
    scheduler's ABEND with exit code 0 failed). Where no rule decides, the agent's outcome stands.
    Returns the outcome, when the policy overruled a success why, and the normalized status of
    `raw` (None when it was not worked out), which the task's final state then shows: one
    normalization per finished attempt, not two."""
    if not raw or outcome not in (Outcome.SUCCEEDED, Outcome.FAILED):
        return outcome, "", None
    decision = normalize(environment, raw, user=None, default=default)
    if outcome == Outcome.SUCCEEDED and decision.status == Status.FAILURE:
        return Outcome.FAILED, f"ended as FAILURE: {decision.reason}", decision.status
    if outcome == Outcome.FAILED and decision.status == Status.SUCCESS:
        return Outcome.SUCCEEDED, "", decision.status
    return outcome, "", decision.status


def _retryable(retry_on: tuple[str, ...], timed_out: bool, exit_code: int | None) -> bool:
    if not retry_on or "error" in retry_on:
        return True
    if timed_out:
        return "timeout" in retry_on
    return exit_code is not None and f"exit_code:{exit_code}" in retry_on


def _describe_failure(outcome: Outcome, report: Report) -> str:
    if outcome == Outcome.TIMED_OUT:
        return "timed out"
    if report.exit_code is not None:
        return f"exited with code {report.exit_code}"
    return report.error.strip().splitlines()[0] if report.error.strip() else outcome.name.lower()


__all__ = ["CHECKPOINT_MAX", "Reports"]
