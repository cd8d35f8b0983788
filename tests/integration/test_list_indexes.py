"""Listings built for big histories: every filter key the README offers is answered by an index
(the database's own query plan says which), a filter no index answers is refused naming the keys
that are, and a database made before these indexes gains them (and the job tags) on start."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from peewee import PostgresqlDatabase

from jobplane.server.domain.model import JobState, Status, TaskState
from jobplane.server.errors import InvalidArgument
from jobplane.server.store.codec import dump_job_spec, dump_task_spec
from jobplane.server.store.db import open_database
from jobplane.server.store.models import JobRow, JobTagRow, TaskRow
from jobplane.server.store.queries import job_query, task_query
from jobplane.server.store.reads import job_select, task_select
from jobplane.server.store.repo import Store

README = Path(__file__).resolve().parents[2] / "README.md"

# For each key the README offers: a term on it, and the index that must answer it (a name
# part both SQLite's and PostgreSQL's plans show; "PRIMARY KEY" for ids).
JOB_TERMS = {
    "status": ("status=FAILURE", "job_status"), "state": ("state=FAILED", "job_state"),
    "name": ("name=nightly", "job_name"), "owner": ("owner=alice", "job_owner"),
    "environment": ("environment=process", "job_tag_key_value_job"), "provider": ("provider=gpu-1", "task_provider"),
    "priority": ("priority>3", "job_priority"), "id": ("id=5", "PRIMARY KEY"),
    "label.KEY": ("label.team=etl", "job_tag_key_value_job"), "raw.KEY": ("raw.state=FAILED", "job_state"),
    "submitted": ("submitted>=-1h", "job_submit_time"), "started": ("started>=-1h", "job_start_time"),
    "ended": ("ended>=-1h", "job_end_time"),
}
TASK_TERMS = {
    "status": ("status=FAILURE", "task_status"), "state": ("state=FAILED", "task_state"),
    "name": ("name=t1", "task_name"), "group": ("group=build", "task_group"), "job": ("job=3", "task_job_idx"),
    "provider": ("provider=gpu-1", "task_provider"), "environment": ("environment=process", "task_environment"),
    "attempt": ("attempt>1", "task_attempt"), "exit_code": ("exit_code>0", "task_exit_code"),
    "raw.KEY": ("raw.exit_code>0", "task_raw_exit_code"), "owner": ("owner=alice", "job_owner"),
    "label.KEY": ("label.team=etl", "job_tag_key_value_job"), "submitted": ("submitted>=-1h", "job_submit_time"),
    "started": ("started>=-1h", "attempt_start_time"), "ended": ("ended>=-1h", "attempt_end_time"),
    "id": ("id=5", "PRIMARY KEY"),
}
PROMOTED_RAW = {"raw.queue": ("raw.queue=PRINT", "task_raw_queue"), "raw.State": ("raw.State=PENDING", "task_raw_state")}


def readme_keys(of: str) -> list[str]:
    """The keys the README's "Keys of jobs:" (or tasks) line lists."""
    line = re.search(rf"^- Keys of {of}: (.*)$", README.read_text(), re.MULTILINE).group(1)
    line = re.sub(r"\([^)]*\)", "", line).rstrip(". ")
    return [k.strip() for k in re.split(r",| and ", line) if k.strip()]


def plan(db, select) -> str:
    """The database's plan for `select`; on PostgreSQL with sequential scans priced out, so the
    plan shows an index whenever one can answer."""
    sql, params = select.sql()
    if isinstance(db, PostgresqlDatabase):
        with db.atomic():
            db.execute_sql("SET LOCAL enable_seqscan = off")
            return "\n".join(r[0] for r in db.execute_sql("EXPLAIN " + sql, params)).replace("_pkey", " PRIMARY KEY")
    return "\n".join(r[-1] for r in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params))


def full_scans(text: str) -> list[str]:
    """Plan lines that read a whole table (SQLite: `SCAN t1`; PostgreSQL: `Seq Scan`)."""
    return [line for line in text.splitlines() if re.match(r"\s*SCAN \w+\s*$", line) or "Seq Scan" in line]


@pytest.fixture
def store(db_url):
    store = Store(open_database(db_url))
    store.create_schema()
    store.db.connect(reuse_if_open=True)
    yield store
    store.close()


def test_the_readme_keys_are_the_ones_checked_here():
    assert readme_keys("jobs") == list(JOB_TERMS)
    assert sorted(readme_keys("tasks")) == sorted(TASK_TERMS.keys() - {"id"})


