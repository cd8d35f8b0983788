"""A batch's writes made ready on the event loop, run by the writer thread.

The ChangeSet of a batch holds the engine's live objects (TaskRt, JobRt, ...), which the loop
goes on changing while the batch commits (the core applies the next batch meanwhile). So the
batch is staged first, on the loop: every row becomes plain values (SQL and parameter tuples,
or row dicts for the few writes made through peewee), and the writer thread runs only those.
Staging also decides which indexed columns an update sets (changed.py): it runs in commit
order, on one thread, and a failed commit stops the core, whose next engine loads anew."""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

from ..domain.changes import ChangeSet, ContinuationRec
from ..domain.model import JOB_DONE, TASK_DONE
from .alerts import apply_alert_rules
from .changed import ChangedColumns
from .codec import TaskSpecs, dump_job_head, dump_resources, dump_task_spec, with_tasks
from .conflicts import apply_overlaps, apply_rules
from .indexes import job_tags
from .models import (AttemptRow, AuditRow, ContinuationRow, ContinuedTaskRow, EventRow, InventoryRow, JobRow,
                     JobSpecRow, JobTagRow, ProviderRow, TaskRow)
from .notifications import apply_deliveries
from .schedules import apply_schedules, schedule_row

@dataclass
class Staged:
    """One batch's writes as plain values, in the order they run; `last_event`: the id of its
    newest event (replicas' followers are told of it), 0 when it has none."""

    steps: list[tuple[str, list[tuple]] | Callable[[], None]] = field(default_factory=list)
    last_event: int = 0

    def run(self, db) -> None:
        """Every write, inside the caller's transaction (on the writer thread)."""
        for step in self.steps:
            if callable(step):
                step()
            else:
                db.cursor().executemany(step[0], step[1])


class Stager:
    """Turns ChangeSets into Staged writes; remembers what it wrote to indexed columns."""

    def __init__(self, param: str) -> None:
        self.param = param  # the database's placeholder ("?" or "%s")
        self.jobs = ChangedColumns("job", ("counts", "reason", "hold"), JOB_INDEXED)
        self.tasks = ChangedColumns("task", TASK_ALWAYS, TASK_INDEXED)
        self.attempts = ChangedColumns("attempt", ATTEMPT_ALWAYS, ("start_time", "end_time"))
        self._sql: dict[tuple, str] = {}

    def forget(self) -> None:
        """What was remembered may not be in the database (a failed commit, another leader)."""
        self.jobs.forget_all()
        self.tasks.forget_all()
        self.attempts.forget_all()

    def stage(self, cs: ChangeSet) -> Staged:
        out = Staged(last_event=cs.events[-1].id if cs.events else 0)
        new_jobs = [cs.jobs[i] for i in sorted(cs.new_jobs)]
        self._sql_step(out, "UPDATE job SET request_id = NULL WHERE owner = ? AND request_id = ?",
                       [(j.owner, j.request.id) for j in new_jobs if j.request is not None])
        specs, heads = TaskSpecs(), {j.id: dump_job_head(j.spec) for j in new_jobs}  # each spec encoded once
        self._insert(out, JobRow, [job_row(j, heads[j.id]) for j in new_jobs])
        self._insert(out, JobSpecRow, [{"job": j.id, "spec": with_tasks(heads[j.id], j.spec, specs)} for j in new_jobs])
        self._insert(out, JobTagRow, [tag for j in new_jobs for tag in job_tags(j.id, j.spec)])
        self._insert_values(out, TaskRow, TASK_COLUMNS, [task_values(cs.tasks[i], specs) for i in sorted(cs.new_tasks)])
        self._insert_values(out, AttemptRow, ATTEMPT_COLUMNS, [attempt_values(cs.attempts[i])
                                                               for i in sorted(cs.new_attempts)])
        for j in new_jobs:
            self.jobs.remember(j.id, job_indexed(j))
        for i in cs.new_tasks:
            self.tasks.remember(i, task_indexed(cs.tasks[i]))
        for i in cs.new_attempts:
            self.attempts.remember(i, (cs.attempts[i].start_time, cs.attempts[i].end_time))
        self._updates(out, self.jobs.updates(
            (j.id, (json.dumps(j.counts), j.reason, j.hold), job_indexed(j), j.state in JOB_DONE)
            for i, j in cs.jobs.items() if i not in cs.new_jobs))
        self._updates(out, self.tasks.updates(
            (t.id, task_always(t), task_indexed(t), t.state in TASK_DONE)
            for i, t in cs.tasks.items() if i not in cs.new_tasks))
        self._updates(out, self.attempts.updates(
            (a.id, (a.outcome, a.exit_code, a.reason, a.checkpoint, a.environment, as_json(a.raw), a.external_job_id),
             (a.start_time, a.end_time), a.end_time is not None)
            for i, a in cs.attempts.items() if i not in cs.new_attempts))
        self._upsert(out, ProviderRow, ("id",), [provider_row(p) for p in cs.providers.values()])
        self._insert_values(out, EventRow, EVENT_COLUMNS, [event_values(e) for e in cs.events])
        self._continuations(out, cs.continuations)
        self._insert(out, AuditRow, cs.audits)
        self._upsert(out, InventoryRow, ("provider", "signature"), [inventory_row(c) for c in cs.inventory])
        self._rare(out, cs)
        self._sql_step(out, "UPDATE continued_task SET to_provider=?, to_attempt=?, dispatch_time=?, checkpoint=?"
                       " WHERE continuation=? AND task=?",
                       [(c.provider, c.attempt, c.time, c.checkpoint, c.continuation_id, c.task_id)
                        for c in cs.continued])
        return out

    @staticmethod
    def _rare(out: Staged, cs: ChangeSet) -> None:
        """Writes made through peewee (rare: rules, schedules, notifications), over values that
        do not change after this batch (frozen records; schedules as rows)."""
        if cs.conflict_rules:
            out.steps.append(functools.partial(apply_rules, dict(cs.conflict_rules)))
        if cs.overlaps:
            out.steps.append(functools.partial(apply_overlaps, list(cs.overlaps)))
        if cs.schedules:
            out.steps.append(functools.partial(apply_schedules, [schedule_row(s) for s in cs.schedules.values()]))
        if cs.notifications:
            out.steps.append(functools.partial(apply_deliveries, list(cs.notifications)))
        if cs.alert_rules:
            out.steps.append(functools.partial(apply_alert_rules, dict(cs.alert_rules)))

    def _sql_step(self, out: Staged, sql: str, params: list[tuple]) -> None:
        if params:
            out.steps.append((sql.replace("?", self.param), params))

    def _updates(self, out: Staged, updates: list[tuple[str, list[tuple]]]) -> None:
        for sql, params in updates:
            self._sql_step(out, sql, params)

    def _insert(self, out: Staged, model, rows: list[dict]) -> None:
        """Bulk insert with one prepared statement: peewee's per-row SQL building costs
        more than SQLite itself at thousands of rows a second. Rows must name every
        column without a database default: peewee's Python-side defaults do not apply."""
        if rows:
            columns = tuple(rows[0])
            self._insert_values(out, model, columns, _values(columns, rows))

    def _insert_values(self, out: Staged, model, columns: tuple[str, ...], values: list[tuple]) -> None:
        """`_insert` of rows given as tuples in `columns` order (the hot rows: tasks, attempts,
        events; a tuple costs less than a dict and its reordering)."""
        if not values:
            return
        sql = self._sql.get((model, columns))
        if sql is None:
            names = ", ".join(f'"{model._meta.fields[c].column_name}"' for c in columns)
            sql = f'INSERT INTO "{model._meta.table_name}" ({names}) VALUES ({", ".join("?" * len(columns))})'
            sql = self._sql[(model, columns)] = sql.replace("?", self.param)
        out.steps.append((sql, values))

    def _upsert(self, out: Staged, model, keys: tuple[str, ...], rows: list[dict]) -> None:
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
        self._sql_step(out, sql, _values(columns, rows))

    @staticmethod
    def _continuations(out: Staged, recs: list[ContinuationRec]) -> None:
        if recs:
            out.steps.append(functools.partial(_insert_continuations, list(recs)))


