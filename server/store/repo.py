"""The repository's write side: the schema, the snapshot a restart resumes from, and the
writes, which arrive as one ChangeSet per batch and are committed in one transaction (group
commit). Callers read through `Store.reads` (reads.py), which returns frozen views."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from peewee import Database, PostgresqlDatabase, fn
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

from ..domain.changes import ChangeSet, ContinuationRec
from ..domain.continuation import Pending
from ..domain.fences import Fence
from ..domain.inventory import InvEntry
from ..domain.model import JOB_DONE, TASK_DONE, JobState, ProviderState, Status, TaskState
from ..domain.state import AttemptRt, Counters, JobRt, ProviderRt, TaskRt
from ..errors import Deposed, StoreFailure
from .changed import ChangedColumns
from .codec import dump_job_spec, dump_resources, dump_task_spec, load_job_spec, load_resources, load_task_spec
from . import idfloor, indexes
from .conflicts import ConflictStore, apply_overlaps, apply_rules
from .schedules import ScheduleStore, apply_schedules
from .indexes import job_tags
from .failures import drop_connection, explain, root_cause
from .lease import Term, fence, notify
from .notifications import apply_deliveries
from .alerts import AlertStore, apply_alert_rules
from .reads import IN_CHUNK, Reads, whole_specs
from .models import (
    ALL_MODELS,
    AttemptRow,
    AuditRow,
    ContinuationRow,
    ContinuedTaskRow,
    EventRow,
    InventoryRow,
    JobRow,
    JobSpecRow,
    JobTagRow,
    ProviderRow,
    TaskRow,
    database,
)

log = logging.getLogger(__name__)

SCHEMA_LOCK = 0x6A6F62706C616E65  # "jobplane": the advisory lock taken while the schema is made
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
        # what the last commits set in indexed columns, so updates set only what moved (changed.py)
        self._job_columns = ChangedColumns("job", ("counts", "reason", "hold"), _JOB_INDEXED)
        self._task_columns = ChangedColumns("task", _TASK_ALWAYS, _TASK_INDEXED)
        self._attempt_columns = ChangedColumns("attempt", _ATTEMPT_ALWAYS, ("start_time", "end_time"))

    # ----- lifecycle -----------------------------------------------------------------

    def create_schema(self) -> None:
        with self.db.connection_context():
            if not isinstance(self.db, PostgresqlDatabase):
                self._create_schema()
                return
            with self.db.atomic():  # replicas starting together: one creates, the others find it made
                self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                self._create_schema()

    def _create_schema(self) -> None:
        """Tables and indexes that are missing, and only those: on a busy database (a replica
        joining), even CREATE INDEX IF NOT EXISTS waits for the leader's writes and holds up
        the ones after it."""
        self._add_missing_columns()  # first: the indexes created next may use the new columns
        missing = [m for m in ALL_MODELS if not self.db.table_exists(m._meta.table_name)]
        tags_were_missing = JobTagRow in missing and JobRow not in missing
        self.db.create_tables(missing, safe=True)
        for model in ALL_MODELS:
            if model in missing:
                continue
            have = {index.name for index in self.db.get_indexes(model._meta.table_name)}
            for index in model._meta.fields_to_index():
                if index._name not in have:
                    log.info("creating index %s", index._name)
                    self.db.execute(index)  # CREATE INDEX IF NOT EXISTS
        indexes.create_missing(self.db, tags_were_missing)

    def _add_missing_columns(self) -> None:
        """A database made by an older jobplane gains the columns added since (each has a default)."""
        migrator = PostgresqlMigrator(self.db) if isinstance(self.db, PostgresqlDatabase) else SqliteMigrator(self.db)
        for model in ALL_MODELS:
            table = model._meta.table_name
            if not self.db.table_exists(table):
                continue  # created whole by create_tables
            have = {c.name for c in self.db.get_columns(table)}
            missing = [f for f in model._meta.sorted_fields if f.column_name not in have]
            if missing:
                log.info("adding columns %s to table %s", [f.column_name for f in missing], table)
                migrate(*(migrator.add_column(table, f.column_name, f) for f in missing))

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    def load(self) -> Snapshot:
        self._forget_written()  # another leader may have written since
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
        """Persist one batch atomically; raises StoreFailure saying why not and what to do.
        With a replica's `term`, the batch is written only while that term's lease holds
        (else Deposed, and nothing is written), and the followers are woken by its commit."""
        try:
            self.db.connect(reuse_if_open=True)
            with self.db.atomic():
                self._write(cs)
                if term is not None:  # last, so the lease's row is locked only from here to the commit
                    if not fence(self.db, term):
                        raise Deposed(f"another replica took the lease from epoch {term.epoch}; this one "
                                      "stopped leading and passes calls on to the new leader: retry")
                    if cs.events:
                        notify(self.db, cs.events[-1].id)
        except Deposed:
            self._forget_written()
            raise
        except Exception as exc:
            self._forget_written()
            drop_connection(self.db)
            raise StoreFailure(explain(exc, self.db)) from root_cause(exc)

    def _forget_written(self) -> None:
        self._job_columns.forget_all()
        self._task_columns.forget_all()
        self._attempt_columns.forget_all()

    def _write(self, cs: ChangeSet) -> None:
        new_jobs = [cs.jobs[i] for i in sorted(cs.new_jobs)]
        self._release_request_ids(new_jobs)
        self._insert(JobRow, [_job_row(j) for j in new_jobs])
        self._insert(JobSpecRow, [{"job": j.id, "spec": dump_job_spec(j.spec)} for j in new_jobs])
        self._insert(JobTagRow, [tag for j in new_jobs for tag in job_tags(j.id, j.spec)])
        self._insert(TaskRow, [_task_row(cs.tasks[i]) for i in sorted(cs.new_tasks)])
        self._insert(AttemptRow, [_attempt_row(cs.attempts[i]) for i in sorted(cs.new_attempts)])
        for j in new_jobs:
            self._job_columns.remember(j.id, _job_indexed(j))
        for i in cs.new_tasks:
            self._task_columns.remember(i, _task_indexed(cs.tasks[i]))
        for i in cs.new_attempts:
            self._attempt_columns.remember(i, (cs.attempts[i].start_time, cs.attempts[i].end_time))
        self._update_jobs([j for i, j in cs.jobs.items() if i not in cs.new_jobs])
        self._update_tasks([t for i, t in cs.tasks.items() if i not in cs.new_tasks])
        self._update_attempts([a for i, a in cs.attempts.items() if i not in cs.new_attempts])
        self._upsert_providers(cs)
        self._insert(EventRow, [_event_row(e) for e in cs.events])
        self._insert_continuations(cs.continuations)
        self._insert(AuditRow, cs.audits)
        self._upsert_inventory(cs.inventory)
        apply_rules(cs.conflict_rules)
        apply_overlaps(cs.overlaps)
        apply_schedules(cs.schedules)
        apply_deliveries(cs.notifications)
        apply_alert_rules(cs.alert_rules)
        self._executemany(
            "UPDATE continued_task SET to_provider=?, to_attempt=?, dispatch_time=?, checkpoint=?"
            " WHERE continuation=? AND task=?",
            [(c.provider, c.attempt, c.time, c.checkpoint, c.continuation_id, c.task_id) for c in cs.continued])

    def _insert(self, model, rows: list[dict]) -> None:
        """Bulk insert with one prepared statement: peewee's per-row SQL building costs
        more than SQLite itself at thousands of rows a second. Rows must name every
        column without a database default: peewee's Python-side defaults do not apply."""
        if not rows:
            return
        columns = list(rows[0])
        names = ", ".join(f'"{model._meta.fields[c].column_name}"' for c in columns)
        sql = f'INSERT INTO "{model._meta.table_name}" ({names}) VALUES ({", ".join("?" * len(columns))})'
        self._executemany(sql, [tuple(row[c] for c in columns) for row in rows])

    def _executemany(self, sql: str, params: list[tuple]) -> None:
        if params:
            sql = sql.replace("?", self.db.param)
            self.db.cursor().executemany(sql, params)

    def _release_request_ids(self, jobs) -> None:
        """A new job may reuse a request id its owner used longer ago than the TTL (the engine
        checked the younger ones): the old job gives it up, to keep (owner, request_id) unique."""
        self._executemany("UPDATE job SET request_id = NULL WHERE owner = ? AND request_id = ?",
                          [(j.owner, j.request.id) for j in jobs if j.request is not None])

    def _update_jobs(self, jobs) -> None:
        for sql, params in self._job_columns.updates(
                ((j.id, (json.dumps(j.counts), j.reason, j.hold), _job_indexed(j), j.state in JOB_DONE)
                 for j in jobs)):
            self._executemany(sql, params)

    def _update_tasks(self, tasks) -> None:
        for sql, params in self._task_columns.updates(
                ((t.id, (t.lost_attempts, t.result_json, t.error, t.stdout_tail, t.stderr_tail, t.reason, t.checkpoint,
                         t.reruns, t.attempt_base, t.fence.dump() if t.fence is not None else "",
                         json.dumps(t.suspended) if t.suspended else "", t.held_attempts, t.paused),
                  _task_indexed(t), t.state in TASK_DONE) for t in tasks)):
            self._executemany(sql, params)

    def _update_attempts(self, attempts) -> None:
        for sql, params in self._attempt_columns.updates(
                ((a.id, (a.outcome, a.exit_code, a.reason, a.checkpoint, a.environment, _json(a.raw),
                         a.external_job_id), (a.start_time, a.end_time), a.end_time is not None)
                 for a in attempts)):
            self._executemany(sql, params)

    def _upsert_providers(self, cs: ChangeSet) -> None:
        self._upsert(ProviderRow, ("id",), [
            {"id": p.id, "state": int(p.state), "facts": json.dumps(p.facts), "labels": json.dumps(p.labels),
             "slots": p.slots, "heartbeat": p.heartbeat, "connect_time": p.connect_time,
             "last_seen": p.last_seen, "kill_deadline": p.kill_deadline, "containment": p.containment,
             "backoff_cap": p.backoff_cap, "promoted": int(p.promoted), "drained": int(p.drained),
             "capacity": dump_resources(p.capacity)}
            for p in cs.providers.values()])

    def _upsert_inventory(self, changes: list) -> None:
        self._upsert(InventoryRow, ("provider", "signature"), [
            {"provider": c.provider, "signature": c.signature_id,
             "signature_json": json.dumps(c.signature, sort_keys=True), "description": c.entry.description,
             "present": int(c.entry.present), "details": json.dumps(c.entry.details), "reason": c.entry.reason,
             "scan_time": c.entry.scan_time, "expire_time": c.entry.expires, "source": c.entry.source}
            for c in changes])

    def _upsert(self, model, keys: tuple[str, ...], rows: list[dict]) -> None:
        """Insert or update many rows with one prepared statement (10,000 agents connecting
        write as many provider rows: one statement each was a quarter of the server's time)."""
        if not rows:
            return
        columns = list(rows[0])
        column = {c: f'"{model._meta.fields[c].column_name}"' for c in columns}
        sql = (f'INSERT INTO "{model._meta.table_name}" ({", ".join(column.values())}) '
               f'VALUES ({", ".join("?" * len(columns))}) '
               f'ON CONFLICT ({", ".join(column[k] for k in keys)}) DO UPDATE SET '
               + ", ".join(f"{column[c]} = excluded.{column[c]}" for c in columns if c not in keys))
        self._executemany(sql, [tuple(row[c] for c in columns) for row in rows])

    def _insert_continuations(self, recs: list[ContinuationRec]) -> None:
        for rec in recs:
            ContinuationRow.insert(id=rec.id, provider=rec.provider, time=rec.time, reason=rec.reason).execute()
            self._insert(ContinuedTaskRow, [
                {"continuation": rec.id, "task": t.task_id, "job": t.job_id, "task_name": t.task_name,
                 "from_attempt": t.from_attempt, "position": t.position, "priority": t.priority, "rule": t.rule,
                 "to_provider": "", "to_attempt": 0, "dispatch_time": None, "checkpoint": ""}
                for t in rec.tasks])

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


