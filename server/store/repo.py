"""The repository's write side: the schema, the snapshot a restart resumes from, and the
writes, which arrive as one ChangeSet per batch and are committed in one transaction (group
commit). Callers read through `Store.reads` (reads.py), which returns frozen views."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from peewee import Database, fn

from ..domain.changes import ChangeSet
from ..domain.continuation import Pending
from ..domain.fences import Fence
from ..domain.inventory import InvEntry
from ..domain.model import JobState, ProviderState, Status, TaskState
from ..domain.state import AttemptRt, Counters, JobRt, ProviderRt, TaskRt
from ..errors import Deposed, StoreFailure
from .codec import load_job_spec, load_resources, load_task_spec
from . import idfloor, schema
from .conflicts import ConflictStore
from .schedules import ScheduleStore
from .failures import drop_connection, explain, root_cause
from .lease import Term, fence, notify
from .alerts import AlertStore
from .reads import IN_CHUNK, Reads, whole_specs
from .staging import Staged, Stager
from .models import (
    AttemptRow,
    ContinuedTaskRow,
    EventRow,
    InventoryRow,
    JobRow,
    ProviderRow,
    TaskRow,
    database,
)

log = logging.getLogger(__name__)

ACTIVE_JOB_STATES = (int(JobState.QUEUED), int(JobState.RUNNING))


@dataclass
class Snapshot:
    """Everything the engine needs to resume after a restart."""

    max_ids: dict[str, int]
    providers: list[ProviderRow]
    jobs: list[JobRow]
    tasks: list[TaskRow]
    attempts: list[AttemptRow]  # the current attempt of each task out at a provider
    handed_on: dict[int, str]  # queued task id -> the outside job its lost last attempt followed
    waiting: list[ContinuedTaskRow]  # continuations not dispatched yet
    inventory: list[InventoryRow]
    rules: list = None  # conflicts.ConflictRule: the conflict matrix
    together: dict = None  # (class a, class b) -> transient failures seen together (reruns.py)
    schedules: tuple = ((), 0)  # (the schedules.Schedule not deleted, the highest schedule id ever)
    specs: dict = None  # job id -> its whole spec (job_spec; none for jobs of older versions)
    alerts: tuple = ((), 0)  # (the alerts.AlertRule not deleted, the highest rule id ever)


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        database.initialize(db)
        self.reads = Reads(db)
        # rows made ready for the writer; remembers what the last commits set in indexed columns
        self._stager = Stager(db.param)

    # ----- lifecycle -----------------------------------------------------------------

    def create_schema(self) -> None:
        schema.create(self.db)

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    def load(self) -> Snapshot:
        self._stager.forget()  # another leader may have written since
        self.db.connect(reuse_if_open=True)
        max_ids = idfloor.highest_ids(self.db)
        jobs = list(JobRow.select().where(JobRow.state.in_(ACTIVE_JOB_STATES)).order_by(JobRow.id))
        job_ids = [j.id for j in jobs]
        tasks = []
        for i in range(0, len(job_ids), IN_CHUNK):
            chunk = job_ids[i:i + IN_CHUNK]
            tasks += list(TaskRow.select().where(TaskRow.job.in_(chunk)).order_by(TaskRow.id))
        out = [t for t in tasks if t.state in (int(TaskState.ASSIGNED), int(TaskState.RUNNING))]
        attempts = []
        for t in out:
            row = AttemptRow.get_or_none((AttemptRow.task == t.id) & (AttemptRow.number == t.attempt))
            if row is not None:
                attempts.append(row)
        queued = {t.id: t for t in tasks if t.state == int(TaskState.QUEUED)}
        # A continuation made before the task's job was rerun (reopen.py) is not the task's now.
        waiting = [row for row in ContinuedTaskRow.select().where(ContinuedTaskRow.to_provider == "")
                   .order_by(ContinuedTaskRow.id) if row.task in queued
                   and row.from_attempt > queued[row.task].attempt_base]
        return Snapshot(max_ids, list(ProviderRow.select()), jobs, tasks, attempts,
                        self._handed_on([t for t in tasks if t.id in queued and t.attempt > 0]), waiting,
                        list(InventoryRow.select()), ConflictStore(self.db).rules(),
                        {(o.class_a, o.class_b): o.failures for o in ConflictStore(self.db).overlaps(1)},
                        ScheduleStore(self.db).for_restore(), whole_specs(job_ids), AlertStore(self.db).for_restore())

    @staticmethod
    def _handed_on(queued: list[TaskRow]) -> dict[int, str]:
        """Queued tasks whose last attempt was lost (outcome 0) while it followed an outside
        job: task id -> that job, which their next attempt adopts."""
        last = {t.id: t.attempt for t in queued}
        ids = list(last)
        found = {}
        for i in range(0, len(ids), IN_CHUNK):
            rows = (AttemptRow.select(AttemptRow.task, AttemptRow.number, AttemptRow.external_job_id)
                    .where(AttemptRow.task.in_(ids[i:i + IN_CHUNK]) & (AttemptRow.external_job_id != "")
                           & (AttemptRow.outcome == 0) & AttemptRow.end_time.is_null(False)))
            found.update((r.task, r.external_job_id) for r in rows if last[r.task] == r.number)
        return found

    # ----- writes --------------------------------------------------------------------

    def apply(self, cs: ChangeSet, term: Term | None = None) -> None:
        """Persist one batch atomically (stage, then write, on the calling thread)."""
        self.write(self.stage(cs), term)

    def stage(self, cs: ChangeSet) -> Staged:
        """The batch's writes as plain values (staging.py); on the thread that owns the engine,
        in commit order. Raises StoreFailure if a row cannot be made."""
        try:
            return self._stager.stage(cs)
        except Exception as exc:
            self._stager.forget()
            raise StoreFailure(f"internal error: could not stage a batch's rows ({exc!r}); restart "
                               "jobplane-server: it resumes from its database, where every acknowledged change is") from exc

    def write(self, staged: Staged, term: Term | None = None) -> None:
        """Commit one staged batch in one transaction; raises StoreFailure saying why not and
        what to do. With a replica's `term`, the batch is written only while that term's lease
        holds (else Deposed, and nothing is written), and the followers are woken by its commit.
        After a failure, call `forget_written` on the staging thread before staging again."""
        try:
            self.db.connect(reuse_if_open=True)
            with self.db.atomic():
                staged.run(self.db)
                if term is not None:  # last, so the lease's row is locked only from here to the commit
                    if not fence(self.db, term):
                        raise Deposed(f"another replica took the lease from epoch {term.epoch}; this one "
                                      "stopped leading and passes calls on to the new leader: retry")
                    if staged.last_event:
                        notify(self.db, staged.last_event)
        except Deposed:
            self._stager.forget()
            raise
        except Exception as exc:
            self._stager.forget()
            drop_connection(self.db)
            raise StoreFailure(explain(exc, self.db)) from root_cause(exc)

    def forget_written(self) -> None:
        """What staging remembers of indexed columns may not be in the database (changed.py)."""
        self._stager.forget()

    # ----- events (the server's housekeeping; callers read through Reads) ---------------

    def compact_events(self, before: float) -> int | None:
        """Delete events older than `before`; the oldest id kept, None if none is."""
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            idfloor.record(self.db, ("event",))  # the newest may go too: its id is still never used again
            EventRow.delete().where(EventRow.time < before).execute()
        return self.oldest_event_id()

    def oldest_event_id(self) -> int | None:
        self.db.connect(reuse_if_open=True)
        return EventRow.select(fn.MIN(EventRow.id)).scalar()

    def event_id_range(self) -> tuple[int | None, int | None]:
        """The oldest and newest stored event ids (None, None: no event yet)."""
        self.db.connect(reuse_if_open=True)
        try:
            return tuple(EventRow.select(fn.MIN(EventRow.id), fn.MAX(EventRow.id)).tuples().get())
        except Exception:
            drop_connection(self.db)
            raise


def runtime_from_snapshot(snap: Snapshot):
    """Rows to the engine's runtime objects: (counters, jobs, tasks, providers)."""
    ids = snap.max_ids
    counters = Counters(ids["job"] + 1, ids["task"] + 1, ids["attempt"] + 1, ids["event"] + 1, ids["continuation"] + 1)
    jobs = [job_runtime(r, (snap.specs or {}).get(r.id)) for r in snap.jobs]
    current = {a.task: a for a in snap.attempts}
    tasks = []
    for r in snap.tasks:
        t = task_runtime(r, adopt_job=snap.handed_on.get(r.id, ""))
        a = current.get(r.id)
        if a is not None:
            t.current = AttemptRt(a.id, a.task, a.number, a.provider, a.assign_time, a.start_time,
                                  checkpoint=a.checkpoint, resumed_from=a.resumed_from,
                                  environment=a.environment, raw=json.loads(a.raw),
                                  external_job_id=a.external_job_id)
        tasks.append(t)
    providers = [ProviderRt(r.id, ProviderState(r.state), json.loads(r.facts), json.loads(r.labels), r.slots,
                            r.heartbeat, r.connect_time, r.last_seen,
                            drained=bool(r.drained),
                            kill_deadline=r.kill_deadline, containment=r.containment, backoff_cap=r.backoff_cap,
                            promoted=bool(r.promoted), capacity=load_resources(r.capacity))
                 for r in snap.providers]
    _restore_inventory(snap.inventory, {p.id: p for p in providers})
    by_job, by_task = {j.id: j for j in jobs}, {t.id: t for t in tasks}
    waiting = [_waiting(r, by_job[r.job], by_task[r.task]) for r in snap.waiting
               if r.job in by_job and r.task in by_task]
    return counters, jobs, tasks, providers, waiting