def _insert_continuations(recs: list[ContinuationRec]) -> None:
    """Continuation records are frozen: written as they are, through peewee (a few per failure)."""
    for rec in recs:
        ContinuationRow.insert(id=rec.id, provider=rec.provider, time=rec.time, reason=rec.reason).execute()
        rows = [{"continuation": rec.id, "task": t.task_id, "job": t.job_id, "task_name": t.task_name,
                 "from_attempt": t.from_attempt, "position": t.position, "priority": t.priority, "rule": t.rule,
                 "to_provider": "", "to_attempt": 0, "dispatch_time": None, "checkpoint": ""} for t in rec.tasks]
        if rows:
            ContinuedTaskRow.insert_many(rows).execute()


def _values(columns: tuple[str, ...], rows: list[dict]) -> list[tuple]:
    """Each row's values in `columns` order (itemgetter: no generator per row)."""
    if len(columns) == 1:
        return [(row[columns[0]],) for row in rows]
    get = operator.itemgetter(*columns)
    return [get(row) for row in rows]


_RAW_JSON: dict[tuple, str] = {}  # small string dicts seen lately (a Python task's {"state": "returned"}) -> JSON


def as_json(value: dict | list) -> str:
    """A dict or list as JSON; an empty one (most tasks' raw and deps, most events' raw) without
    the encoder's cost, a few microseconds a call at several calls per task; a small dict of
    strings (the raw properties most tasks end with, written with their task, attempt and
    event) from a memo."""
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    if type(value) is not dict or len(value) > 4:
        return json.dumps(value)
    key = tuple(value.items())
    try:
        text = _RAW_JSON.get(key)  # only dicts of strings are kept: one found is one
    except TypeError:  # an unhashable value
        return json.dumps(value)
    if text is None:
        if not all(type(v) is str for v in value.values()):
            return json.dumps(value)
        if len(_RAW_JSON) >= 1024:
            _RAW_JSON.clear()
        text = _RAW_JSON[key] = json.dumps(value)
    return text


