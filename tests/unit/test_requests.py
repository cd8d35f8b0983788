"""Idempotent submit in the engine: a request id makes one job per owner for the TTL; the same
id with another spec is refused; expired ids make new jobs."""

import pytest

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import Hello, JobSpec, TaskSpec
from jobplane.server.domain.requests import PriorJob, RequestKey, Requests
from jobplane.server.errors import AlreadyExists, FailedPrecondition

ID = "3c1d0a4e-8f7b-4d2a-9e61-0b5f2a7c9d13"
SPEC = JobSpec("j", 0, {}, (TaskSpec("t", command=("true",)),), wait_for_providers=True)


def engine(now=1000.0):
    e = Engine(EngineConfig())
    e.begin(now)
    return e


def submit(e, key, owner="alice", spec=SPEC):
    return e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1), owner, key)


def test_a_repeated_request_answers_the_job_it_made_and_changes_nothing():
    e = engine()
    job = submit(e, RequestKey(ID, "d1"))
    e.take_changes()
    e.begin(1001.0)

    again = submit(e, RequestKey(ID, "d1"))

    assert again == PriorJob(job.id, "d1", 1000.0)
    assert list(e.jobs) == [job.id] and not e.take_changes().persisted()


def test_the_same_id_with_another_spec_is_already_exists():
    e = engine()
    job = submit(e, RequestKey(ID, "d1"))
    e.take_changes()

    with pytest.raises(AlreadyExists, match=f"request_id: {ID} was already used for job {job.id} with another spec"):
        submit(e, RequestKey(ID, "d2"))

    assert list(e.jobs) == [job.id] and not e.take_changes().persisted()


def test_ids_are_per_owner_and_submits_without_one_always_make_a_job():
    e = engine()
    mine, bobs = submit(e, RequestKey(ID, "d1")), submit(e, RequestKey(ID, "d1"), owner="bob")
    plain = [submit(e, None), submit(e, None)]
    assert len({mine.id, bobs.id, *(j.id for j in plain)}) == 4
    assert (mine.request, plain[0].request) == (RequestKey(ID, "d1"), None)


def test_an_id_is_remembered_for_the_ttl_then_makes_a_new_job():
    e = engine()
    e.requests = Requests(ttl=60.0)
    job = submit(e, RequestKey(ID, "d1"))
    e.begin(1059.0)
    assert submit(e, RequestKey(ID, "d1")).id == job.id
    e.begin(1060.5)

    later = submit(e, RequestKey(ID, "d2"))  # past the TTL even another spec is a new request

    assert later.id != job.id and len(e.requests) == 1


def test_a_refused_submit_is_not_remembered():
    e = engine()
    spec = JobSpec("j", 0, {}, (TaskSpec("t", command=("true",)),))  # needs a provider now
    with pytest.raises(FailedPrecondition):
        submit(e, RequestKey(ID, "d1"), spec=spec)
    e.connect(Hello("a", {}, {}, 1, 1.0, ()), conn_id=1)

    job = submit(e, RequestKey(ID, "d1"), spec=spec)

    assert job.id in e.jobs


def test_load_keeps_the_ids_younger_than_the_ttl():
    requests = Requests()
    requests.load([("alice", "old", "d", 1, 100.0, ""), ("alice", ID, "d", 2, 500.0, ""), ("", ID, "e", 3, 900.0, "")],
                  ttl=600.0, now=1000.0)
    assert len(requests) == 2 and requests.ttl == 600.0
    assert requests.prior("alice", RequestKey("old", "d"), 1000.0) is None
    assert requests.prior("alice", RequestKey(ID, "d"), 1000.0) == PriorJob(2, "d", 500.0)
    assert requests.prior("", RequestKey(ID, "e"), 1000.0) == PriorJob(3, "e", 900.0)
    assert requests.prior("alice", RequestKey(ID, "d"), 1100.0) is None  # expired as time passed
    assert len(requests) == 1


def test_a_prior_job_was_made_by_a_key_only_with_the_same_call_id():
    requests = Requests()
    requests.remember("alice", RequestKey(ID, "d", "call-1"), 7, 100.0)
    prior = requests.prior("alice", RequestKey(ID, "d", "call-2"), 100.0)
    assert prior == PriorJob(7, "d", 100.0, "call-1")
    assert prior.made_by(RequestKey(ID, "d", "call-1"))
    assert not prior.made_by(RequestKey(ID, "d", "call-2")) and not prior.made_by(RequestKey(ID, "d"))
    requests.remember("bob", RequestKey(ID, "d"), 8, 100.0)  # no call id: never its own retry
    assert not requests.prior("bob", RequestKey(ID, "d"), 100.0).made_by(RequestKey(ID, "d"))
