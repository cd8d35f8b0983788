"""Indexes the listings need beyond the models' own: the raw properties promoted to expression
indexes (one per backend's JSON functions), and the job tags (labels, environments) a database
made before they existed is given. Everything here is created only when missing, by
schema.create (under its advisory lock on PostgreSQL, each table's in a transaction of its own)."""

from __future__ import annotations

import logging

from peewee import SQL, Cast, Database, NodeList, PostgresqlDatabase, fn

from ..domain.model import JobSpec
from .codec import load_job_spec
from .models import AttemptRow, JobRow, JobTagRow, TaskRow, database

log = logging.getLogger(__name__)

# raw.KEY of tasks that filters are answered for by an index: KEY -> how it compares
# ("number": exit codes; "text": the outside schedulers' queue and state). Another raw key is
# refused in a listing of every task (see queries.py), and checked on the rows of one job.
PROMOTED_RAW = {"exit_code": "number", "queue": "text", "State": "text"}

# PostgreSQL: text to a number, NULL when it is none (a cast would fail the insert instead).
_PG_NUMBER = r"""CREATE OR REPLACE FUNCTION jobplane_number(t text) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN t ~ '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,2})?\s*$'
THEN t::double precision END $$"""


def postgres() -> bool:
    return isinstance(database.obj, PostgresqlDatabase)


def raw_value(key: str):
    """The SQL expression of task raw property `key` (a promoted one), as its index has it."""
    if postgres():
        text = NodeList((Cast(TaskRow.raw, "jsonb"), SQL(f"->> '{key}'")), glue=" ", parens=True)
        return fn.jobplane_number(text) if PROMOTED_RAW[key] == "number" else text
    text = fn.json_extract(TaskRow.raw, SQL(f"'$.{key}'"))
    return Cast(text, "REAL") if PROMOTED_RAW[key] == "number" else text


def _raw_index_sql(db: Database, key: str) -> str:
    if isinstance(db, PostgresqlDatabase):
        text = f"((raw::jsonb) ->> '{key}')"
        expr = f"jobplane_number{text}" if PROMOTED_RAW[key] == "number" else text
    else:
        text = f"json_extract(raw, '$.{key}')"
        expr = f"CAST({text} AS REAL)" if PROMOTED_RAW[key] == "number" else text
    # Partial: most tasks have no such property (a Python task's raw is {"state": ...}), and a
    # filter compares it to a value, which implies it is there (models.partial_index).
    return f'CREATE INDEX IF NOT EXISTS "task_raw_{key.lower()}" ON "task" ({expr}) WHERE {expr} IS NOT NULL'


def partial_indexes() -> dict[str, list[str]]:
    """The partial indexes, by table: the models' (models.partial_index) and the raw ones."""
    out = {"task": [f"task_raw_{key.lower()}" for key in PROMOTED_RAW]}
    for model in (TaskRow, AttemptRow):
        table = model._meta.table_name
        out.setdefault(table, []).extend(i._name for i in model._meta.fields_to_index() if i._where is not None)
    return out


def number_function(db: Database) -> None:
    """PostgreSQL: the function the raw number indexes use, made (or made again)."""
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql(_PG_NUMBER)


def missing(db: Database, model) -> tuple[list[str], list]:
    """What the table of `model` lacks of its indexes: (the indexes a database made before they
    were partial has whole, a row for every task, value or not: dropped and made again partial;
    the indexes to create, peewee's or SQL text: the model's, and the task's raw ones)."""
    table = model._meta.table_name
    found = {index.name: index for index in db.get_indexes(table)}
    whole = [name for name in partial_indexes().get(table, ())
             if name in found and " where " not in (found[name].sql or "").lower()]
    have = set(found) - set(whole)
    creates: list = [index for index in model._meta.fields_to_index() if index._name not in have]
    if model is TaskRow:
        creates += [_raw_index_sql(db, key) for key in PROMOTED_RAW if f"task_raw_{key.lower()}" not in have]
    return whole, creates


def make(db: Database, whole: list[str], creates: list) -> None:
    """Drop the whole indexes and create the others (`missing`'s)."""
    for name in whole:
        log.info("rebuilding index %s over the rows with a value", name)
        db.execute_sql(f'DROP INDEX "{name}"')
    for index in creates:
        if isinstance(index, str):
            log.info("creating index %s", index.split('"')[1])
            db.execute_sql(index)
        else:
            log.info("creating index %s", index._name)
            db.execute(index)  # CREATE INDEX IF NOT EXISTS


def job_tags(job_id: int, spec: JobSpec) -> list[dict]:
    """The job_tag rows of a job: its labels and its tasks' environments."""
    rows = [{"job": job_id, "key": f"label.{k}", "value": v, "number": _number(v)} for k, v in spec.labels.items()]
    environments = sorted({t.environment for t in spec.tasks})
    return rows + [{"job": job_id, "key": "environment", "value": e, "number": None} for e in environments]


def backfill_tags(db: Database, chunk: int = 500) -> None:
    """Tags for the jobs of a database made before job_tag existed (once, at the upgrade)."""
    last, done = 0, 0
    while True:
        rows = list(JobRow.select(JobRow.id, JobRow.spec).where(JobRow.id > last).order_by(JobRow.id).limit(chunk))
        if not rows:
            break
        tags = [tag for row in rows for tag in job_tags(row.id, load_job_spec(row.spec))]
        with db.atomic():
            for i in range(0, len(tags), 500):
                JobTagRow.insert_many(tags[i:i + 500]).execute()
        last, done = rows[-1].id, done + len(rows)
    if done:
        log.info("tagged %d jobs with their labels and environments", done)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None

