"""Schedules: recurring work, like Nomad's periodic jobs and Slurm's scrontab. A schedule is a
cron expression in a time zone and a job spec; each time it comes due, an ordinary job is
submitted from the spec (linked by its `schedule_id`), so holds, windows and conflicts apply
to it as to any job. A component of Engine: the schedules are its state.

- overlap: what a due run does while an earlier run of the schedule has not finished: "skip"
  (it does not run), "queue" (it runs when the earlier one ends; at most one waits, later due
  times while one waits are folded into it) or "allow" (it runs alongside).
- Missed runs: a run is on time up to MISFIRE_GRACE after its due time. One due longer ago
  (the server was down, or the schedule's time passed while nobody led) is missed: with
  `catch_up` one run starts for all that were missed, without it none does; either way an
  event says so, and the next run is the next due time after now.
- Paused schedules make no jobs (they show INACTIVE), not even a queued run; resumed, they go
  on from the next due time after now, without catching up on the paused time (a queued run
  whose wait is over starts then). Run-now starts a run at once,
  paused or not, under the overlap rule, without moving the next due time.

What is persisted (with the batch, like every change): the schedule, its last due time handled
(the next is computed from it after a restart, so a run is neither lost nor made twice) and
whether a queued run waits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ..errors import FailedPrecondition, InvalidArgument, JobplaneError, NotFound
from .cron import Cron, parse_cron, zone_of
from .extract import extract_tasks
from .limits import MAX_NAME, check_text
from .model import EventKind, JobSpec, Status

if TYPE_CHECKING:
    from .engine import Engine
    from .state import JobRt

log = logging.getLogger(__name__)

OVERLAPS = ("skip", "queue", "allow")
MISFIRE_GRACE = 60.0  # seconds after its due time a run still starts (Quartz's misfire threshold)
MAX_COUNTED = 1000  # missed runs counted one by one; past that, "1000 or more"


@dataclass(eq=False)
class Schedule:
    id: int
    name: str
    cron: str
    time_zone: str
    overlap: str
    catch_up: bool
    spec: JobSpec
    owner: str = ""
    create_time: float = 0.0
    paused: bool = False
    last_due: float = 0.0  # the last due time handled (run, skipped, queued or missed); 0: none yet
    queued: bool = False  # overlap = queue: a run waits for the one going on
    last_job_id: int = 0
    deleted: bool = False
    next_due: float | None = field(default=None, compare=False)  # derived from since()
    resume_time: float = 0.0  # when it was last resumed: no due time before it is caught up on

    def since(self) -> float:
        """What its next due time follows: the last one handled, its creation or its last resume,
        whichever came last."""
        return max(self.last_due or self.create_time, self.resume_time)

    @cached_property
    def parsed(self) -> Cron:
        return parse_cron(self.cron)

    @cached_property
    def zone(self) -> ZoneInfo:
        return zone_of(self.time_zone)

    def following(self, after: float) -> float | None:
        return self.parsed.next_after(after, self.zone)

    def local(self, when: float) -> str:
        """`2026-06-01 02:00 CEST`: a due time as the schedule's zone reads it."""
        return datetime.fromtimestamp(when, self.zone).strftime("%Y-%m-%d %H:%M %Z")


def check_schedule(s: Schedule) -> Schedule:
    """Validate a new schedule's own fields (the spec is checked by extract_tasks)."""
    check_text("schedule.name", s.name, MAX_NAME)
    if not s.cron.strip():
        raise InvalidArgument("schedule.cron", "missing; give a cron expression, e.g. \"0 2 * * *\" (02:00 daily)")
    parse_cron(s.cron, "schedule.cron")
    zone_of(s.time_zone, "schedule.time_zone")
    if s.overlap not in OVERLAPS:
        raise InvalidArgument("schedule.overlap", f"{s.overlap!r} is not one of skip, queue, allow")
    return s