def _json(value: dict | list) -> str:
    """A dict or list as JSON; an empty one (most tasks' raw and deps, most events' raw) without
    the encoder's cost, a few microseconds a call at several calls per task."""
    return json.dumps(value) if value else "[]" if isinstance(value, list) else "{}"


def _job_row(j) -> dict:
    return {"id": j.id, "name": j.name, "priority": j.priority, "spec": dump_job_spec(j.spec, tasks=False),
            "state": int(j.state), "status": int(j.status), "counts": json.dumps(j.counts), "reason": j.reason,
            "submit_time": j.submit_time, "start_time": j.start_time, "end_time": j.end_time, "owner": j.owner,
            "hold": j.hold, "request_id": j.request.id if j.request else None,
            "request_digest": j.request.digest if j.request else "", "schedule": j.schedule_id}


# Task and attempt columns an update sets every time, and the indexed ones it sets when changed.
_TASK_ALWAYS = ("lost_attempts", "result_json", "error", "stdout_tail", "stderr_tail", "reason", "checkpoint",
                "reruns", "attempt_base", "fence", "suspended", "held_attempts", "paused")
_JOB_INDEXED = ("state", "status", "start_time", "end_time")
_TASK_INDEXED = ("state", "status", "attempt", "provider", "exit_code", "environment", "raw")
_ATTEMPT_ALWAYS = ("outcome", "exit_code", "reason", "checkpoint", "environment", "raw", "external_job_id")


