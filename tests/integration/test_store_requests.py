"""The store's side of idempotent submit, on each backend: request ids are stored with their job,
unique per owner (also on a database made before they existed), and read back for the TTL."""

import peewee
import pytest

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import JobSpec, TaskSpec
from jobplane.server.domain.requests import PriorJob, RequestKey, Requests
from jobplane.server.store.db import open_database
from jobplane.server.store.models import JobRow
from jobplane.server.store.repo import Store

ID = "3c1d0a4e-8f7b-4d2a-9e61-0b5f2a7c9d13"
SPEC = JobSpec("j", 0, {}, (TaskSpec("t", command=("true",)),), wait_for_providers=True)


def fresh_store(db_url: str) -> Store:
    store = Store(open_database(db_url))
    store.create_schema()
    return store


def test_an_older_database_gains_the_request_columns_and_their_unique_index(db_url):
    store = fresh_store(db_url)
    (index,) = [i.name for i in store.db.get_indexes("job") if i.columns == ["owner", "request_id"]]
    store.db.execute_sql(f'DROP INDEX "{index}"')  # as a database made before request ids
    for column in ("request_id", "request_digest", "request_call"):
        store.db.execute_sql(f'ALTER TABLE job DROP COLUMN "{column}"')
    store.close()

    store = fresh_store(db_url)

    assert {"request_id", "request_digest", "request_call"} <= {c.name for c in store.db.get_columns("job")}
    row = {"name": "j", "spec": b"{}", "state": 1, "status": 1, "submit_time": 0.0, "owner": "alice", "request_id": ID}
    JobRow.create(id=1, **row)
    JobRow.create(id=2, **{**row, "owner": "bob"})
    JobRow.create(id=3, **{**row, "request_id": None})
    JobRow.create(id=4, **{**row, "request_id": None})
    with pytest.raises(peewee.IntegrityError):
        JobRow.create(id=5, **row)
    store.close()


def test_request_ids_are_stored_with_their_job_and_read_back_for_the_ttl(db_url):
    store = fresh_store(db_url)
    engine = Engine(EngineConfig())
    drafts = extract_tasks(SPEC, max_tasks=10, default_max_attempts=1)
    for now, owner, request in ((1000.0, "alice", RequestKey(ID, "d1", "call-1")), (1010.0, "alice", None),
                                (1020.0, "bob", RequestKey(ID, "d2"))):
        engine.begin(now)
        engine.submit(SPEC, drafts, owner, request)
        store.apply(engine.take_changes())

    rows = store.reads.recent_requests(1005.0)

    assert rows == [("bob", ID, "d2", 3, 1020.0, "")]
    assert store.reads.recent_requests(0.0) == [("alice", ID, "d1", 1, 1000.0, "call-1"),
                                                ("bob", ID, "d2", 3, 1020.0, "")]
    requests = Requests()
    requests.load(store.reads.recent_requests(0.0), ttl=600.0, now=1100.0)
    prior = requests.prior("alice", RequestKey(ID, "d1", "call-2"), 1100.0)
    assert prior == PriorJob(1, "d1", 1000.0, "call-1")
    # After a restart too, a retry of the call that made the job is told apart from another call.
    assert prior.made_by(RequestKey(ID, "d1", "call-1")) and not prior.made_by(RequestKey(ID, "d1", "call-2"))
    assert not requests.prior("bob", RequestKey(ID, "d2"), 1100.0).made_by(RequestKey(ID, "d2"))
    store.close()


def test_an_id_reused_after_its_ttl_makes_a_new_job_that_takes_it_over(db_url):
    store = fresh_store(db_url)
    engine = Engine(EngineConfig())
    engine.requests = Requests(ttl=60.0)
    drafts = extract_tasks(SPEC, max_tasks=10, default_max_attempts=1)
    engine.begin(1000.0)
    first = engine.submit(SPEC, drafts, "alice", RequestKey(ID, "d1"))
    store.apply(engine.take_changes())
    engine.begin(1100.0)

    second = engine.submit(SPEC, drafts, "alice", RequestKey(ID, "d1"))
    store.apply(engine.take_changes())  # no unique violation: the old job gave the id up

    assert second.id != first.id
    assert (store.reads.get_job(first.id).request_id, store.reads.get_job(second.id).request_id) == (None, ID)
    assert store.reads.recent_requests(0.0) == [("alice", ID, "d1", second.id, 1100.0, "")]
    store.close()
