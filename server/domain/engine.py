"""The engine: every state change of jobs, tasks, attempts and providers happens here,
synchronously, into the ChangeSet that the core commits before anything is announced. It
knows nothing of gRPC, asyncio or SQL.

It owns the state (jobs, tasks, providers, the ready queue, ids, the batch's clock) and the
task lifecycle (lifecycle.py), and it grows by components, one per concern, each with state of
its own: providers, supervision, continuations, fencing, adoption, holds, lateness, reruns,
conditions, inventory, and reopen (a finished job rerun by request). The engine calls them at
named points; they change things only through the engine's operations below (and the
lifecycle's). docs/architecture.md draws the map.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..errors import FailedPrecondition
from .adoption import Adoption, handed_on
from .ahead import QUEUED_AHEAD, QueueAhead
from .alerts import Alerts
from .capacity import Capacity
from .changes import ChangeSet, task_event
from .conditions import Conditions
from .continuation import Continuations, Pending
from .dispatch import ReadyQueue
from .fencing import Fencing
from .holds import Holds
from .inactive import Inactivity
from .inventory import Inventory
from .lateness import LatenessWatch
from .lifecycle import Lifecycle
from .notifications import Notifications
from .model import TASK_DONE, TASK_OUT, Event, EventKind, JobSpec, JobState, ProviderState, Status, TaskDraft, TaskState
from .policies import DEFAULT_POLICY, Policy
from .providers import CONNECTED, Providers
from .reopen import Reopening
from .reports import Reports
from .requests import PriorJob, RequestKey, Requests
from .reruns import Reruns
from .schedules import Schedules
from .state import AttemptRt, Counters, EngineConfig, JobRt, ProviderRt, TaskRt
from .supervision import Supervision
from .suspension import Suspension
from .timing import Calendar

log = logging.getLogger(__name__)

# A task's ends whose event takes the place of its RUNNING event of the same batch (task_moved).
MERGED_ENDS = frozenset({TaskState.SUCCEEDED, TaskState.FAILED})
STATE_NAMES = {state: state.name for state in TaskState}  # an enum's .name is a property: slow per event

MAX_LOST_ATTEMPTS = 20  # a task lost with this many providers in a row fails


class Engine:
    def __init__(self, config: EngineConfig, counters: Counters | None = None) -> None:
        self.config = config
        self.ids = counters or Counters()
        self.jobs: dict[int, JobRt] = {}
        self.tasks: dict[int, TaskRt] = {}
        self.providers: dict[str, ProviderRt] = {}
        self.ready = ReadyQueue()
        self.now = 0.0
        self.changes = ChangeSet()  # what this batch changed so far
        self.calendar = Calendar(config.timezone, config.period_ends)
        self.requests = Requests()  # request ids of idempotent submits -> the jobs they made
        self.default_policy: Policy = DEFAULT_POLICY  # the version in force: it decides how tasks end
        self._dispatch_wanted = False
        self.lifecycle = Lifecycle(self)
        self.reports = Reports(self)
        self.provider_rules = Providers(self)
        self.supervision = Supervision(self)
        self.continuations = Continuations(self)
        self.fencing = Fencing(self)
        self.adoption = Adoption(self)
        self.holds = Holds(self)
        self.lateness = LatenessWatch(self)
        self.reruns = Reruns(self)
        self.conditions = Conditions(self)
        self.capacity = Capacity(self)
        self.queue_ahead = QueueAhead(self)
        self.inventory = Inventory(self)
        self.reopen = Reopening(self)
        self.suspension = Suspension(self)
        self.schedules = Schedules(self)
        self.inactivity = Inactivity(self)
        self.alerts = Alerts(self)
        self.notifications = Notifications(self)
        self._operations()

    def _operations(self) -> None:
        """What callers (the core's ops, the services) ask of the engine beyond jobs and
        reports, each answered by the component whose concern it is."""
        providers, holds = self.provider_rules, self.holds
        self.connect, self.disconnect, self.ready_signal = providers.connect, providers.disconnect, providers.ready_signal
        self.kept = providers.kept
        self.goodbye, self.drain, self.revoke = providers.goodbye, providers.drain, providers.revoke
        self.resume_provider = providers.resume
        self.arm_restart_grace = providers.arm_restart_grace
        self.probe_reply = self.supervision.probe_reply
        self.hold_job, self.release_job, self.check_job = holds.hold_job, holds.release_job, holds.check
        self.add_conflict_rule, self.remove_conflict_rule = holds.add_rule, holds.remove_rule
        self.scan_report, self.request_scan = self.inventory.scan_report, self.inventory.request_scan
        self.live_facts, self.waits_on_facts = self.conditions.live_facts, self.conditions.waits_on_facts
        self.plan = self.continuations.plan
        self.rerun_job = self.reopen.rerun
        self.settle_delivery = self.notifications.settle
        self.create_alert_rule, self.delete_alert_rule = self.alerts.create, self.alerts.delete
        self.forget_requests = self.requests.forget
        schedules = self.schedules
        self.create_schedule, self.pause_schedule, self.resume_schedule = (
            schedules.create, schedules.pause, schedules.resume)
        self.delete_schedule, self.run_schedule_now = schedules.delete, schedules.run_now

    def supervise(self, late: float = 0.0) -> None:
        """What time passing makes due: supervision's checks and the schedules' runs. `late`:
        seconds the tick came late (the server was behind for that long; supervision.tick)."""
        self.supervision.tick(late)
        self.schedules.tick()

    @property
    def conflict_rules(self) -> dict:
        """The conflict rules in force, by name (read-only: change them with add/remove)."""
        return self.holds.rules

    # ----- restart -------------------------------------------------------------------

    def restore(self, jobs: list[JobRt], tasks: list[TaskRt], providers: list[ProviderRt],
                pending: Sequence[Pending] = (), rules: Sequence = ()) -> None:
        """Resume from the database: queued work is queued again (or held again), waiting
        continuations keep their order; work that was out at a provider waits for that
        provider to reconnect within the grace, else goes on elsewhere."""
        self.continuations.restore(pending)
        self.holds.restore(jobs, tasks, rules)
        self.notifications.restore(jobs)
        continuing = {p.task_id for p in pending}
        self.providers = {p.id: p for p in providers}
        self.jobs = {j.id: j for j in jobs}
        self.tasks = {t.id: t for t in tasks}
        orphans = []
        for task in sorted(tasks, key=lambda t: self.holds.line_key(t.job_id)):
            job = self.jobs[task.job_id]
            job.task_ids.append(task.id)
            task.pending = sum(1 for d in task.deps if self.tasks[d].state != TaskState.SUCCEEDED)
            for dep in task.deps:
                self.tasks[dep].dependents.append(task.id)
            if task.state in TASK_DONE:
                continue
            job.open += 1
            self.inventory.remember(task)
            self.fencing.restore(task)
            if task.state == TaskState.QUEUED and task.id not in continuing:
                self.holds.requeue(task, job)
            elif task.state in TASK_OUT:
                provider = self.providers.get(task.provider or "")
                if provider is not None and task.current is not None and provider.state != ProviderState.LOST:
                    provider.in_flight.add(task.id)
                    if task.state == TaskState.RUNNING and not task.suspended:
                        self.supervision.watch(task, since=(task.current.start_time or 0) + task.paused)
                else:
                    orphans.append(task)
        self.tasks = {t.id: t for t in tasks if t.state not in TASK_DONE}
        self.provider_rules.restore()
        for task in orphans:
            if task.current is None:
                self.lifecycle.transition(task, TaskState.QUEUED, "its attempt was not recorded; queued again")
            else:
                self.lose(task, f"provider {task.provider} is gone")
        for job in self.jobs.values():
            self.lateness.restore(job, [self.tasks[t] for t in job.task_ids if t in self.tasks])
        for job in list(self.jobs.values()):
            if job.open == 0:
                self.lifecycle.finish_job(job)
        self._dispatch_wanted = True

    # ----- batches -------------------------------------------------------------------

    def begin(self, now: float) -> None:
        self.now = now

    def take_changes(self) -> ChangeSet:
        if self._dispatch_wanted:
            self._dispatch_wanted = False
            self.dispatch()
        cs, self.changes = self.changes, ChangeSet()
        return cs

    def want_dispatch(self) -> None:
        """Something may be dispatchable now: dispatch before this batch's changes are taken."""
        self._dispatch_wanted = True

    def event(self, kind: EventKind, **fields) -> None:
        event = Event(self.ids.take("event"), self.now, kind, **fields)
        self.changes.add_event(event)
        if kind == EventKind.JOB:
            self.notifications.seen(event)

    def task_moved(self, task: TaskRt, to: TaskState, message: str) -> None:
        """The event of the task's move to state `to`. A move to RUNNING and the attempt's end
        in one batch make one event: the end's (ChangeSet.end_replaces_start)."""
        changes, name = self.changes, STATE_NAMES[to]
        if to in MERGED_ENDS and task.id in changes.starts and changes.end_replaces_start(self.now, task, name, message):
            return
        changes.add_event(task_event(self.ids.take("event"), self.now, task, name, message),
                          start=to is TaskState.RUNNING)

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
        self._check_calendar(spec)
        lacking = self.inventory.unmet(drafts)
        if lacking and not spec.wait_for_providers:
            raise FailedPrecondition(f"spec.tasks[{lacking[0]}].prerequisites: {lacking[1]}; provide it on an "
                                     "agent or set wait_for_providers = true to queue the job until one has it")
        job = JobRt(self.ids.take("job"), spec.name, spec.priority, spec, JobState.QUEUED, self.now, owner=owner,
                    request=request)
        if request is not None:
            self.requests.remember(owner, request, job.id, self.now)
        job.counts = {"total": len(drafts), "not_ok": 0}  # not_ok: tasks that ended FAILED or CANCELLED
        self.jobs[job.id] = job
        self.changes.job(job, new=True)
        self.event(EventKind.JOB, job_id=job.id, raw_status="QUEUED", status=Status.WAITING,
                   message=f"submitted with {len(drafts)} task{'' if len(drafts) == 1 else 's'}",
                   environment="jobplane")
        self.lateness.watch_start(job)
        self.holds.watch_window(job)
        self._add_tasks(job, drafts, unmet)
        return job

    def _check_calendar(self, spec: JobSpec) -> None:
        """An end_of_period rule needs the server's period ends; without them it would never apply."""
        if self.calendar.period_ends:
            return
        for i, rule in enumerate(spec.continuation_rules):
            if rule.kind == "end_of_period":
                raise FailedPrecondition(
                    f"spec.continuation_rules[{i}]: end_of_period needs the server's period ends, and this server "
                    "has none; start jobplane-server with --period-end MM-DD (e.g. --period-end 03-31), or use "
                    "end_of_month, end_of_quarter or end_of_year")

    def _add_tasks(self, job: JobRt, drafts: list[TaskDraft], unmet: dict) -> None:
        first = self.ids.take("task", len(drafts))
        by_group: dict[str, list[int]] = {}
        for i, draft in enumerate(drafts):
            by_group.setdefault(draft.group, []).append(first + i)
        for i, draft in enumerate(drafts):
            deps = [d for g in draft.after_groups for d in by_group[g]]
            task = TaskRt(first + i, job.id, i, draft.name, draft.group, draft.spec, deps,
                          draft.max_attempts, TaskState.BLOCKED)
            waiting = unmet.get(frozenset(draft.spec.requires.items()))
            self.inventory.remember(task)
            why = f"waiting: {waiting[1]}" if waiting else ""
            if not why and draft.spec.prerequisites and not self.inventory.someone_has(draft.spec.prerequisite_ids):
                why = self.inventory.waiting_reason(draft.spec.prerequisites)
            self.lifecycle.add(job, task, why)
            if draft.spec.lateness:
                self.lateness.watch_start(job, task)

    def _unmet_requirements(self, drafts: list[TaskDraft]) -> dict[frozenset, tuple[int, str]]:
        """Requirement sets no connected or standby provider satisfies: (template index, why)."""
        live = [p for p in self.providers.values() if p.state in CONNECTED]
        drained = [p for p in self.providers.values() if p.state in (ProviderState.DRAINING, ProviderState.DRAINED)]
        unmet: dict[frozenset, tuple[int, str]] = {}
        for draft in drafts:
            key = frozenset(draft.spec.requires.items())
            if key in unmet or any(all(p.labels.get(k) == v for k, v in key) for p in live):
                continue
            resumable = sorted(p.id for p in drained if all(p.labels.get(k) == v for k, v in key))
            if resumable:
                why = (f"only drained providers could run it ({', '.join(resumable)}); "
                       f"jobplane providers resume {resumable[0]}")
            elif not live:
                why = "no provider is connected"
            else:
                why = "no connected or standby provider has " + ", ".join(f"{k}={v}" for k, v in sorted(key))
            unmet[key] = (draft.template_index, why)
        return unmet

    def cancel_job(self, job_id: int, reason: str) -> JobRt:
        job = self.jobs.get(job_id)
        if job is None:
            raise FailedPrecondition(f"job {job_id} has already finished; there is nothing to cancel")
        job.cancelled = True
        job.reason = reason or "cancelled by request"
        for tid in job.task_ids:
            task = self.tasks.get(tid)
            if task is not None and task.state not in TASK_DONE:
                self.end_task(task, TaskState.CANCELLED, job.reason)
        return job

    def end_task(self, task: TaskRt, state: TaskState, reason: str) -> None:
        """End an unfinished task for good (cancelled, or failed before it could start): its
        attempt is stopped and it leaves every queue and line."""
        if task.state in TASK_OUT and task.current is not None:
            self.provider_rules.stop_attempt(task.current.provider, task.id, task.current.number, reason)
            if state != TaskState.CANCELLED:  # a cancelled attempt is closed by its report
                self.close_attempt(task, task.current, 3, None, reason)
        self.ready.discard(task.id)
        task.lost_at = 0.0  # it will not run again as a continuation
        self.fencing.unfence(task)
        self.holds.unhold(task)
        self.continuations.drop(task.id)
        self.lifecycle.transition(task, state, reason)
        self.lifecycle.task_done(task)

    # ----- dispatch ------------------------------------------------------------------

    def enqueue(self, task: TaskRt, job: JobRt) -> None:
        """The task may be dispatched now (unless an earlier attempt of it may still run)."""
        self._dispatch_wanted = True
        if self.fencing.parks(task):
            return
        conditions = job.spec.parsed_conditions
        if conditions:
            self.conditions.track(task)
        if task.id not in self.ready:
            task.ready_at = self.now
        self.capacity.track(task)
        self.ready.push(task.id, task.spec.requires, job.priority, job.id, task.idx, task.spec.prerequisite_ids,
                        conditions, task.spec.resources)

    def dispatch(self) -> None:
        """Hand waiting continuations out first, then queued tasks to providers with free
        slots, one per provider per round, so a job's tasks spread across providers."""
        self.continuations.dispatch()
        self.provider_rules.fill_places()
        self._dispatch_round()
        while len(self.ready) and self.provider_rules.activate_standby():
            self._dispatch_round()
        self.conditions.explain()
        self.capacity.explain()
        self.inactivity.explain()
        self.inventory.plan_scans()
        # Whatever is still queued now, no provider could take: none has a free slot, or none
        # with a free slot has the labels, prerequisites, live facts or room it needs.
        self.changes.demand = self.ready.demand() if len(self.ready) else []

    def _dispatch_round(self) -> None:
        """Every provider's free slots first; then quick tasks queued ahead (ahead.py)."""
        if not len(self.ready):  # nothing queued: no look at every provider (a connecting fleet asks often)
            return
        free, pacing = [], []
        for p in self.providers.values():
            if p.free > 0:
                free.append(p)
            if p.finishes:
                pacing.append(p)
        self._fill(free, _free_slots)
        if pacing and len(self.ready):
            ahead, line = self.queue_ahead, self.continuations
            # The cheap test first: a look at every waiting continuation only where there is room.
            self._fill([p for p in pacing if ahead.room(p) > 0 and ahead.behind_quick(p)
                        and not (line.pending and line.wanted_at(p))], ahead.room, ahead.quick, True)

    def _fill(self, candidates: list[ProviderRt], room, job_ok=None, ahead: bool = False) -> None:
        """Queued tasks to the candidates while they have `room`, one per provider per round,
        the roomiest first, so a job's tasks spread across providers."""
        while candidates and len(self.ready):
            candidates.sort(key=lambda p: -room(p))
            still = []
            for provider in candidates:
                tid = self.ready.pop_for(provider.labels, self.inventory.has_all(provider),
                                         self.conditions.meets(provider), self.capacity.fits(provider), job_ok)
                if tid is None:
                    continue
                self.assign(self.tasks[tid], provider, ahead)
                if room(provider) > 0:
                    still.append(provider)
            candidates = still

    def assign(self, task: TaskRt, provider: ProviderRt, ahead: bool = False) -> None:
        """A new attempt of the task, on the provider (`ahead`: queued beyond its slots, ahead.py)."""
        task.attempt += 1
        task.provider = provider.id
        attempt = AttemptRt(self.ids.take("attempt"), task.id, task.attempt, provider.id, self.now,
                            resumed_from=task.checkpoint)
        adopting = self.adoption.adopting(task, attempt)
        task.current = attempt
        self.conditions.forget(task.id)
        provider.in_flight.add(task.id)
        self.changes.attempt(attempt, new=True)
        self.changes.assign(provider.id, task, attempt.number, ahead)
        self.changes.timing("assigned", task.ready_at, self.now)
        self.lifecycle.transition(task, TaskState.ASSIGNED, adopting or (QUEUED_AHEAD if ahead else ""))

    # ----- attempts ending -----------------------------------------------------------

    def close_attempt(self, task: TaskRt, attempt: AttemptRt, outcome: int, exit_code: int | None,
                      reason: str) -> None:
        """The attempt is over (as far as the server goes): the task has none out now."""
        attempt.end_time = self.now
        attempt.outcome = outcome
        attempt.exit_code = exit_code
        attempt.reason = reason
        self.changes.attempt(attempt)
        task.current = None
        task.started_at = attempt.start_time or attempt.assign_time  # what overlapped it: reruns.py
        self.supervision.unwatch(task.id)
        self.suspension.forget(task)
        self.queue_ahead.forget(task.id)
        provider = self.providers.get(attempt.provider)
        if provider is not None:
            provider.in_flight.discard(task.id)
            self._dispatch_wanted = True
            self.provider_rules.maybe_drained(provider)

    def lose(self, task: TaskRt, reason: str, continue_as: Pending | None = None, fence: bool = True) -> None:
        """The attempt's provider is gone (or gave up on it): the task waits for another,
        as a continuation in priority order when `continue_as` says so. `fence`: the attempt
        may still run, so the next one waits until it has certainly stopped; unless it follows
        an outside job, which the next one adopts instead (adoption.py)."""
        attempt = task.current
        handed = self.adoption.handed_job(task)
        if handed:
            reason = f"{reason}; {handed_on(task.spec.environment, handed)}"
        self.close_attempt(task, attempt, 0, None, reason)
        if task.state == TaskState.CANCELLED:
            self.forget_if_done(task)
            return
        if handed:
            task.adopt_job = handed
        elif fence and (waits := self.fencing.fence(task, attempt.provider, attempt.number)):
            reason = f"{reason}; it continues {waits}"
        task.lost_attempts += 1
        if task.lost_attempts > MAX_LOST_ATTEMPTS:
            self.lifecycle.transition(task, TaskState.FAILED, f"lost with {MAX_LOST_ATTEMPTS} providers in a row")
            self.lifecycle.task_done(task)
        elif continue_as is not None:
            self.continuations.wait_to_continue(task, continue_as, reason)
        else:
            self.lifecycle.transition(task, TaskState.QUEUED, reason)

    def forget_if_done(self, task: TaskRt) -> None:
        if task.job_id not in self.jobs and task.current is None:
            self.tasks.pop(task.id, None)

    # ----- what callers ask of the components ----------------------------------------

    def report(self, provider_id: str, conn_id: int, reports: list) -> list[tuple[int, int, str, str]] | None:
        return self.reports.take(provider_id, conn_id, reports)

    def release(self, task_id: int, attempt: int) -> None:
        """A retry's backoff is over: the task may be dispatched again."""
        task = self.tasks.get(task_id)
        job = self.jobs.get(task.job_id) if task is not None else None
        if job is not None and task.state == TaskState.QUEUED and task.attempt == attempt:
            self.holds.requeue(task, job)

    def policy_changed(self, scope: str, name: str, version: int, by: str, deleted: bool,
                       default: Policy | None = None) -> None:
        """A normalization policy changed: watchers learn that statuses may now read differently.
        `default`: the default policy's new version, which decides from now on."""
        if default is not None:
            self.default_policy = default
        what = ("returned to the built-in rules" if deleted and default is not None
                else "deleted" if deleted else f"version {version} set")
        self.event(EventKind.POLICY, raw={"scope": scope, "name": name, "version": str(version)},
                   raw_status="DELETED" if deleted else "SET", message=f"{scope} policy {name!r} {what} by {by}")


def _free_slots(provider: ProviderRt) -> int:
    return provider.free


__all__ = ["Counters", "Engine", "EngineConfig"]
