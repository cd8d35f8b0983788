"""Finished jobs, as the leader's housekeeping touches them: one loaded back for a rerun
(domain/reopen.py), and those past a time purged with everything that is theirs (their tasks,
attempts, events, continuation records and, on the job row, their request id).

A purge deletes in small transactions (`purge_step`), each bounded in rows, so one purge never
holds the writer long; a job's row goes last, so a purge cut short leaves a job that the next
purge finishes. Before anything is deleted the highest ids are recorded (idfloor.py): ids are
never used again. Each transaction of a replica checks its lease, like every commit."""

from __future__ import annotations

from dataclasses import dataclass

from peewee import Database, fn

from ..domain.model import JOB_DONE, TaskState
from ..domain.state import JobRt, TaskRt
from ..errors import Deposed, StoreFailure
from . import idfloor
from .failures import drop_connection, root_cause, where_it_lives
from .lease import Term, fence
from .models import AttemptRow, ContinuationRow, ContinuedTaskRow, EventRow, JobRow, JobSpecRow, JobTagRow, NotificationRow, TaskRow
from .reads import IN_CHUNK, whole_specs
from .repo import job_runtime, task_runtime

FINISHED = [int(s) for s in JOB_DONE]
EVENTS_PER_STEP = 2000  # rows of one table a purge transaction deletes, at most
TASKS_PER_STEP = 500  # tasks (with their attempts) a purge transaction deletes, at most


@dataclass
class StoredJob:
    """A finished job as stored, for a rerun: the job, all its tasks in order, and the last
    attempts that never recorded an end (task id -> (provider, attempt number))."""

    job: JobRt
    tasks: list[TaskRt]
    unended: dict[int, tuple[str, int]]


class FinishedJobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, job_id: int, owner: str | None = None) -> StoredJob | None:
        """The job with its tasks (None if there is none, or with `owner`, if it is not theirs)."""
        cond = JobRow.id == job_id
        row = JobRow.get_or_none(cond if owner is None else cond & (JobRow.owner == owner))
        if row is None:
            return None
        tasks = [task_runtime(r) for r in TaskRow.select().where(TaskRow.job == job_id).order_by(TaskRow.idx)]
        ended = (int(TaskState.FAILED), int(TaskState.CANCELLED))
        last = {t.id: t.attempt for t in tasks if int(t.state) in ended and t.attempt > 0}
        unended: dict[int, tuple[str, int]] = {}
        ids = list(last)
        for i in range(0, len(ids), IN_CHUNK):
            for a in (AttemptRow.select(AttemptRow.task, AttemptRow.number, AttemptRow.provider)
                      .where(AttemptRow.task.in_(ids[i:i + IN_CHUNK]) & AttemptRow.end_time.is_null())):
                if last[a.task] == a.number:
                    unended[a.task] = (a.provider, a.number)
        return StoredJob(job_runtime(row, whole_specs([job_id]).get(job_id)), tasks, unended)

    # ----- purge ---------------------------------------------------------------------

    def purgeable(self, before: float, limit: int, term: Term | None = None) -> list[int]:
        """Up to `limit` finished jobs that ended before `before`, oldest id first; the highest
        ids are recorded first, since these jobs' rows are about to go."""
        return self._write(self._purgeable, before, limit, term)

    def purge_step(self, job_ids: list[int], term: Term | None = None) -> tuple[bool, int]:
        """One transaction of a purge of these jobs: up to a bounded number of their events and
        of their tasks (with the tasks' attempts); once none is left, their continuation records
        and the job rows. (done, jobs purged)."""
        return self._write(self._purge_step, job_ids, term)

    def _purgeable(self, before: float, limit: int) -> list[int]:
        idfloor.record(self.db)
        query = (JobRow.select(JobRow.id).where(JobRow.state.in_(FINISHED) & (JobRow.end_time < before))
                 .order_by(JobRow.id).limit(limit))
        return [row.id for row in query]

    def _purge_step(self, job_ids: list[int]) -> tuple[bool, int]:
        events = EventRow.select(EventRow.id).where(EventRow.job.in_(job_ids)).order_by(EventRow.id)
        gone_events = EventRow.delete().where(EventRow.id.in_(events.limit(EVENTS_PER_STEP))).execute()
        tasks = TaskRow.select(TaskRow.id).where(TaskRow.job.in_(job_ids)).order_by(TaskRow.id).limit(TASKS_PER_STEP)
        AttemptRow.delete().where(AttemptRow.task.in_(tasks)).execute()
        gone_tasks = TaskRow.delete().where(TaskRow.id.in_(tasks)).execute()
        if gone_events == EVENTS_PER_STEP or gone_tasks == TASKS_PER_STEP:
            return False, 0  # more to delete: in the next transaction
        continuations = {r.continuation for r in ContinuedTaskRow.select(ContinuedTaskRow.continuation)
                         .where(ContinuedTaskRow.job.in_(job_ids))}
        ContinuedTaskRow.delete().where(ContinuedTaskRow.job.in_(job_ids)).execute()
        if continuations:  # a provider's continuation goes once none of its tasks is left
            left = ContinuedTaskRow.select(ContinuedTaskRow.id).where(
                ContinuedTaskRow.continuation == ContinuationRow.id)
            ContinuationRow.delete().where(ContinuationRow.id.in_(list(continuations)) & ~fn.EXISTS(left)).execute()
        gone = [r.id for r in JobRow.select(JobRow.id).where(JobRow.id.in_(job_ids) & JobRow.state.in_(FINISHED))]
        JobTagRow.delete().where(JobTagRow.job.in_(gone)).execute()
        JobSpecRow.delete().where(JobSpecRow.job.in_(gone)).execute()
        # settled notifications go with the job; a pending one stays until it is delivered or given up
        NotificationRow.delete().where(NotificationRow.job.in_(gone) & (NotificationRow.state != 0)).execute()
        purged = JobRow.delete().where(JobRow.id.in_(gone)).execute()
        return True, purged

    def _write(self, work, *args):
        """Run `work(*args[:-1])` in one transaction that commits only while `term` (the last
        argument) still leads; a database error becomes StoreFailure (UNAVAILABLE to the caller)
        and nothing of the transaction is kept (the server carries on: nothing else was changed)."""
        *args, term = args
        try:
            self.db.connect(reuse_if_open=True)
            with self.db.atomic():
                result = work(*args)
                if term is not None and not fence(self.db, term):
                    raise Deposed(f"another replica took the lease from epoch {term.epoch}; this one no longer "
                                  "purges: retry, and the new leader does it")
            return result
        except (Deposed, StoreFailure):
            raise
        except Exception as exc:
            drop_connection(self.db)
            cause = " ".join(str(root_cause(exc)).split()) or type(exc).__name__
            raise StoreFailure(f"the purge could not delete: {cause}; nothing of its last step was deleted: check "
                               f"that the database ({where_it_lives(self.db)}) is up and writable, then purge "
                               "again") from root_cause(exc)


__all__ = ["FinishedJobStore", "StoredJob"]
