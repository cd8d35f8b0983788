"""The engine: every state change of jobs, tasks, attempts and providers happens here,
synchronously, into a ChangeSet that the core commits before anything is announced.
It knows nothing of gRPC, asyncio or SQL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import FailedPrecondition
from .dispatch import ReadyQueue
from .model import (
    TASK_DONE,
    TASK_OUT,
    Event,
    EventKind,
    JobSpec,
    JobState,
    Outcome,
    ProviderState,
    Report,
    ReportKind,
    Status,
    TaskDraft,
    TaskState,
)
from .adoption import JOB_ID_MAX, AdoptionRules
from .conditions import ConditionRules
from .continuation import Continuations, Pending
from .fences import Fences
from .fencing import FenceRules
from .holds import HoldRules
from .inventory import InventoryRules
from .lateness import NOT_STARTED, LatenessRules
from .policies import normalize
from .providers import CONNECTED, ProviderRules
from .requests import PriorJob, RequestKey, Requests
from .reruns import RerunRules
from .state import AttemptRt, ChangeSet, JobRt, ProviderRt, TaskRt
from .status import COUNT_BUCKETS, task_status
from .supervision import Supervision
from .timing import Calendar

log = logging.getLogger(__name__)

CHECKPOINT_MAX = 1024 * 1024  # bytes of JSON; the agent refuses larger ones too


@dataclass
class Counters:
    """Next ids; loaded from the database's maxima on start."""

    job: int = 1
    task: int = 1
    attempt: int = 1
    event: int = 1
    continuation: int = 1
    probe: int = 1

    def take(self, name: str, n: int = 1) -> int:
        first = getattr(self, name)
        setattr(self, name, first + n)
        return first


@dataclass
class EngineConfig:
    reconnect_grace: float = 1.0
    restart_grace: float = 0.0  # after a server restart; 0: sized from each agent's reconnect backoff
    heartbeat_tolerance: float = 2.0
    probe_deadline: float = 1.0
    standby_idle: float = 5.0
    retry_backoff: float = 1.0
    retry_backoff_max: float = 60.0
    terminate_grace: float = 5.0
    # The calendar continuation timing rules are read in.
    timezone: str = "UTC"
    period_ends: tuple[str, ...] = ()
    inventory_ttl: float = 300.0  # seconds a scan result counts as fresh


