"""On PostgreSQL, shared by replicas, a writer of the release before goes on inserting rows after
a replica of this release added its new columns: each NOT NULL column with a default has that
default in the database, not only in the models (store/column_defaults.py)."""

import threading
import time

import pytest
from peewee import AutoField, BlobField, DoubleField, IntegerField

from jobplane.server.store.column_defaults import wanted
from jobplane.server.store.db import open_database
from jobplane.server.store.models import ALL_MODELS, JobRow
from jobplane.server.store.repo import Store


def fresh_store(url: str) -> Store:
    store = Store(open_database(url))
    store.create_schema()
    return store


def insert_naming(store: Store, table: str, values: dict) -> None:
    """INSERT a row naming only these columns, as a release that knows no others would."""
    names = ", ".join(f'"{c}"' for c in values)
    marks = ", ".join(["%s"] * len(values))
    store.db.execute_sql(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', list(values.values()))


def test_a_leader_of_the_release_before_inserts_jobs_after_a_new_replica_added_columns(pg_url):
    store = fresh_store(pg_url)
    for column in ("request_call", "schedule"):  # as a database of a release before them
        store.db.execute_sql(f'ALTER TABLE job DROP COLUMN "{column}"')
    store.close()
    store = fresh_store(pg_url)  # this release's replica starts and migrates

    known = {"id": 7, "name": "j", "priority": 0, "spec": b"{}", "state": 1, "status": 1, "counts": "{}",
             "reason": "", "submit_time": 1.0, "owner": "alice", "hold": "", "request_id": None,
             "request_digest": ""}
    insert_naming(store, "job", known)

    row = JobRow.get_by_id(7)
    assert (row.owner, row.request_call, row.schedule) == ("alice", "", 0)
    store.close()


def test_a_column_is_added_to_a_table_without_writing_its_rows_again(pg_url):
    """On a big history (a million tasks) a column filled row by row held the table locked
    while every row was written again: it is added with its default in one statement."""
    store = fresh_store(pg_url)
    insert_naming(store, "job", {"id": 7, "name": "j", "spec": b"{}", "state": 1, "status": 1, "submit_time": 1.0})
    store.db.execute_sql('ALTER TABLE job DROP COLUMN "request_call"')
    (where,) = store.db.execute_sql("SELECT ctid FROM job WHERE id = 7").fetchone()
    store.close()

    store = fresh_store(pg_url)

    assert store.db.execute_sql("SELECT ctid, request_call FROM job WHERE id = 7").fetchone() == (where, "")
    store.close()


def test_every_table_takes_a_row_that_names_only_its_columns_without_a_default(pg_url):
    store = fresh_store(pg_url)
    for model in ALL_MODELS:
        required = {f.column_name: sample(f) for f in model._meta.sorted_fields
                    if not f.null and f.default is None and not isinstance(f, AutoField)}
        insert_naming(store, model._meta.table_name, required)
        assert model.select().count() == 1, model._meta.table_name
    store.close()


def sample(field) -> object:
    if isinstance(field, (IntegerField, AutoField)):
        return 1
    if isinstance(field, DoubleField):
        return 1.0
    if isinstance(field, BlobField):
        return b"x"
    return "x"


def drop_defaults(store: Store) -> None:
    """As a database of the releases before the defaults: in the models only."""
    for model in ALL_MODELS:
        for f in model._meta.sorted_fields:
            if wanted(f):
                store.db.execute_sql(f'ALTER TABLE "{model._meta.table_name}" ALTER COLUMN "{f.column_name}" DROP DEFAULT')


def drop_columns(store: Store) -> None:
    """As a database of a release before a column of jobplane_leader and one of notification."""
    store.db.execute_sql('ALTER TABLE jobplane_leader DROP COLUMN agent_address')
    store.db.execute_sql('ALTER TABLE notification DROP COLUMN error')


def drop_indexes(store: Store) -> None:
    """As a database of a release before an index of job and one of task."""
    store.db.execute_sql('DROP INDEX job_name')
    store.db.execute_sql('DROP INDEX task_name')


# (what the database lacks, the table the leader's batch wrote, what it writes next)
LEADER_FENCES = ("notification", "UPDATE jobplane_leader SET renewed = renewed WHERE id = 1")
LEADER_WRITES_JOB = ("task", "UPDATE job SET priority = priority WHERE id = 1")


@pytest.mark.parametrize("before, first, then", [(drop_defaults, *LEADER_FENCES), (drop_columns, *LEADER_FENCES),
                                                 (drop_indexes, *LEADER_WRITES_JOB)])
def test_a_replica_changing_tables_on_its_first_start_does_not_deadlock_with_the_leader(pg_url, before, first, then):
    """The first start of this release on a database of one before gives defaults to the
    columns of most tables, or adds columns or indexes to several. The leader writes meanwhile,
    its tables in its own order: a batch writes a notification, then fences on jobplane_leader
    last; or writes tasks, then their job. A replica that held one table locked (ALTER TABLE:
    ACCESS EXCLUSIVE; CREATE INDEX: SHARE; to its commit) while it waited for the other
    deadlocked with it: PostgreSQL aborted the replica's start or the leader's batch (and a
    leader whose batch fails stops)."""
    import psycopg2  # the PostgreSQL tests' driver (conftest imports it as late)

    store = fresh_store(pg_url)
    before(store)
    store.close()

    leader, watch = psycopg2.connect(pg_url), psycopg2.connect(pg_url)
    watch.autocommit = True
    errors = []

    def start_replica():
        try:
            fresh_store(pg_url).close()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    try:
        with leader.cursor() as cur:
            cur.execute("SET lock_timeout = '20s'")
            cur.execute(f"LOCK TABLE {first} IN ROW EXCLUSIVE MODE")  # what the batch wrote first
        replica = threading.Thread(target=start_replica)
        replica.start()
        deadline = time.monotonic() + 20
        with watch.cursor() as cur:  # until the replica waits for the leader's batch
            while True:
                cur.execute(f"SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = '{first}'::regclass")
                if cur.fetchone()[0] or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        try:
            with leader.cursor() as cur:
                cur.execute(then)  # what it writes next
            leader.commit()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
            leader.rollback()
        replica.join(30)
        assert not replica.is_alive()
    finally:
        leader.close()
        watch.close()
    assert errors == []

    store = fresh_store(pg_url)
    insert_naming(store, "jobplane_leader", {"id": 1})
    insert_naming(store, "notification", {"id": "1.0", "job": 1, "notify": "{}", "status": "SUCCEEDED",
                                          "body": "{}", "time": 1.0})
    store.close()


def test_columns_are_added_with_the_migrator_of_the_oldest_peewee_asked_for(pg_url, monkeypatch):
    """pyproject asks for peewee>=3.17, whose migrator's add_column has no `allow_not_null`
    (a later peewee added it): a server on such a peewee failed to start on any database of a release
    before its new columns (TypeError)."""
    from playhouse.migrate import SchemaMigrator

    store = fresh_store(pg_url)
    insert_naming(store, "job", {"id": 7, "name": "j", "spec": b"{}", "state": 1, "status": 1, "submit_time": 1.0})
    store.db.execute_sql('ALTER TABLE job DROP COLUMN "request_call"')
    store.db.execute_sql('ALTER TABLE job DROP COLUMN "owner"')  # (it has an index)
    store.db.execute_sql('ALTER TABLE job DROP COLUMN "end_time"')  # nullable: peewee's migrator adds it
    store.close()
    add_column = SchemaMigrator.add_column

    def as_in_317(self, table, column_name, field, **kwargs):  # peewee 3.17's: no allow_not_null
        if "allow_not_null" in kwargs:
            raise TypeError("add_column() got an unexpected keyword argument 'allow_not_null'")
        return add_column(self, table, column_name, field, **kwargs)

    monkeypatch.setattr(SchemaMigrator, "add_column", as_in_317)
    store = fresh_store(pg_url)

    assert store.db.execute_sql("SELECT request_call, owner, end_time FROM job WHERE id = 7").fetchone() == ("", "", None)
    assert {"job_owner", "job_end_time"} <= {index.name for index in store.db.get_indexes("job")}
    store.close()