class Schedules:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.all: dict[int, Schedule] = {}  # id -> schedule (deleted ones are dropped)
        self._next_id = 1
        self._soonest: float | None = None  # the earliest next_due of an active schedule

    # ----- restart -------------------------------------------------------------------

    def restore(self, schedules: list[Schedule], max_id: int) -> None:
        """From the database: each goes on from its last due time (missed runs are handled at
        the first tick, as any missed run)."""
        self._next_id = max_id + 1
        for s in schedules:
            self.all[s.id] = s
            s.next_due = s.following(s.since())
        self._recompute()

    # ----- operations ----------------------------------------------------------------

    def create(self, s: Schedule) -> Schedule:
        """A new schedule (validated by the caller: check_schedule and extract_tasks)."""
        s.next_due = s.following(self.engine.now)
        if s.next_due is None:
            raise InvalidArgument("schedule.cron", f"\"{s.cron}\" never comes due in the next years; check its days")
        s.id, self._next_id = self._next_id, self._next_id + 1
        s.create_time = self.engine.now  # last_due stays 0 until a due time is handled: it never ran
        self.all[s.id] = s
        self._changed(s, f"created by {s.owner or 'anonymous'}; next run {s.local(s.next_due)}")
        return s

    def get(self, schedule_id: int, owner: str | None = None) -> Schedule:
        s = self.all.get(schedule_id)
        if s is None or (owner is not None and s.owner != owner):
            raise NotFound(f"schedule {schedule_id} not found; `jobplane schedules list` shows the schedules there are")
        return s

    def pause(self, schedule_id: int, by: str, owner: str | None = None) -> Schedule:
        s = self.get(schedule_id, owner)
        if not s.paused:
            s.paused = True
            self._changed(s, f"paused by {by}: no new runs until `jobplane schedules resume {s.id}`")
        return s

    def resume(self, schedule_id: int, by: str, owner: str | None = None) -> Schedule:
        s = self.get(schedule_id, owner)
        if s.paused:
            s.paused = False
            s.resume_time = self.engine.now  # the paused time is not caught up on (nor shown as a run)
            s.next_due = s.following(self.engine.now)
            self._changed(s, f"resumed by {by}; next run {s.local(s.next_due)}")
            if s.queued and not self._running(s):  # its run waited for one that ended while paused
                s.queued = False
                self._launch(s, "queued while paused")
        return s

    def delete(self, schedule_id: int, by: str, owner: str | None = None) -> Schedule:
        """The schedule makes no more runs; its jobs (running or not) are ordinary jobs still."""
        s = self.get(schedule_id, owner)
        s.deleted = True
        del self.all[s.id]
        self._changed(s, f"deleted by {by}; its jobs are kept")
        return s

    def run_now(self, schedule_id: int, by: str, owner: str | None = None) -> JobRt | None:
        """A run at once (paused or not), under the overlap rule: None when it was queued;
        FailedPrecondition when overlap = skip and a run is going on."""
        s = self.get(schedule_id, owner)
        running = self._running(s)
        if running and s.overlap == "skip":
            raise FailedPrecondition(f"schedule {s.id}: job {running[0].id} of it is still running and its "
                                     "overlap is skip; wait for it to end, or cancel it, then run-now again")
        return self._launch(s, f"run now by {by}")

    # ----- time passing --------------------------------------------------------------

    def tick(self) -> None:
        """Start the runs that are due (cheap when none is: one comparison)."""
        now = self.engine.now
        if self._soonest is None or self._soonest > now:
            return
        for s in list(self.all.values()):
            if not s.paused and s.next_due is not None and s.next_due <= now:
                self._come_due(s, now)
        self._recompute()

    def _come_due(self, s: Schedule, now: float) -> None:
        due = s.next_due
        if now - due <= MISFIRE_GRACE:
            s.last_due, s.next_due = due, s.following(due)
            self._launch(s, f"due at {s.local(due)}")
            return
        missed = self._count_missed(s, due, now)
        s.last_due, s.next_due = now, s.following(now)
        what = f"{missed} run{'s' if missed != '1' else ''} missed (the first due at {s.local(due)})"
        if s.catch_up:
            self._launch(s, f"catch-up: {what}; one runs now")
        else:
            self._note(s, "MISSED", f"{what}; none runs (catch_up = false); next run {s.local(s.next_due)}")
            self.engine.changes.schedules[s.id] = s

    def _count_missed(self, s: Schedule, due: float, now: float) -> str:
        count, when = 0, due
        while when is not None and when <= now and count < MAX_COUNTED:
            count, when = count + 1, s.following(when)
        return str(count) if count < MAX_COUNTED else f"{MAX_COUNTED} or more"

    def job_ended(self, job: JobRt) -> None:
        """A run ended: a queued run of its schedule may start now."""
        s = self.all.get(job.schedule_id) if job.schedule_id else None
        if s is not None and s.queued and not s.paused and not self._running(s):
            s.queued = False
            self._launch(s, f"queued behind job {job.id}, which ended")

    # ----- runs ----------------------------------------------------------------------

    def _launch(self, s: Schedule, why: str) -> JobRt | None:
        """Start a run, or skip or queue it by the overlap rule."""
        self.engine.changes.schedules[s.id] = s
        running = self._running(s)
        if running and s.overlap == "skip":
            self._note(s, "SKIPPED", f"run {why} skipped: job {running[0].id} is still running (overlap = skip)")
            return None
        if running and s.overlap == "queue":
            folded = " (a run already waits: this one is folded into it)" if s.queued else ""
            s.queued = True
            self._note(s, "QUEUED", f"run {why} waits for job {running[0].id} to end (overlap = queue){folded}")
            return None
        return self._submit(s, why)

    def _submit(self, s: Schedule, why: str) -> JobRt | None:
        e = self.engine
        spec = replace(s.spec, wait_for_providers=True)  # nobody is there to be told "no provider": it waits
        try:
            drafts = extract_tasks(spec, max_tasks=e.config.max_tasks_per_job,
                                   default_max_attempts=e.config.default_max_attempts)
            job = e.submit(spec, drafts, owner=s.owner)
        except JobplaneError as exc:  # the spec was valid when stored; a later limit may refuse it
            self._note(s, "FAILED", f"run {why} could not be submitted: {exc}")
            return None
        job.schedule_id = s.id
        s.last_job_id = job.id
        self._note(s, "STARTED", f"run {why}: job {job.id}", job_id=job.id)
        return job

    def _running(self, s: Schedule) -> list[JobRt]:
        return [j for j in self.engine.jobs.values() if j.schedule_id == s.id]

    def paused_schedule(self, schedule_id: int) -> bool:
        """Whether a job's schedule is paused now (a hook for status mapping: INACTIVE)."""
        s = self.all.get(schedule_id)
        return s is not None and s.paused

    # ----- bookkeeping ---------------------------------------------------------------

    def _changed(self, s: Schedule, message: str) -> None:
        self.engine.changes.schedules[s.id] = s
        state = "DELETED" if s.deleted else "PAUSED" if s.paused else "ACTIVE"
        self._note(s, state, message)
        self._recompute()

    def _note(self, s: Schedule, raw_status: str, message: str, job_id: int | None = None) -> None:
        status = Status.INACTIVE if s.paused or s.deleted else Status.RUNNING if job_id else Status.WAITING
        self.engine.event(EventKind.SCHEDULE, job_id=job_id, raw={"schedule_id": str(s.id), "name": s.name},
                          raw_status=raw_status, status=status, message=f"schedule {s.id} {s.name}: {message}",
                          environment="jobplane")

    def _recompute(self) -> None:
        dues = [s.next_due for s in self.all.values() if not s.paused and s.next_due is not None]
        self._soonest = min(dues, default=None)


__all__ = ["MISFIRE_GRACE", "OVERLAPS", "Schedule", "Schedules", "check_schedule"]