def job_runtime(r: JobRow, whole: bytes | None = None) -> JobRt:
    """A stored job as the engine holds it (its tasks and derived state are the engine's to add);
    `whole`: its whole spec, from job_spec (None: the row's spec is whole, as older versions kept it)."""
    return JobRt(r.id, r.name, r.priority, load_job_spec(r.spec if whole is None else whole), JobState(r.state), r.submit_time,
                 counts=json.loads(r.counts), start_time=r.start_time, end_time=r.end_time, reason=r.reason,
                 owner=r.owner, hold=r.hold, schedule_id=r.schedule)


def task_runtime(r: TaskRow, adopt_job: str = "") -> TaskRt:
    """A stored task as the engine holds it, without its current attempt."""
    return TaskRt(r.id, r.job, r.idx, r.name, r.group, load_task_spec(r.spec), json.loads(r.deps),
                  r.max_attempts, TaskState(r.state), Status(r.status), r.attempt, r.lost_attempts, r.provider,
                  r.exit_code, r.result_json, r.error, r.stdout_tail, r.stderr_tail, r.reason,
                  checkpoint=r.checkpoint, environment=r.environment, raw=json.loads(r.raw), reruns=r.reruns,
                  attempt_base=r.attempt_base, fence=Fence.load(r.fence), adopt_job=adopt_job,
                  suspended=json.loads(r.suspended) if r.suspended else {}, held_attempts=r.held_attempts,
                  given_back=r.given_back, paused=r.paused)


def _restore_inventory(rows: list[InventoryRow], providers: dict) -> None:
    for r in rows:
        if r.provider in providers:
            providers[r.provider].inventory[r.signature] = InvEntry(
                bool(r.present), r.scan_time, r.expire_time, json.loads(r.details), r.reason, r.source, r.description)


def _waiting(row: ContinuedTaskRow, job, task):
    """A continuation that had not gone out yet, in its place in line (as at the failure)."""
    key = (row.priority, -job.priority, job.submit_time, job.id, task.idx)
    return Pending(key, task.id, row.continuation, row.priority, row.rule, dict(task.spec.requires),
                   task.spec.prerequisite_ids, task.spec.resources)
