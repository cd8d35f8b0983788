"""Idempotent submit (AIP-155): a submit sent again with its request id makes one job, whatever
became of the first try (its deadline passed, its answer was lost, the server was killed), and
the same id with another spec is refused. The SDK retries a submit with the same id."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc
import pytest

from jobplane.client import (
    AlreadyExists, AsyncClient, Client, DeadlineExceeded, InvalidArgument, Retry, Unavailable)
from jobplane.client.jobfile import job_spec_from_mapping
from jobplane.v1 import job_pb2, job_pb2_grpc
from support import TcpProxy, admin_channel, wait_until

SMALL = {"name": "small", "wait_for_providers": True, "tasks": [{"name": "t", "command": ["true"]}]}
BIG = {"name": "big", "wait_for_providers": True,
       "tasks": [{"name": f"t{i}", "command": ["true"]} for i in range(2000)]}
CANCELLED = 5  # JOB_STATE_CANCELLED


def job_ids(cluster) -> list[str]:
    return [j.id for j in cluster.client.list_jobs()]


@contextmanager
def write_lock(db_url: str):
    """Another connection holds the database's write lock: the server's commits wait for it."""
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        import psycopg2

        conn = psycopg2.connect(db_url)
        conn.cursor().execute("LOCK TABLE job IN SHARE ROW EXCLUSIVE MODE")  # reads go on
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


def via(proxy: TcpProxy, server, **options) -> Client:
    return Client.connect(proxy.address, token=server.token, ca=server.ca, **options)


def lose_the_answer(cluster, proxy: TcpProxy, submit, *, timed_out=None):
    """Run `submit` (which mutes its connection with proxy.drop_answers() before it submits).
    Once the server has stored the job, and once `timed_out()` says the client's try has passed
    its deadline (if given), cut the connection: the answer was lost on the way. Returns what
    `submit` returns, or raises what it raises."""
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(submit)
        wait_until(lambda: job_ids(cluster), 60, "the server to store the job")
        if timed_out is not None:
            wait_until(timed_out, 30, "the client's first try to time out")
        proxy.cut()
        return call.result(60)


def submit_losing_the_answer(cluster, submit, **options):
    """`submit(client)` over a connection through a proxy that drops the server's answers, then
    cut once the job is stored (lose_the_answer), with a client made with `options`: what
    `submit` returns, or raises."""
    proxy = TcpProxy(cluster.server.address)
    try:
        with via(proxy, cluster.server, **options) as client:
            client.whoami()  # connected: the submit goes over this connection

            def muted():
                proxy.drop_answers()
                return submit(client)

            return lose_the_answer(cluster, proxy, muted)
    finally:
        proxy.close()


def test_a_submit_retried_after_its_deadline_passed_makes_one_job(cluster):
    request_id = str(uuid.uuid4())
    with cluster.server.client(timeout=2, retry=Retry(attempts=1)) as hasty:
        with write_lock(cluster.db_url), pytest.raises(DeadlineExceeded):
            hasty.submit_job(BIG, request_id=request_id)
    (stored,) = wait_until(lambda: job_ids(cluster), 30, "the job to be committed after the deadline")

    again = cluster.client.submit_job(BIG, request_id=request_id)

    assert again.id == stored and again.counts.total == 2000
    assert job_ids(cluster) == [stored]
    assert len(list(cluster.client.list_tasks())) == 2000


def test_a_submit_retried_after_its_answer_was_lost_makes_one_job(cluster):
    request_id = str(uuid.uuid4())
    with pytest.raises(Unavailable):
        submit_losing_the_answer(cluster, lambda client: client.submit_job(SMALL, request_id=request_id),
                                 retry=Retry(attempts=1))
    (stored,) = job_ids(cluster)

    again = cluster.client.submit_job(SMALL, request_id=request_id)

    assert again.id == stored and job_ids(cluster) == [stored]


@pytest.mark.server_args("--submit-rate", "1000")
def test_200_concurrent_submits_of_one_request_make_one_job(cluster):
    request_id = str(uuid.uuid4())
    server = cluster.server

    async def submit_all():
        async with await AsyncClient.connect(server.address, token=server.token, ca=server.ca, timeout=60) as client:
            return await asyncio.gather(*(client.submit_job(SMALL, request_id=request_id) for _ in range(200)))

    answers = asyncio.run(submit_all())

    (stored,) = job_ids(cluster)
    assert [a.id for a in answers] == [stored] * 200


def test_the_same_request_id_with_another_spec_is_refused_and_stores_nothing(cluster):
    request_id = str(uuid.uuid4())
    job = cluster.client.submit_job(SMALL, request_id=request_id)

    with pytest.raises(AlreadyExists) as err:
        cluster.client.submit_job({**SMALL, "name": "other"}, request_id=request_id)

    assert err.value.message.startswith(f"request_id: {request_id} was already used for job {job.id}")
    assert job_ids(cluster) == [job.id]
    assert len(list(cluster.client.list_tasks())) == 1


def test_a_request_id_is_one_job_per_identity(cluster):
    request_id = str(uuid.uuid4())
    mine = cluster.client.submit_job(SMALL, request_id=request_id)
    bob = cluster.client.create_token("submitter", user="bob").secret
    with Client.connect(cluster.server.address, token=bob, ca=cluster.server.ca) as client:
        bobs = client.submit_job(SMALL, request_id=request_id)
        assert client.submit_job(SMALL, request_id=request_id).id == bobs.id
    assert bobs.id != mine.id and bobs.owner == "bob"
    assert sorted(job_ids(cluster)) == sorted([mine.id, bobs.id])


def test_a_request_id_gets_its_finished_job_back_after_a_kill_9_and_restart(cluster):
    request_id = str(uuid.uuid4())
    job = cluster.client.submit_job(SMALL, request_id=request_id)
    cluster.client.cancel_job(job.id)  # it has finished since
    cluster.server.kill()
    cluster.start_server()

    again = cluster.client.submit_job(SMALL, request_id=request_id)

    assert again.id == job.id and again.state == CANCELLED
    with pytest.raises(AlreadyExists, match="request_id"):
        cluster.client.submit_job({**SMALL, "name": "other"}, request_id=request_id)
    assert job_ids(cluster) == [job.id]


@pytest.mark.server_args("--request-id-ttl", "1")
def test_a_request_id_makes_a_new_job_once_the_ttl_has_passed(cluster):
    request_id = str(uuid.uuid4())
    job = cluster.client.submit_job(SMALL, request_id=request_id)

    def resubmitted():
        again = cluster.client.submit_job(SMALL, request_id=request_id)
        return again if again.id != job.id else None

    later = wait_until(resubmitted, 30, "the request id to expire", interval=0.1)

    assert sorted(job_ids(cluster)) == sorted([job.id, later.id])


def test_a_bad_request_id_is_invalid_argument_naming_it(cluster):
    good = str(uuid.uuid4())
    for bad, words in [("not-a-uuid", "'not-a-uuid' is not a UUID"),
                       (good.replace("-", ""), "is not a UUID"),
                       ("{" + good[:34] + "}", "is not a UUID"),
                       (good + " ", "37 characters long"),
                       ("x" * 100_000, "100000 characters long")]:
        with pytest.raises(InvalidArgument) as err:
            cluster.client.submit_job(SMALL, request_id=bad)
        assert err.value.message.startswith("request_id: ") and words in err.value.message
        assert len(err.value.message) < 300, "the value is not echoed whole"
    assert job_ids(cluster) == []



def test_a_call_id_longer_than_64_characters_is_invalid_argument_naming_it(cluster):
    with admin_channel(cluster.server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        request = job_pb2.SubmitJobRequest(spec=job_spec_from_mapping(SMALL), request_id=str(uuid.uuid4()),
                                           call_id="c" * 65)
        with pytest.raises(grpc.RpcError) as err:
            jobs.SubmitJob(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("call_id: 65 characters long; at most 64")
    assert job_ids(cluster) == []


def test_only_a_call_whose_own_first_try_made_the_job_is_told_it_is_new(cluster):
    request_id = str(uuid.uuid4())
    answer = submit_losing_the_answer(  # retried after the cut
        cluster, lambda client: client.submit_job_once(SMALL, request_id=request_id))
    assert job_ids(cluster) == [answer.job.id]
    assert not answer.already_submitted, "the job is this call's: only its first answer was lost"

    again = cluster.client.submit_job_once(SMALL, request_id=request_id)  # another call, later

    assert again.job.id == answer.job.id and again.already_submitted


# ----- the SDK retries a submit, with the same request id ------------------------------------

CODE = {"cut": "UNAVAILABLE", "deadline": "DEADLINE_EXCEEDED"}  # what the client's first try gets
TIMEOUT = {"cut": 60, "deadline": 3}  # each try's deadline


def timed_out(fault: str, caplog):
    """For the deadline fault: whether the client logged that its try timed out (it retries next)."""
    return (lambda: "DEADLINE_EXCEEDED" in caplog.text) if fault == "deadline" else None


@pytest.mark.parametrize("fault", ["cut", "deadline"])
def test_the_client_retries_a_submit_whose_answer_was_lost(cluster, fault, caplog):
    caplog.set_level(logging.INFO, logger="jobplane.client")
    proxy = TcpProxy(cluster.server.address)
    try:
        with via(proxy, cluster.server, timeout=TIMEOUT[fault]) as client:
            client.whoami()

            def submit():
                proxy.drop_answers()
                return client.submit_job(SMALL)  # a fresh request id, the same on every try

            job = lose_the_answer(cluster, proxy, submit, timed_out=timed_out(fault, caplog))
        assert job_ids(cluster) == [job.id]
        assert f"SubmitJob at {proxy.address} failed ({CODE[fault]}" in caplog.text, "it was tried again"
    finally:
        proxy.close()


@pytest.mark.parametrize("fault", ["cut", "deadline"])
def test_the_async_client_retries_a_submit_whose_answer_was_lost(cluster, fault, caplog):
    caplog.set_level(logging.INFO, logger="jobplane.client")
    server = cluster.server
    proxy = TcpProxy(server.address)

    async def submit_async():
        async with await AsyncClient.connect(proxy.address, token=server.token, ca=server.ca,
                                             timeout=TIMEOUT[fault]) as client:
            await client.whoami()
            proxy.drop_answers()
            return await client.submit_job(SMALL)

    try:
        job = lose_the_answer(cluster, proxy, lambda: asyncio.run(submit_async()),
                              timed_out=timed_out(fault, caplog))
        assert job_ids(cluster) == [job.id]
        assert f"SubmitJob at {proxy.address} failed ({CODE[fault]}" in caplog.text, "it was tried again"
    finally:
        proxy.close()


def test_a_submit_without_a_request_id_is_never_retried(cluster):
    try:
        answer = submit_losing_the_answer(cluster, lambda client: client.submit_job(SMALL, request_id=""))
    except Unavailable:
        answer = None
    # Which side is wrong, if one is: a second job is a client that sent the submit again;
    # one job and an answer is the proxy letting an answer through (tests/unit/test_tcp_proxy.py).
    assert len(job_ids(cluster)) == 1, "the client sent a submit without a request id again"
    assert answer is None, f"job {answer.id}'s answer reached the client through a muted connection"