def _job_indexed(j) -> tuple:
    return int(j.state), int(j.status), j.start_time, j.end_time


def _task_indexed(t) -> tuple:
    return int(t.state), int(t.status), t.attempt, t.provider, t.exit_code, t.environment, _json(t.raw)


def _task_row(t) -> dict:
    return {"id": t.id, "job": t.job_id, "idx": t.idx, "name": t.name, "group": t.group,
            "spec": dump_task_spec(t.spec), "deps": _json(t.deps), "max_attempts": t.max_attempts,
            "state": int(t.state), "status": int(t.status), "attempt": t.attempt, "lost_attempts": t.lost_attempts,
            "provider": t.provider, "exit_code": t.exit_code, "result_json": t.result_json, "error": t.error,
            "stdout_tail": t.stdout_tail, "stderr_tail": t.stderr_tail, "reason": t.reason,
            "checkpoint": t.checkpoint, "environment": t.environment, "raw": _json(t.raw), "reruns": t.reruns,
            "attempt_base": t.attempt_base, "fence": t.fence.dump() if t.fence is not None else "",
            "suspended": json.dumps(t.suspended) if t.suspended else "", "held_attempts": t.held_attempts,
            "paused": t.paused}


def _attempt_row(a) -> dict:
    return {"id": a.id, "task": a.task_id, "number": a.number, "provider": a.provider,
            "assign_time": a.assign_time, "start_time": a.start_time, "end_time": a.end_time,
            "outcome": a.outcome, "exit_code": a.exit_code, "reason": a.reason, "checkpoint": a.checkpoint,
            "resumed_from": a.resumed_from, "environment": a.environment, "raw": _json(a.raw),
            "external_job_id": a.external_job_id}


def _event_row(e) -> dict:
    return {"id": e.id, "time": e.time, "kind": int(e.kind), "job": e.job_id, "task": e.task_id,
            "task_name": e.task_name, "provider": e.provider_id, "attempt": e.attempt,
            "raw_status": e.raw_status, "raw": _json(e.raw), "status": int(e.status), "message": e.message,
            "environment": e.environment}


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
                  paused=r.paused)


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
