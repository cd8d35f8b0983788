"""Holds: a job may start only when nothing holds it — no conflict with an admitted job (one
that runs, or was admitted and waits for a slot), its window open, no manual hold. A job that may start is admitted: it
holds its locks until it ends. Held tasks wait ON_HOLD with the reason and go by
themselves, in priority order, when what held them is gone. A component of Engine: the rules,
the admitted jobs and the held tasks are its state."""

from __future__ import annotations

import re

from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from .ahead import HELD
from .conflicts import Clash, ConflictRule, JobFacts, conflict
from .lateness import clock
from typing import TYPE_CHECKING

from .model import TASK_DONE, TASK_OUT, EventKind, JobSpec, JobState, Status, TaskState
from .state import JobRt, TaskRt
from .windows import bounds, late_point

if TYPE_CHECKING:
    from .engine import Engine


YIELDS = re.compile(r"yields to job (\d+) ")  # the hold of a job that yields to another until it ends


class Holds:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rules: dict[str, ConflictRule] = {}  # name -> rule
        self._holders: dict[int, JobRt] = {}  # admitted jobs: they hold their locks until they end
        self._held: dict[int, dict[int, None]] = {}  # job id -> its tasks on hold, in order
        self._yielded: dict[int, list[int]] = {}  # job id -> jobs held until it ends (a rule applied to running jobs)

    # ----- admission -----------------------------------------------------------------

    def admit(self, task: TaskRt, job: JobRt) -> str:
        """As a task is queued: "" when it may go to the ready queue (its job then holds its
        locks), else why it is held (and it is remembered as held)."""
        reason = self._hold_reason(job)
        if reason:
            self._held.setdefault(job.id, {})[task.id] = None
        elif job.id not in self._holders:
            self._holders[job.id] = job
        self._show_job_hold(job, reason)
        return reason

    def _hold_reason(self, job: JobRt) -> str:
        if job.hold:
            return f"held by hand: {job.hold}; `jobplane release {job.id}` lets it go"
        if job.id in self._holders:
            return ""
        if job.window is not None and self.engine.now < job.window[0]:
            return f"waiting for its window: may start from {clock(job.window[0])}"
        blockers = self._blockers(job.spec, job.id)
        if not blockers:
            return ""
        other, clash = blockers[0]
        more = f" and {len(blockers) - 1} more" if len(blockers) > 1 else ""
        return f"held by job {other.id} {other.name} ({clash.short}){more}"

    def _blockers(self, spec: JobSpec, job_id: int | None) -> list[tuple[JobRt, Clash]]:
        """The admitted jobs a job with this spec conflicts with, and why."""
        if not self._holders or not (self.rules or spec.lock_modes):
            return []  # only rules and locks make conflicts
        mine, rules = _facts_of(spec, job_id or 0), list(self.rules.values())
        out = []
        for other in self._holders.values():
            if other.id != job_id:
                clash = conflict(mine, self._facts(other), rules)
                if clash is not None:
                    out.append((other, clash))
        return out

    def _facts(self, job: JobRt) -> JobFacts:
        if job.facts is None:
            job.facts = _facts_of(job.spec, job.id)
        return job.facts

    def still_held(self, task: TaskRt) -> str:
        """The hold reason of a task remembered as held, else ""."""
        if task.id in self._held.get(task.job_id, ()):
            return self.engine.jobs[task.job_id].hold_reason
        return ""

    def requeue(self, task: TaskRt, job: JobRt) -> None:
        """A queued task goes to the ready queue, or on hold (shown once)."""
        why = self.admit(task, job)
        if not why:
            if task.status == Status.ON_HOLD:  # held before a restart; nothing holds it now
                self.engine.lifecycle.transition(task, TaskState.QUEUED, "released: nothing holds it now", enqueue=False)
            self.engine.enqueue(task, job)
        elif task.status != Status.ON_HOLD or task.reason != why:
            self.engine.lifecycle.transition(task, TaskState.QUEUED, why, enqueue=False)

    def unhold(self, task: TaskRt) -> None:
        held = self._held.get(task.job_id)
        if held is not None:
            held.pop(task.id, None)
            if not held:
                del self._held[task.job_id]

    def _show_job_hold(self, job: JobRt, reason: str) -> None:
        if job.hold_reason == reason:
            return
        if job.reason == job.hold_reason:  # a job's reason says why it waits, never why it failed
            job.reason = reason if job.state == JobState.QUEUED else ""
        job.hold_reason = reason
        self.engine.changes.job(job)
        if job.state == JobState.QUEUED:
            self.engine.event(EventKind.JOB, job_id=job.id, raw_status=job.state.name, status=job.status,
                        message=reason or "no longer held", environment="jobplane", raw={"hold": reason} if reason else {})

    # ----- letting go ----------------------------------------------------------------

    def end_holding(self, job: JobRt) -> None:
        """The job ended: its locks are free; held jobs may start."""
        self._holders.pop(job.id, None)
        self._held.pop(job.id, None)
        if job.id in self._yielded:
            self.release_yielded(job.id)
        if self._held:
            self.reconsider()

    def reconsider(self) -> None:
        """Held jobs, most important first: start those nothing holds any longer."""
        for job_id in sorted(self._held, key=self.line_key):
            job = self.engine.jobs.get(job_id)
            tids = self._held.pop(job_id)
            if job is None:
                continue
            reason = self._hold_reason(job)
            if reason and reason == job.hold_reason:
                self._held[job_id] = tids  # held as before, for the same reason
                continue
            for tid in tids:
                task = self.engine.tasks.get(tid)
                if task is not None and task.state == TaskState.QUEUED:
                    self.engine.lifecycle.transition(task, TaskState.QUEUED, "released: nothing holds it now")

    def line_key(self, job_id: int) -> tuple:
        job = self.engine.jobs.get(job_id)
        return (0, 0, job_id) if job is None else (-job.priority, job.submit_time, job_id)

    # ----- manual holds --------------------------------------------------------------

    def hold_job(self, job_id: int, reason: str, by: str, mode: str = "") -> JobRt:
        """Hold the job: its tasks that have not started wait (those already out at an agent,
        queued there or on their way, are taken back unless they started meanwhile); those that
        run carry on, or with `mode` are suspended in place or requeued (suspension.py)."""
        job = self._unfinished(job_id, "hold")
        self._check_mode(job, mode)
        job.hold = f"{reason or 'no reason given'} (by {by or 'an operator'})"
        for tid in job.task_ids:
            task = self.engine.tasks.get(tid)
            if task is not None and task.state == TaskState.QUEUED and tid in self.engine.ready:
                self.engine.ready.discard(tid)
                self.engine.lifecycle.transition(task, TaskState.QUEUED)
        self.engine.continuations.held_by_hand(job)
        if mode:  # (a suspend asks back, too, what its agent may not have started: ahead.py)
            held, asked = self.engine.suspension.hold_running(job, mode, job.hold)
            held -= asked
            done = "suspended" if mode == "suspend" else "requeued"
            parts = [f"{held} running {'task' if held == 1 else 'tasks'} {done}"] if held else []
        else:
            asked, parts = self._take_back(job), []
        parts += [_asked_back(asked)] if asked else []
        self._hold_changed(job, "; ".join([f"held by hand: {job.hold}", *parts]))
        return job

    def _take_back(self, job: JobRt) -> int:
        """A plain hold: the job's tasks out at agents but not known to have started are taken
        back (ahead.py), so that none starts now; those that started meanwhile run on. How many."""
        ahead = self.engine.queue_ahead
        return sum(ahead.take_back(task, HELD.format(job.hold))
                   for task in self.engine.suspension.running(job) if not task.suspended)

    def _check_mode(self, job: JobRt, mode: str) -> None:
        """A plain hold of a job whose every unfinished task runs would hold nothing: refused,
        naming the modes that would; a mode that cannot hold what runs is refused too. A task
        assigned whose agent would give it back unstarted does not run yet."""
        ahead = self.engine.queue_ahead
        running = [t for t in self.engine.suspension.running(job) if not ahead.can_take_back(t)]
        if not mode and running and len(running) == job.open:
            raise FailedPrecondition(
                f"every unfinished task of job {job.id} is running, and a plain hold stops only tasks that have "
                f"not started; hold it with --suspend (pause them in place, slots kept) or --requeue (stop them, "
                f"run them again from their checkpoint on release)")
        self.engine.suspension.check(job, mode)

    def release_job(self, job_id: int, why: str = "released by hand") -> JobRt:
        job = self._unfinished(job_id, "release")
        if not job.hold:
            raise FailedPrecondition(f"job {job_id} is not held by hand; `jobplane conflicts check {job_id}` "
                                     "tells what else holds it")
        job.hold = ""
        self.engine.continuations.held_by_hand(job)
        self.engine.lateness.watch_starts(job, [t for t in map(self.engine.tasks.get, job.task_ids) if t],
                                          passed_only=True)
        resumed = self.engine.suspension.release(job, why=why)
        resumed_tasks = "task" if resumed == 1 else "tasks"
        self._hold_changed(job, why + (f"; {resumed} suspended {resumed_tasks} resumed" if resumed else ""))
        self.reconsider()
        self.engine.want_dispatch()  # its tasks waiting to continue (a lost provider's) go on (continuation.py)
        return job

    def _unfinished(self, job_id: int, verb: str) -> JobRt:
        job = self.engine.jobs.get(job_id)
        if job is None:
            raise FailedPrecondition(f"job {job_id} has already finished; there is nothing to {verb}")
        return job

    def _hold_changed(self, job: JobRt, message: str) -> None:
        self.engine.changes.job(job)
        self.engine.event(EventKind.JOB, job_id=job.id, raw_status=job.state.name, status=job.status, message=message,
                    environment="jobplane", raw={"hold": job.hold} if job.hold else {})

    # ----- rules ---------------------------------------------------------------------

    def add_rule(self, rule: ConflictRule, apply_to_running: str = "") -> list[int]:
        """Add the rule. With `apply_to_running` ("suspend" or "requeue"), running jobs it finds in
        conflict are resolved now: of each pair the later one yields, held with that mode until the
        other ends. The ids of the jobs held (nothing changes if one of them cannot be)."""
        if rule.name in self.rules:
            raise AlreadyExists(f"a conflict rule named {rule.name!r} exists; remove it first or pick another name")
        yielding = self._yielders([*self.rules.values(), rule]) if apply_to_running else []
        for job, _, _ in yielding:
            self.engine.suspension.check(job, apply_to_running)
        self.rules[rule.name] = rule
        self.engine.changes.conflict_rules[rule.name] = rule
        for job, winner, clash in yielding:
            self.hold_job(job.id, f"yields to job {winner.id} {winner.name} ({clash.short}) until it ends",
                          rule.created_by, apply_to_running)
            self._yielded.setdefault(winner.id, []).append(job.id)
        return [job.id for job, _, _ in yielding]

    def _yielders(self, rules: list[ConflictRule]) -> list[tuple[JobRt, JobRt, Clash]]:
        """Jobs with running tasks that conflict under `rules`: each later one (by submit) with
        the earlier one it yields to. Jobs held by hand already are left as they are."""
        kept: list[JobRt] = []
        out = []
        running = [j for j in self._holders.values() if not j.hold and self.engine.suspension.running(j)]
        for job in sorted(running, key=lambda j: (j.submit_time, j.id)):
            found = next(((w, c) for w in kept if (c := conflict(self._facts(job), self._facts(w), rules))), None)
            if found is None:
                kept.append(job)
            else:
                out.append((job, *found))
        return out

    def release_yielded(self, winner_id: int) -> None:
        """The job others yielded to has ended: they go on."""
        for job_id in self._yielded.pop(winner_id, ()):
            job = self.engine.jobs.get(job_id)
            if job is not None and job.hold.startswith(f"yields to job {winner_id} "):
                self.release_job(job_id, f"released: job {winner_id}, which it yielded to, has ended")

    def remove_rule(self, name: str) -> None:
        if self.rules.pop(name, None) is None:
            raise NotFound(f"no conflict rule named {name!r}; `jobplane conflicts list` shows them")
        self.engine.changes.conflict_rules[name] = None
        self.reconsider()

    def check(self, spec: JobSpec, job_id: int | None) -> tuple[bool, str, list[tuple[str, str, str, str]]]:
        """(held, one line, blockers as (job id, job name, rule, reason)): would the job be held now?"""
        job = self.engine.jobs.get(job_id) if job_id is not None else None
        if job_id is not None and job is None:
            raise InvalidArgument("job_id", f"job {job_id} has finished; check a job that has not, or a job file")
        if job is not None and job.hold:
            return True, self._hold_reason(job), [("", "", "", f"held by hand: {job.hold}")]
        if job is not None and job.id in self._holders:
            return False, "admitted: it holds its locks and runs, or waits for a free slot", []
        found = self._blockers(spec, job_id)
        blockers = [(str(o.id), o.name, clash.rule, clash.detail) for o, clash in found]
        reason = f"held by job {found[0][0].id} {found[0][0].name} ({found[0][1].short})" if found else ""
        window = job.window if job is not None else self._bounds(spec, self.engine.now)
        if window is not None and self.engine.now < window[0]:
            reason = f"waiting for its window: may start from {clock(window[0])}"
            blockers.insert(0, ("", "", "", reason))
        return bool(blockers), reason or "nothing holds it: it may start now", blockers

    # ----- windows -------------------------------------------------------------------

    def _bounds(self, spec: JobSpec, submitted: float) -> tuple[float, float | None] | None:
        return bounds(spec.window, submitted, self.engine.calendar.zone) if spec.window else None

    def watch_window(self, job: JobRt) -> None:
        """At submit (or restore): timers for the window's opening, lateness and close."""
        job.window = self._bounds(job.spec, job.submit_time)
        if job.window is None or job.state != JobState.QUEUED:
            return
        opens, closes = job.window
        e = self.engine
        if opens > e.now:  # a little after, so the loop's clock is past it for sure
            e.changes.timer(opens - e.now + 0.05, lambda engine: engine.holds.reconsider())
        late = late_point(opens, closes, job.spec.lateness.max_runtime_seconds)
        if late is not None:
            e.changes.timer(max(0.0, late - e.now), lambda engine: engine.lateness.late_start(job.id, None, late))
        if closes is not None:
            e.changes.timer(max(0.0, closes - e.now), lambda engine: engine.holds.give_up(job.id))

    def give_up(self, job_id: int) -> None:
        """The window closed: a job that has not started fails, saying what held it."""
        job = self.engine.jobs.get(job_id)
        if job is None or job.state != JobState.QUEUED:
            return
        held = f"; {job.hold_reason}" if job.hold_reason else ""
        reason = f"its window closed at {clock(job.window[1])} before it could start{held}"
        job.reason = reason
        for tid in list(job.task_ids):
            task = self.engine.tasks.get(tid)
            if task is not None and task.state not in TASK_DONE:
                self.engine.end_task(task, TaskState.FAILED, reason)

    # ----- restart -------------------------------------------------------------------

    def restore(self, jobs: list[JobRt], tasks: list[TaskRt], rules) -> None:
        """The rules, and the jobs that had started (they hold their locks again before queued
        work is looked at); then every job's window is watched again."""
        self.rules = {r.name: r for r in rules}
        started = {t.job_id for t in tasks if t.attempt > 0 or t.state in TASK_OUT or t.state in TASK_DONE}
        for job in jobs:
            if job.id in started:
                self._holders[job.id] = job
        unfinished = {job.id for job in jobs}
        for job in jobs:
            self.watch_window(job)
            winner = YIELDS.match(job.hold)
            if winner is not None:  # held until a job ends; if it ended meanwhile, released at once
                self._yielded.setdefault(int(winner[1]), []).append(job.id)
                if int(winner[1]) not in unfinished:
                    self.engine.changes.timer(0.0, lambda engine, w=int(winner[1]): engine.holds.release_yielded(w))

    def admitted(self) -> list[JobRt]:
        """The jobs that hold their locks (reruns.py looks at what ran beside a failure)."""
        return list(self._holders.values())


def _facts_of(spec: JobSpec, job_id: int) -> JobFacts:
    return JobFacts(job_id, spec.name, spec.job_class, dict(spec.labels), spec.lock_modes)


def _asked_back(n: int) -> str:
    return f"{n} {'task' if n == 1 else 'tasks'} assigned but not started asked back from " \
           f"{'its agent' if n == 1 else 'their agents'}"


__all__ = ["Holds"]