@pytest.mark.parametrize("key", list(JOB_TERMS))
def test_every_job_filter_key_is_answered_by_an_index(store, key):
    term, index = JOB_TERMS[key]
    query = job_query(term, "", time.time())
    for page in (job_select(query.sql, None, 0, 51, None), job_select(query.sql, 10**6, 0, 51, None)):
        shown = plan(store.db, page)
        assert index in shown, f"{term}: no {index} in the plan:\n{shown}"
        assert not full_scans(shown), f"{term} reads a whole table:\n{shown}"


@pytest.mark.parametrize("key", [*TASK_TERMS, *PROMOTED_RAW])
def test_every_task_filter_key_is_answered_by_an_index(store, key):
    term, index = {**TASK_TERMS, **PROMOTED_RAW}[key]
    query = task_query(term, "", time.time())
    for page in (task_select(query.sql, None, 0, 51, None, query.by_job),
                 task_select(query.sql, 1000, 0, 51, None, query.by_job)):
        shown = plan(store.db, page)
        assert index in shown, f"{term}: no {index} in the plan:\n{shown}"
        assert not full_scans(shown), f"{term} reads a whole table:\n{shown}"


def test_a_trailing_wildcard_is_answered_by_an_index_on_sqlite(sqlite_url):
    store = Store(open_database(sqlite_url))
    store.create_schema()
    for select in (job_select(job_query("name=nightly*", "", time.time()).sql, None, 0, 51, None),
                   task_select(task_query("provider=gpu-*", "", time.time()).sql, None, 0, 51, None)):
        shown = plan(store.db, select)
        assert ("job_name" in shown or "task_provider" in shown) and not full_scans(shown), shown
    store.close()


def test_a_filter_no_index_answers_is_refused_naming_the_keys_that_are():
    now = time.time()
    with pytest.raises(InvalidArgument) as refused:
        task_query("status=FAILURE raw.color=red", "", now)
    assert refused.value.field == "filter"
    assert "position 15: raw.color=red is not answered by an index" in str(refused.value)
    assert "raw.exit_code" in str(refused.value) and "label.KEY" in str(refused.value)
    with pytest.raises(InvalidArgument, match="a wildcard only at the end"):
        job_query("name=*nightly*", "", now)
    task_query("raw.color=red", "", now, job_id=3)  # one job's tasks: checked on them


def _old_database(url: str) -> None:
    """A database as the jobplane before these indexes made it: no job_tag table, none of the
    listing indexes; one finished job labelled team=etl with a task that exited 3."""
    store = Store(open_database(url))
    store.create_schema()
    db = store.db
    db.execute_sql('DROP TABLE "job_tag"')
    keep = {"job_owner_request_id", "task_job_idx", "attempt_task_number", "job_state", "job_status", "job_owner"}
    for table in ("job", "task", "attempt"):
        for index in db.get_indexes(table):
            if not index.unique and index.name not in keep:
                db.execute_sql(f'DROP INDEX "{index.name}"')
    from jobplane.server.domain.model import JobSpec, TaskSpec

    task = TaskSpec("t0", command=("false",))
    spec = JobSpec("old", 0, {"team": "etl"}, (task,))
    now = time.time()
    JobRow.insert(id=1, name="old", spec=dump_job_spec(spec), state=int(JobState.FAILED),
                  status=int(Status.FAILURE), submit_time=now, start_time=now, end_time=now).execute()
    TaskRow.insert(id=1, job=1, idx=0, name="t0", group="t0", spec=dump_task_spec(task), state=int(TaskState.FAILED),
                   status=int(Status.FAILURE), attempt=1, exit_code=3, environment="process",
                   raw=json.dumps({"state": "exited", "exit_code": "3"})).execute()
    store.close()


def test_a_database_made_before_the_listing_indexes_gains_them_and_its_jobs_tags(db_url):
    _old_database(db_url)
    store = Store(open_database(db_url))
    store.create_schema()
    store.db.connect(reuse_if_open=True)
    try:
        tags = {(t.job, t.key, t.value) for t in JobTagRow.select()}
        assert tags == {(1, "label.team", "etl"), (1, "environment", "process")}
        assert [j.name for j in store.reads.list_jobs("label.team=etl", "", "", 10).items] == ["old"]
        assert [j.name for j in store.reads.list_jobs("label.team=web", "", "", 10).items] == []
        assert [t.exit_code for t in store.reads.list_tasks("raw.exit_code>0", "", "", 10).items] == [3]
        have = {i.name for i in store.db.get_indexes("task")}
        assert {"task_status", "task_raw_exit_code", "task_raw_queue"} <= have
    finally:
        store.close()


