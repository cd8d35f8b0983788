"""Schedules in the database. Changes are written with the engine's batch (Store.apply); reads
(list, get: followers answer them too) and the restart's snapshot are here, with the row codecs."""

from __future__ import annotations

from dataclasses import dataclass

from peewee import Database, fn

from ..domain.model import JobState, Status
from ..domain.schedules import Schedule
from .codec import dump_job_spec, load_job_spec
from .models import JobRow, ScheduleRow

ACTIVE = (int(JobState.QUEUED), int(JobState.RUNNING))


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as a read shows it: the stored schedule and whether a run of it goes on."""

    schedule: Schedule
    next_due: float | None
    running: bool

    @property
    def status(self) -> Status:
        if self.schedule.paused or self.schedule.deleted:
            return Status.INACTIVE
        return Status.RUNNING if self.running else Status.WAITING


def schedule_row(s: Schedule) -> dict:
    return {"id": s.id, "name": s.name, "cron": s.cron, "time_zone": s.time_zone, "overlap": s.overlap,
            "catch_up": int(s.catch_up), "spec": dump_job_spec(s.spec), "owner": s.owner,
            "create_time": s.create_time, "paused": int(s.paused), "last_due": s.last_due, "next_due": s.next_due,
            "queued": int(s.queued), "last_job": s.last_job_id, "deleted": int(s.deleted),
            "resume_time": s.resume_time}


def schedule_from_row(r: ScheduleRow) -> Schedule:
    return Schedule(r.id, r.name, r.cron, r.time_zone, r.overlap, bool(r.catch_up), load_job_spec(r.spec),
                    r.owner, r.create_time, bool(r.paused), r.last_due, bool(r.queued), r.last_job, bool(r.deleted),
                    next_due=r.next_due, resume_time=r.resume_time)


def apply_schedules(rows: list[dict]) -> None:
    """Inside the batch's transaction: schedules created or changed (deleted ones are marked),
    as rows (schedule_row: staged on the event loop, since a Schedule changes in place)."""
    for row in rows:
        (ScheduleRow.insert(row)
         .on_conflict(conflict_target=[ScheduleRow.id], update={k: v for k, v in row.items() if k != "id"})
         .execute())


class ScheduleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def for_restore(self) -> tuple[list[Schedule], int]:
        """The schedules not deleted, and the highest id there ever was (deleted ones count)."""
        self.db.connect(reuse_if_open=True)
        rows = ScheduleRow.select().where(ScheduleRow.deleted == 0).order_by(ScheduleRow.id)
        return [schedule_from_row(r) for r in rows], ScheduleRow.select(fn.MAX(ScheduleRow.id)).scalar() or 0

    def list(self, owner: str | None = None) -> list[ScheduleView]:
        """Every schedule not deleted, by id (`owner`: only that identity's)."""
        self.db.connect(reuse_if_open=True)
        cond = ScheduleRow.deleted == 0
        if owner is not None:
            cond &= ScheduleRow.owner == owner
        rows = list(ScheduleRow.select().where(cond).order_by(ScheduleRow.id))
        running = self._running([r.id for r in rows])
        return [ScheduleView(schedule_from_row(r), r.next_due, r.id in running) for r in rows]

    def get(self, schedule_id: int, owner: str | None = None) -> ScheduleView | None:
        self.db.connect(reuse_if_open=True)
        cond = (ScheduleRow.id == schedule_id) & (ScheduleRow.deleted == 0)
        if owner is not None:
            cond &= ScheduleRow.owner == owner
        row = ScheduleRow.get_or_none(cond)
        if row is None:
            return None
        return ScheduleView(schedule_from_row(row), row.next_due, bool(self._running([row.id])))

    @staticmethod
    def _running(ids: list[int]) -> set[int]:
        if not ids:
            return set()
        query = (JobRow.select(JobRow.schedule).distinct()
                 .where(JobRow.schedule.in_(ids) & JobRow.state.in_(ACTIVE)))
        return {r.schedule for r in query}