# Task and attempt columns an update sets every time, and the indexed ones it sets when changed.
TASK_ALWAYS = ("lost_attempts", "result_json", "error", "stdout_tail", "stderr_tail", "reason", "checkpoint",
               "reruns", "attempt_base", "fence", "suspended", "held_attempts", "given_back",
               "paused")
JOB_INDEXED = ("state", "status", "start_time", "end_time")
TASK_INDEXED = ("state", "status", "attempt", "provider", "exit_code", "environment", "raw")
ATTEMPT_ALWAYS = ("outcome", "exit_code", "reason", "checkpoint", "environment", "raw", "external_job_id")


def job_indexed(j) -> tuple:
    return int(j.state), int(j.status), j.start_time, j.end_time


def task_indexed(t) -> tuple:
    return int(t.state), int(t.status), t.attempt, t.provider, t.exit_code, t.environment, as_json(t.raw)


def task_always(t) -> tuple:
    return (t.lost_attempts, t.result_json, t.error, t.stdout_tail, t.stderr_tail, t.reason, t.checkpoint,
            t.reruns, t.attempt_base, t.fence.dump() if t.fence is not None else "",
            json.dumps(t.suspended) if t.suspended else "", t.held_attempts, t.given_back, t.paused)


def job_row(j, head: bytes) -> dict:
    """`head`: its spec without tasks, encoded already (codec.dump_job_head)."""
    return {"id": j.id, "name": j.name, "priority": j.priority, "spec": head,
            "state": int(j.state), "status": int(j.status), "counts": json.dumps(j.counts), "reason": j.reason,
            "submit_time": j.submit_time, "start_time": j.start_time, "end_time": j.end_time, "owner": j.owner,
            "hold": j.hold, "request_id": j.request.id if j.request else None,
            "request_digest": j.request.digest if j.request else "",
            "request_call": j.request.call if j.request else "", "schedule": j.schedule_id}


# The columns of a new task, attempt and event row, in the order of task_values,
# attempt_values and event_values (every column without a database default).
TASK_COLUMNS = ("id", "job", "idx", "name", "group", "spec", "deps", "max_attempts", "state", "status", "attempt",
                "lost_attempts", "provider", "exit_code", "result_json", "error", "stdout_tail", "stderr_tail",
                "reason", "checkpoint", "environment", "raw", "reruns", "attempt_base", "fence", "suspended",
                "held_attempts", "given_back", "paused")
ATTEMPT_COLUMNS = ("id", "task", "number", "provider", "assign_time", "start_time", "end_time", "outcome",
                   "exit_code", "reason", "checkpoint", "resumed_from", "environment", "raw", "external_job_id")
EVENT_COLUMNS = ("id", "time", "kind", "job", "task", "task_name", "provider", "attempt", "raw_status", "raw",
                 "status", "message", "environment")


def task_values(t, specs: Callable[[object], bytes] = dump_task_spec) -> tuple:
    """`specs`: how its spec is encoded (a batch's TaskSpecs: each spec object once)."""
    return (t.id, t.job_id, t.idx, t.name, t.group, specs(t.spec), as_json(t.deps), t.max_attempts, int(t.state),
            int(t.status), t.attempt, t.lost_attempts, t.provider, t.exit_code, t.result_json, t.error,
            t.stdout_tail, t.stderr_tail, t.reason, t.checkpoint, t.environment, as_json(t.raw), t.reruns,
            t.attempt_base, t.fence.dump() if t.fence is not None else "",
            json.dumps(t.suspended) if t.suspended else "", t.held_attempts, t.given_back, t.paused)


def attempt_values(a) -> tuple:
    return (a.id, a.task_id, a.number, a.provider, a.assign_time, a.start_time, a.end_time, a.outcome, a.exit_code,
            a.reason, a.checkpoint, a.resumed_from, a.environment, as_json(a.raw), a.external_job_id)


def event_values(e) -> tuple:
    return (e.id, e.time, int(e.kind), e.job_id, e.task_id, e.task_name, e.provider_id, e.attempt, e.raw_status,
            as_json(e.raw), int(e.status), e.message, e.environment)


def provider_row(p) -> dict:
    return {"id": p.id, "state": int(p.state), "facts": json.dumps(p.facts), "labels": json.dumps(p.labels),
            "slots": p.slots, "heartbeat": p.heartbeat, "connect_time": p.connect_time,
            "last_seen": p.last_seen, "kill_deadline": p.kill_deadline, "containment": p.containment,
            "backoff_cap": p.backoff_cap, "promoted": int(p.promoted), "drained": int(p.drained),
            "capacity": dump_resources(p.capacity)}


def inventory_row(c) -> dict:
    return {"provider": c.provider, "signature": c.signature_id,
            "signature_json": json.dumps(c.signature, sort_keys=True), "description": c.entry.description,
            "present": int(c.entry.present), "details": json.dumps(c.entry.details), "reason": c.entry.reason,
            "scan_time": c.entry.scan_time, "expire_time": c.entry.expires, "source": c.entry.source}


__all__ = ["Staged", "Stager"]