def _job(job_id: int, name: str, started: float | None, priority: int = 0) -> None:
    from jobplane.server.domain.model import JobSpec

    JobRow.insert(id=job_id, name=name, priority=priority, spec=dump_job_spec(JobSpec(name, priority, {}, ())),
                  state=int(JobState.RUNNING), status=int(Status.RUNNING), submit_time=1000.0 + job_id,
                  start_time=started).execute()


def _walk(store, order_by: str, size: int, between=None) -> list[str]:
    names, token = [], ""
    while True:
        found = store.reads.list_jobs("", order_by, token, size)
        names += [j.name for j in found.items]
        token = found.next_page_token
        if between is not None:
            between()
            between = None
        if not token:
            return names


def test_sorted_pages_go_on_from_the_last_row_sent(store):
    """Ties and missing values split across pages: every job once, in order (missing last), on
    both backends; and a job added before the position reached does not repeat a row."""
    rows = [(1, "b", 5.0), (2, "a", None), (3, "a", 5.0), (4, "c", 1.0), (5, "a", 5.0), (6, "b", None), (7, "d", 9.0)]
    for job_id, name, started in rows:
        _job(job_id, name, started)
    expected = [f"{n}" for _, n, _ in sorted(rows, key=lambda r: (r[2] is None, r[2] or 0, r[1], -r[0]))]
    for size in (1, 2, 3, 10):
        assert _walk(store, "started,name", size) == expected, size
    down = sorted(rows, key=lambda r: (r[2] is None, -(r[2] or 0), r[1], -r[0]))
    assert _walk(store, "-started,name", 2) == [n for _, n, _ in down]
    seen = _walk(store, "name", 2, between=lambda: _job(8, "a", 1.0))  # sorts before the 2nd page
    assert sorted(seen) == sorted(n for _, n, _ in rows), "no row twice, none skipped"


def test_the_server_refuses_a_listing_no_index_answers_and_takes_it_for_one_job(tmp_path):
    from jobplane.client import InvalidArgument as Refused
    from support import ServerProc

    server = ServerProc(tmp_path, f"sqlite:///{tmp_path / 'jobplane.db'}", insecure=True)
    client = server.client()
    try:
        job = client.submit_job({"name": "j", "wait_for_providers": True, "labels": {"team": "etl"},
                                 "tasks": [{"name": "a", "command": ["true"]}]})
        with pytest.raises(Refused) as refused:
            list(client.list_tasks(filter="status=WAITING raw.color=red"))
        assert "filter: position 15: raw.color=red is not answered by an index" in str(refused.value)
        assert "raw.exit_code" in str(refused.value)
        assert list(client.list_tasks(job.id, filter="raw.color=red")) == []  # one job's tasks: checked on them
        assert [t.name for t in client.list_tasks(filter="label.team=etl status=WAITING")] == ["a"]
        assert [j.spec.name for j in client.list_jobs(filter="label.team=etl environment=process")] == ["j"]
    finally:
        client.close()
        server.stop()


def _partial(db, table: str) -> dict[str, bool]:
    """The table's indexes by name: partial (a WHERE in its definition) or not."""
    return {i.name: " where " in i.sql.lower() for i in db.get_indexes(table)}


def test_indexes_of_values_a_new_row_lacks_hold_only_rows_with_a_value(db_url):
    """A task is inserted with no provider, exit code or raw properties, an attempt with no start
    or end: their indexes are partial, so inserting a row writes no entry there (the listings use
    them as before: the tests above). A database whose indexes were whole gets them partial."""
    store = Store(open_database(db_url))
    store.create_schema()
    db = store.db
    wanted = {"task": {"task_provider", "task_exit_code", "task_raw_exit_code", "task_raw_queue", "task_raw_state"},
              "attempt": {"attempt_start_time", "attempt_end_time"}}
    for table, names in wanted.items():
        assert {name for name, partial in _partial(db, table).items() if partial} == names
    db.execute_sql('DROP INDEX "task_provider"')  # as an older jobplane made it: whole
    db.execute_sql('CREATE INDEX "task_provider" ON "task" ("provider")')
    db.execute_sql('DROP INDEX "attempt_end_time"')
    db.execute_sql('CREATE INDEX "attempt_end_time" ON "attempt" ("end_time")')
    store.close()
    store = Store(open_database(db_url))
    store.create_schema()
    try:
        assert _partial(store.db, "task")["task_provider"] and _partial(store.db, "attempt")["attempt_end_time"]
        assert "task_provider" in plan(store.db, task_select(task_query("provider=gpu-1", "", time.time()).sql,
                                                               None, 0, 51, None))
    finally:
        store.close()