class Engine(ProviderRules, Supervision, Continuations, InventoryRules, LatenessRules, HoldRules, RerunRules,
             ConditionRules, FenceRules, AdoptionRules):
    def __init__(self, config: EngineConfig, counters: Counters | None = None) -> None:
        self.config = config
        self.ids = counters or Counters()
        self.jobs: dict[int, JobRt] = {}
        self.tasks: dict[int, TaskRt] = {}
        self.providers: dict[str, ProviderRt] = {}
        self.ready = ReadyQueue()
        self.now = 0.0
        self._cs = ChangeSet()
        self._dispatch_wanted = False
        self._watch: dict[int, float] = {}  # task id -> when to check on it
        self._awaiting: set[int] = set()  # overdue tasks whose provider was probed
        self._pending: list[Pending] = []  # tasks waiting to continue, in continuation order
        self.calendar = Calendar(config.timezone, config.period_ends)
        self.signatures: dict = {}  # id -> Signature of every prerequisite of unfinished work
        self._prereq_tasks: set[int] = set()  # unfinished tasks with prerequisites
        self.conflict_rules: dict = {}  # name -> conflicts.ConflictRule
        self._holders: dict[int, JobRt] = {}  # admitted jobs: they hold their locks until they end
        self._held: dict[int, dict[int, None]] = {}  # job id -> its tasks on hold, in order
        self._conditional: dict[int, None] = {}  # queued tasks whose job has runtime conditions
        self.fences = Fences()  # tasks whose earlier attempt may still run somewhere
        self._parked: set[int] = set()  # fenced tasks that wait for their fence to enter the ready queue
        self._init_reruns()
        self.requests = Requests()  # request ids of idempotent submits -> the jobs they made

    # ----- restart -------------------------------------------------------------------

    def restore(self, jobs: list[JobRt], tasks: list[TaskRt], providers: list[ProviderRt],
                pending: Sequence[Pending] = (), rules: Sequence = ()) -> None:
        """Resume from the database: queued work is queued again (or held again), waiting
        continuations keep their order; work that was out at a provider waits for that
        provider to reconnect within the grace, else goes on elsewhere."""
        self._pending = sorted(pending)
        self.conflict_rules = {r.name: r for r in rules}
        continuing = {p.task_id for p in pending}
        self.providers = {p.id: p for p in providers}
        self.jobs = {j.id: j for j in jobs}
        self.tasks = {t.id: t for t in tasks}
        orphans = []
        self._restore_holders(jobs, tasks)
        for job in jobs:
            self._watch_window(job)
        for task in sorted(tasks, key=lambda t: self._line_key(t.job_id)):
            job = self.jobs[task.job_id]
            job.task_ids.append(task.id)
            task.pending = sum(1 for d in task.deps if self.tasks[d].state != TaskState.SUCCEEDED)
            for dep in task.deps:
                self.tasks[dep].dependents.append(task.id)
            if task.state in TASK_DONE:
                continue
            job.open += 1
            self._remember_signatures(task)
            if task.fence is not None:
                self._restore_fence(task)
            if task.state == TaskState.QUEUED and task.id not in continuing:
                self._requeue(task, job)
            elif task.state in TASK_OUT:
                provider = self.providers.get(task.provider or "")
                if provider is not None and task.current is not None and provider.state != ProviderState.LOST:
                    provider.in_flight.add(task.id)
                    if task.state == TaskState.RUNNING:
                        self._watch_task(task, since=task.current.start_time)
                else:
                    orphans.append(task)
        self.tasks = {t.id: t for t in tasks if t.state not in TASK_DONE}
        for provider in self.providers.values():
            provider.conn_id, provider.accepting = 0, False
            if provider.state not in (ProviderState.LOST, ProviderState.REVOKED, ProviderState.STOPPED):
                self._await_after_restart(provider)
        for task in orphans:
            if task.current is None:
                self._set_task(task, TaskState.QUEUED, "its attempt was not recorded; queued again")
            else:
                self._lose(task, f"provider {task.provider} is gone")
        for job in self.jobs.values():
            self._restore_lateness(job, [self.tasks[t] for t in job.task_ids if t in self.tasks])
        for job in list(self.jobs.values()):
            if job.open == 0:
                self._finish_job(job)
        self._dispatch_wanted = True

    # ----- batches -------------------------------------------------------------------

    def begin(self, now: float) -> None:
        self.now = now

    def take_changes(self) -> ChangeSet:
        if self._dispatch_wanted:
            self._dispatch_wanted = False
            self.dispatch()
        cs, self._cs = self._cs, ChangeSet()
        return cs

    # ----- jobs ----------------------------------------------------------------------

    def submit(self, spec: JobSpec, drafts: list[TaskDraft], owner: str = "",
               request: RequestKey | None = None) -> JobRt | PriorJob:
        """A new job; or, when this owner sent `request`'s id before, the job it made then (requests.py)."""
        prior = self.requests.prior(owner, request, self.now) if request is not None else None
        if prior is not None:
            return prior
        unmet = self._unmet_requirements(drafts)
        if unmet and not spec.wait_for_providers:
            index, why = next(iter(unmet.values()))
            raise FailedPrecondition(f"spec.tasks[{index}].requires: {why}; start a matching agent "
                                     "or set wait_for_providers = true to queue the job until one joins")
        lacking = self._unmet_prerequisites(drafts)
        if lacking and not spec.wait_for_providers:
            raise FailedPrecondition(f"spec.tasks[{lacking[0]}].prerequisites: {lacking[1]}; provide it on an "
                                     "agent or set wait_for_providers = true to queue the job until one has it")
        job = JobRt(self.ids.take("job"), spec.name, spec.priority, spec, JobState.QUEUED, self.now, owner=owner,
                    request=request)
        if request is not None:
            self.requests.remember(owner, request, job.id, self.now)
        job.counts = {"total": len(drafts), "not_ok": 0}  # not_ok: tasks that ended FAILED or CANCELLED
        self.jobs[job.id] = job
        self._cs.job(job, new=True)
        self._event(EventKind.JOB, job_id=job.id, raw_status="QUEUED", status=Status.WAITING,
                    message=f"submitted with {len(drafts)} tasks", environment="jobplane")
        self._watch_start(job)
        self._watch_window(job)
        first = self.ids.take("task", len(drafts))
        by_group: dict[str, list[int]] = {}
        for i, draft in enumerate(drafts):
            by_group.setdefault(draft.group, []).append(first + i)
        for i, draft in enumerate(drafts):
            deps = [d for g in draft.after_groups for d in by_group[g]]
            task = TaskRt(first + i, job.id, i, draft.name, draft.group, draft.spec, deps,
                          draft.max_attempts, TaskState.BLOCKED)
            waiting = unmet.get(frozenset(draft.spec.requires.items()))
            self._remember_signatures(task)
            why = f"waiting: {waiting[1]}" if waiting else ""
            if not why and draft.spec.prerequisites and not self._someone_has(draft.spec.prerequisite_ids):
                why = self._waiting_reason(draft.spec.prerequisites)
            self._add_task(job, task, why)
            if draft.spec.lateness:
                self._watch_start(job, task)
        return job

    def _unmet_requirements(self, drafts: list[TaskDraft]) -> dict[frozenset, tuple[int, str]]:
        """Requirement sets no connected or standby provider satisfies: (template index, why)."""
        live = [p for p in self.providers.values() if p.state in CONNECTED]
        unmet: dict[frozenset, tuple[int, str]] = {}
        for draft in drafts:
            key = frozenset(draft.spec.requires.items())
            if key in unmet or any(all(p.labels.get(k) == v for k, v in key) for p in live):
                continue
            if not live:
                why = "no provider is connected"
            else:
                why = "no connected or standby provider has " + ", ".join(f"{k}={v}" for k, v in sorted(key))
            unmet[key] = (draft.template_index, why)
        return unmet

    def _add_task(self, job: JobRt, task: TaskRt, why_waiting: str = "") -> None:
        self.tasks[task.id] = task
        job.task_ids.append(task.id)
        job.open += 1
        task.pending = len(task.deps)
        for dep in task.deps:
            self.tasks[dep].dependents.append(task.id)
        state = TaskState.QUEUED if task.pending == 0 else TaskState.BLOCKED
        task.state = TaskState.BLOCKED  # counted below as a change from "nothing"
        task.status = Status.UNKNOWN
        self._cs.task(task, new=True)
        if state == TaskState.BLOCKED:
            why_waiting = "waiting for " + ", ".join(sorted({self.tasks[d].group for d in task.deps}))
        self._set_task(task, state, why_waiting)

    def cancel_job(self, job_id: int, reason: str) -> JobRt:
        job = self.jobs.get(job_id)
        if job is None:
            raise FailedPrecondition(f"job {job_id} has already finished; there is nothing to cancel")
        job.cancelled = True
        job.reason = reason or "cancelled by request"
        for tid in job.task_ids:
            task = self.tasks.get(tid)
            if task is not None and task.state not in TASK_DONE:
                self._cancel_task(task, job.reason)
        return job

    def _cancel_task(self, task: TaskRt, reason: str) -> None:
        if task.state in TASK_OUT and task.current is not None:
            self._stop_attempt(task.current.provider, task.id, task.current.number, reason)
        self.ready.discard(task.id)
        self._unfence(task)
        self._unhold(task)
        if self._pending:
            self._drop_continuation(task.id)
        self._set_task(task, TaskState.CANCELLED, reason)
        self._task_done(task)

    # ----- task state ----------------------------------------------------------------

    def _set_task(self, task: TaskRt, state: TaskState, reason: str = "", raw: dict | None = None,
                  push: bool = True) -> None:
        """`raw`: the environment's properties that decided `state` (a final one), if any."""
        job = self.jobs[task.job_id]
        task.state = state
        status = task_status(state, task.attempt)
        if raw and state in TASK_DONE:  # how it ended, in the environment's words, as the default policy reads them
            status = normalize(task.spec.environment, raw, user=None).status
        held = ""
        if state == TaskState.QUEUED:
            held = self._admit(task, job) if push else self._still_held(task)
            if held:
                status, reason = Status.ON_HOLD, (reason if not push and reason else held)
        if task.late == "start" and state in NOT_STARTED:
            status = Status.LATE_TO_START
        elif task.late == "run" and state == TaskState.RUNNING:
            status = Status.RUNNING_LATE
        self._restatus(task, job, status)
        task.reason = reason
        task.environment, task.raw = (task.spec.environment, dict(raw)) if raw else ("jobplane", {})
        self._cs.task(task)
        if state == TaskState.QUEUED and push and not held:
            self._enqueue(task, job)
            self._dispatch_wanted = True
        self._event(EventKind.TASK, job_id=job.id, task_id=task.id, task_name=task.name,
                    provider_id=task.provider or "", attempt=task.attempt, raw_status=state.name,
                    raw=task.raw, status=task.status, message=reason, environment=task.environment)

    def _show_task(self, task: TaskRt, status: Status, reason: str) -> None:
        """A new status and reason for a task whose state stays as it is (a hold, say)."""
        if task.late == "start" and task.state in NOT_STARTED:
            status = Status.LATE_TO_START
        self._restatus(task, self.jobs[task.job_id], status)
        task.reason = reason
        self._cs.task(task)
        self._event(EventKind.TASK, job_id=task.job_id, task_id=task.id, task_name=task.name,
                    provider_id=task.provider or "", attempt=task.attempt, raw_status=task.state.name,
                    raw=task.raw, status=task.status, message=reason, environment=task.environment)

    def _restatus(self, task: TaskRt, job: JobRt, status: Status) -> None:
        """Set the task's normalized status, keeping the job's counts per bucket true."""
        old, new = COUNT_BUCKETS.get(task.status), COUNT_BUCKETS.get(status)
        task.status = status
        if old != new:
            if old:
                job.counts[old] = job.counts.get(old, 0) - 1
            if new:
                job.counts[new] = job.counts.get(new, 0) + 1
            self._cs.job(job)

    def _enqueue(self, task: TaskRt, job: JobRt) -> None:
        if self.fences and self._fenced_out(task):
            return
        conditions = job.spec.parsed_conditions
        if conditions:
            self._conditional[task.id] = None
        self.ready.push(task.id, task.spec.requires, job.priority, job.id, task.idx, task.spec.prerequisite_ids,
                        conditions)

    def _task_done(self, task: TaskRt) -> None:
        """A task reached a final state: release or cancel dependents, finish the job."""
        job = self.jobs[task.job_id]
        self._unfence(task)
        for dep_id in task.dependents:
            dep = self.tasks.get(dep_id)
            if dep is None or dep.state != TaskState.BLOCKED:
                continue
            if task.state == TaskState.SUCCEEDED:
                dep.pending -= 1
                if dep.pending == 0:
                    self._set_task(dep, TaskState.QUEUED)
            else:
                self._set_task(dep, TaskState.CANCELLED, f"upstream task {task.name} did not succeed")
                self._task_done(dep)
        if task.state in (TaskState.FAILED, TaskState.CANCELLED) and "not_ok" in job.counts:
            job.counts["not_ok"] += 1
            self._cs.job(job)
        if task.state == TaskState.FAILED and (not job.reason or job.reason == job.hold_reason):
            job.reason = f"task {task.name} {task.reason}"
        job.open -= 1
        if job.open == 0:
            self._finish_job(job)

    def _finish_job(self, job: JobRt) -> None:
        if job.cancelled:
            state = JobState.CANCELLED
        elif _any_not_ok(job.counts):
            state = JobState.FAILED
        else:
            state = JobState.SUCCEEDED
        self._set_job(job, state, job.reason if state != JobState.SUCCEEDED else "")
        job.end_time = self.now
        self._remember_run(job)
        del self.jobs[job.id]
        self._end_holding(job)
        for tid in job.task_ids:
            task = self.tasks.get(tid)
            if task is not None and task.current is None:
                del self.tasks[tid]

    def _set_job(self, job: JobRt, state: JobState, message: str = "") -> None:
        job.state = state
        self._cs.job(job)
        self._event(EventKind.JOB, job_id=job.id, raw_status=state.name, status=job.status, message=message,
                    environment="jobplane")

    # ----- dispatch ------------------------------------------------------------------

    def dispatch(self) -> None:
        """Hand waiting continuations out first, then queued tasks to providers with free
        slots, one per provider per round, so a job's tasks spread across providers."""
        self._dispatch_continuations()
        self._dispatch_round()
        while len(self.ready) and self._activate_standby():
            self._dispatch_round()
        if self._conditional:
            self._explain_conditions()
        self._plan_scans()
        self._cs.unmet = len(self.ready) if len(self.ready) and not any(
            p.free > 0 for p in self.providers.values()) else 0

    def _dispatch_round(self) -> None:
        candidates = [p for p in self.providers.values() if p.free > 0]
        while candidates and len(self.ready):
            candidates.sort(key=lambda p: -p.free)
            still = []
            for provider in candidates:
                tid = self.ready.pop_for(provider.labels, self.has_all(provider), self.meets(provider))
                if tid is None:
                    continue
                self._assign(self.tasks[tid], provider)
                if provider.free > 0:
                    still.append(provider)
            candidates = still

    def _assign(self, task: TaskRt, provider: ProviderRt) -> None:
        task.attempt += 1
        task.provider = provider.id
        attempt = AttemptRt(self.ids.take("attempt"), task.id, task.attempt, provider.id, self.now,
                            resumed_from=task.checkpoint)
        adopting = self._adopting(task, attempt)
        task.current = attempt
        self._conditional.pop(task.id, None)
        provider.in_flight.add(task.id)
        self._cs.attempt(attempt, new=True)
        self._cs.assignments.setdefault(provider.id, []).append((task, attempt.number))
        self._set_task(task, TaskState.ASSIGNED, adopting)

    # ----- reports -------------------------------------------------------------------

    def report(self, provider_id: str, conn_id: int, reports: list[Report]) -> list[tuple[int, int, str, str]]:
        """Accept each report from the provider holding the current attempt; the others are
        rejected: returned as (task id, attempt, gRPC code name, reason)."""
        provider = self.providers.get(provider_id)
        if provider is None or provider.conn_id != conn_id:
            return []
        provider.last_seen = self.now
        rejected = []
        for report in reports:
            task = self.tasks.get(report.task_id)
            attempt = task.current if task is not None else None
            if attempt is not None and attempt.provider != provider_id and report.attempt >= attempt.number:
                rejected.append((report.task_id, report.attempt, "PERMISSION_DENIED",
                                 f"task {report.task_id} is assigned to another provider, not {provider_id}"))
            elif attempt is None or attempt.number != report.attempt or attempt.provider != provider_id:
                self._stale(provider_id, report)
                rejected.append((report.task_id, report.attempt, "FAILED_PRECONDITION", f"attempt {report.attempt} "
                                 f"of task {report.task_id} is not the current attempt on {provider_id}"))
            elif len(report.external_job_id) > JOB_ID_MAX:
                rejected.append((report.task_id, report.attempt, "INVALID_ARGUMENT", f"external_job_id of "
                                 f"{len(report.external_job_id)} characters is over the limit of {JOB_ID_MAX}"))
            elif report.kind == ReportKind.STARTED:
                self._record_job(attempt, report.external_job_id)
                self._started(task, attempt)
            elif report.kind == ReportKind.CHECKPOINT and len(report.checkpoint_json) > CHECKPOINT_MAX:
                rejected.append((report.task_id, report.attempt, "INVALID_ARGUMENT", f"checkpoint of "
                                 f"{len(report.checkpoint_json)} bytes is over the limit of {CHECKPOINT_MAX}"))
            elif report.kind == ReportKind.CHECKPOINT:
                self._checkpoint(task, attempt, report.checkpoint_json)
            elif report.kind == ReportKind.STATUS:
                self._record_job(attempt, report.external_job_id)
                self._raw_status(task, report.raw)
            else:
                self._finished(task, attempt, report)
        return rejected

    def _stale(self, provider_id: str, report: Report) -> None:
        """A report from a superseded attempt: never accepted; the agent must stop it."""
        log.info("rejected report for task %s attempt %s from %s: not the current attempt",
                 report.task_id, report.attempt, provider_id)
        if report.kind != ReportKind.FINISHED:  # it still runs somewhere: stop it
            self._stop_superseded(provider_id, report.task_id, report.attempt)
        elif self.fences:  # it ended: a task waiting for that may go on
            self._stop_confirmed(provider_id, report.task_id, report.attempt)

    def _checkpoint(self, task: TaskRt, attempt: AttemptRt, state: str) -> None:
        """The latest progress state of the current attempt: the next attempt starts there."""
        attempt.checkpoint = task.checkpoint = state
        task.checkpoints += 1
        self._cs.attempt(attempt)
        self._cs.task(task)

    def _raw_status(self, task: TaskRt, raw: dict[str, str]) -> None:
        """The environment's raw properties changed (e.g. an external scheduler's queue and
        status): an event with them and their normalized status under the default policy."""
        environment = task.spec.environment
        decision = normalize(environment, raw, user=None)
        attempt = task.current
        if attempt is not None:
            attempt.environment, attempt.raw = environment, dict(raw)
            self._cs.attempt(attempt)
        if task.state == TaskState.RUNNING:  # what the environment says shows while it runs
            late = task.late == "run" and decision.status == Status.RUNNING
            self._restatus(task, self.jobs[task.job_id], Status.RUNNING_LATE if late else decision.status)
            task.environment, task.raw = environment, dict(raw)
            self._cs.task(task)
        self._event(EventKind.TASK, job_id=task.job_id, task_id=task.id, task_name=task.name,
                    provider_id=task.provider or "", attempt=task.attempt,
                    raw_status=raw.get("status") or raw.get("state") or raw.get("State", ""),  # State: Slurm's
                    raw=dict(raw), status=decision.status, message=decision.reason, environment=environment)

    def _started(self, task: TaskRt, attempt: AttemptRt) -> None:
        if task.state != TaskState.ASSIGNED:
            return
        attempt.start_time = self.now
        self._cs.attempt(attempt)
        job = self.jobs[task.job_id]
        if job.state == JobState.QUEUED:
            job.start_time = self.now
            self._set_job(job, JobState.RUNNING)
            self._watch_finish(job, None, self.now)
        self._set_task(task, TaskState.RUNNING)
        self._watch_task(task)
        if task.spec.lateness:
            self._watch_finish(job, task, self.now)

    def _finished(self, task: TaskRt, attempt: AttemptRt, report: Report) -> None:
        if report.raw.get("state") == "prerequisite_missing" and task.state != TaskState.CANCELLED:
            self._prerequisite_vanished(task, attempt.provider, report.raw.get("missing", ""), report.error)
            return
        outcome = report.outcome or Outcome.FAILED
        if report.raw:
            attempt.environment, attempt.raw = task.spec.environment, dict(report.raw)
        self._close_attempt(task, attempt, int(outcome), report.exit_code, report.error)
        if task.state == TaskState.CANCELLED:
            self._forget_if_done(task)
            return
        task.exit_code = report.exit_code
        task.result_json, task.error = report.result_json, report.error
        task.stdout_tail, task.stderr_tail = report.stdout_tail, report.stderr_tail
        if outcome == Outcome.SUCCEEDED:
            self._set_task(task, TaskState.SUCCEEDED, "", report.raw)
            self._task_done(task)
        else:
            self._failed(task, _describe_failure(outcome, report), report.raw,
                         timed_out=outcome == Outcome.TIMED_OUT, exit_code=report.exit_code)

    def _failed(self, task: TaskRt, reason: str, raw: dict, *, timed_out: bool = False,
                exit_code: int | None = None) -> None:
        if not timed_out and self._rerun_transient(task, reason, raw, exit_code):
            return
        left = task.attempt - task.lost_attempts - task.reruns < task.max_attempts
        if left and _retryable(task.spec.retry_on, timed_out, exit_code):
            delay = self._backoff(task)
            self._set_task(task, TaskState.QUEUED, f"attempt {task.attempt} {reason}; retrying in {delay:.1f}s",
                           push=False)  # restarting: jobplane's state, not the attempt's raw exit
            attempt = task.attempt
            self._cs.timers.append((delay, lambda engine: engine.release(task.id, attempt)))
        else:
            self._set_task(task, TaskState.FAILED, reason, raw)
            self._task_done(task)

    def _close_attempt(self, task: TaskRt, attempt: AttemptRt, outcome: int, exit_code: int | None, reason: str) -> None:
        attempt.end_time = self.now
        attempt.outcome = outcome
        attempt.exit_code = exit_code
        attempt.reason = reason
        self._cs.attempt(attempt)
        task.current = None
        task.started_at = attempt.start_time or attempt.assign_time  # what overlapped it: reruns.py
        self._unwatch(task.id)
        provider = self.providers.get(attempt.provider)
        if provider is not None:
            provider.in_flight.discard(task.id)
            self._dispatch_wanted = True
            self._maybe_drained(provider)

    def _forget_if_done(self, task: TaskRt) -> None:
        if task.job_id not in self.jobs and task.current is None:
            self.tasks.pop(task.id, None)

    # ----- events --------------------------------------------------------------------

    def policy_changed(self, scope: str, name: str, version: int, by: str, deleted: bool) -> None:
        """A normalization policy changed: watchers learn that statuses may now read differently."""
        what = "deleted" if deleted else f"version {version} set"
        self._event(EventKind.POLICY, raw={"scope": scope, "name": name, "version": str(version)},
                    raw_status="DELETED" if deleted else "SET", message=f"{scope} policy {name!r} {what} by {by}")

    def _event(self, kind: EventKind, **fields) -> None:
        self._cs.events.append(Event(self.ids.take("event"), self.now, kind, **fields))


def _any_not_ok(counts: dict[str, int]) -> bool:
    """Whether a task ended FAILED or CANCELLED: by state (jobs since `not_ok` was kept), else
    (jobs stored before it) by the failure and cancel buckets."""
    if "not_ok" in counts:
        return counts["not_ok"] > 0
    return bool(counts.get("failure", 0) or counts.get("cancel", 0))


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


__all__ = ["Counters", "Engine", "EngineConfig"]
