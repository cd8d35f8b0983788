"""Replicas on one PostgreSQL (issue 16): the lease, fencing, and what a follower does for
its callers. The faults (kill -9, SIGSTOP, partitions, PostgreSQL restarts) under load are
tests/system/test_replicas.py's."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from jobplane.v1 import event_pb2, event_pb2_grpc, security_pb2, security_pb2_grpc, server_pb2, server_pb2_grpc, status_pb2
from jobplane.server.domain.changes import ChangeSet
from jobplane.server.domain.model import Event, EventKind
from jobplane.server.errors import Deposed
from jobplane.server.store.db import open_database
from jobplane.server.store.lease import LeaseStore, Me
from jobplane.server.store.repo import Store

from support import AgentProc, ServerProc, admin_channel, wait_until

LEADER, FOLLOWER, GONE = server_pb2.SERVER_ROLE_LEADER, server_pb2.SERVER_ROLE_FOLLOWER, server_pb2.SERVER_ROLE_GONE
JOB = {"name": "replicated", "tasks": [{"name": f"t{i}", "command": ["true"]} for i in range(6)]}


def me(name: str) -> Me:
    return Me(name, f"{name}:7070", f"{name}:7071", "test")


@pytest.fixture
def store(pg_url):
    s = Store(open_database(pg_url))
    s.create_schema()
    leases = LeaseStore(s.db)
    leases.setup()
    yield s, leases
    s.close()


def test_the_lease_goes_to_one_replica_and_to_another_only_once_it_runs_out(store):
    _, leases = store
    first = leases.take(me("a"), 0.5)
    assert first is not None and first.epoch == 1
    assert leases.take(me("b"), 0.5) is None  # held
    assert leases.renew(first, 0.5) is not None

    second = wait_until(lambda: leases.take(me("b"), 5), 10, "the lease to run out")

    assert (second.epoch, second.previous) == (2, "a")  # a takeover: b's agents get more grace
    assert leases.renew(first, 0.5) is None  # a's renewal finds the lease gone
    again = leases.take(me("b"), 5)  # its own lease: a restarted b takes it at once
    assert (again.epoch, again.previous) == (3, "b")


def test_a_deposed_leaders_commit_writes_nothing(store):
    s, leases = store
    old = leases.take(me("a"), 0.3)
    s.apply(_one_event(1), old)
    wait_until(lambda: leases.take(me("b"), 5), 10, "the lease to run out")

    with pytest.raises(Deposed):
        s.apply(_one_event(2), old)

    assert [e.id for e in s.reads.events_after(0, None, 10)] == [1]


@pytest.mark.parametrize("secure", [False, True], ids=["insecure", "tls"])
def test_a_follower_forwards_writes_and_serves_watches_and_a_clean_stop_hands_over_at_once(
        tmp_path: Path, pg_url, secure: bool):
    a = _replica(tmp_path / "a", pg_url, secure)
    b = _replica(tmp_path / "b", pg_url, secure, token=a.token)
    try:
        listing = _servers(b)
        assert [(s.address, s.role) for s in listing.servers] == [(a.address, LEADER), (b.address, FOLLOWER)]
        assert listing.servers[0].epoch == 1 and listing.answered_by == listing.servers[1].id
        agent = AgentProc(tmp_path, a, "w1", slots=3)
        try:
            with b.client() as client:  # the follower: what it cannot answer goes to the leader
                wait_until(lambda: list(client.list_providers(filter="state=ACTIVE")), 20, "the agent to join")
                job = client.submit_job(JOB)
                ids = _watch_ids(b, until=lambda events: _job_ended(events, job.id))
                assert client.get_job(job.id).counts.success == 6
                me = client.whoami().identity
                (audit,) = client.list_audit_records(filter="method=/jobplane.v1.JobService/SubmitJob")
            assert ids == list(range(1, ids[-1] + 1))  # every event, in order, none twice
            assert (audit.identity, audit.code) == (me, "OK")  # the caller, not the replica that passed it on

            a.stop()  # a clean stop lets the lease go: b leads at once, not a lease later
            wait_until(lambda: _servers(b).servers[0].address == b.address
                       and _servers(b).servers[0].role == LEADER, 10, "b to lead")
            assert _servers(b).servers[0].epoch == 2
        finally:
            agent.stop()
    finally:
        for server in (a, b):
            server.stop()


def test_an_agent_enrolled_through_a_follower_is_told_the_followers_agent_port(tmp_path: Path, pg_url):
    from jobplane.agent.keygen import make_key_and_csr

    a = _replica(tmp_path / "a", pg_url, secure=True)
    b = _replica(tmp_path / "b", pg_url, secure=True, token=a.token)
    try:
        with b.client() as admin:
            secret = admin.create_token("agent", uses=1, ttl=600).secret
        _, csr = make_key_and_csr("w9")
        with grpc.secure_channel(b.address, grpc.ssl_channel_credentials(b.ca.read_bytes())) as channel:
            answer = security_pb2_grpc.SecurityServiceStub(channel).Enroll(
                security_pb2.EnrollRequest(token=secret, name="w9", csr_pem=csr), timeout=20)
        assert answer.certificate_pem  # issued by the leader, from the one CA
        assert answer.agent_port == int(b.agent_address.rsplit(":", 1)[1]) != int(a.agent_address.rsplit(":", 1)[1])
    finally:
        for server in (b, a):
            server.stop()


def test_a_second_server_on_a_sqlite_file_lists_itself_as_the_only_leader(tmp_path: Path, sqlite_url):
    server = ServerProc(tmp_path, sqlite_url, insecure=True)
    try:
        (only,) = _servers(server).servers
        assert (only.address, only.role) == (server.address, LEADER)
    finally:
        server.stop()


def test_a_stalled_watcher_on_a_follower_is_cut_off_with_where_to_resume(tmp_path: Path, pg_url):
    """A stream nobody reads (HTTP/2's initial window, no BDP probing): the follower's queue for
    it fills within a few of the tailer's batches and the watcher is told where to resume."""
    a = _replica(tmp_path / "a", pg_url)
    b = _replica(tmp_path / "b", pg_url, token=a.token, extra=("--watcher-queue", "3"))
    agent = AgentProc(tmp_path, a, "w1", slots=4)
    try:
        with grpc.insecure_channel(b.address, options=[("grpc.http2.bdp_probe", 0)]) as channel, a.client() as client:
            stalled = event_pb2_grpc.EventServiceStub(channel).WatchEvents(event_pb2.WatchEventsRequest(), timeout=120)
            wait_until(lambda: list(client.list_providers(filter="state=ACTIVE")), 20, "the agent to join")
            job = client.submit_job({"name": "many", "tasks": [
                {"name": f"t{i:04d}", "python": "jobplane.examples.funcs:noop"} for i in range(1000)]})
            client.wait_job(job.id, timeout=120)
            with pytest.raises(grpc.RpcError) as cut:
                for _ in stalled:
                    pass
        assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, cut.value.details()
        assert "resume with after_event_id=" in cut.value.details()
    finally:
        agent.stop()
        for server in (a, b):
            server.stop()


def _replica(workdir: Path, url: str, secure: bool = False, token: str = "", extra: tuple[str, ...] = ()) -> ServerProc:
    workdir.mkdir()
    if token:  # the admin token is the database's, made by the first replica
        (workdir / "data").mkdir()
        (workdir / "data" / "admin.token").write_text(token)
    return ServerProc(workdir, url, insecure=not secure, extra=["--lease", "2", *extra])


def _channel(server: ServerProc) -> grpc.Channel:
    return grpc.insecure_channel(server.address) if server.insecure else admin_channel(server)


def _servers(server: ServerProc) -> server_pb2.ListServersResponse:
    with _channel(server) as channel:
        return server_pb2_grpc.ServerServiceStub(channel).ListServers(server_pb2.ListServersRequest(), timeout=10)


def _watch_ids(server: ServerProc, until) -> list[int]:
    seen = []
    with _channel(server) as channel:
        stream = event_pb2_grpc.EventServiceStub(channel).WatchEvents(event_pb2.WatchEventsRequest(), timeout=60)
        for response in stream:
            seen += response.events
            if until(seen):
                stream.cancel()
                break
    return [e.id for e in seen]


def _job_ended(events, job_id) -> bool:
    return any(e.kind == event_pb2.EVENT_KIND_JOB and e.job_id == str(job_id)
               and e.status == status_pb2.NORMALIZED_STATUS_SUCCESS for e in events)


def _one_event(event_id: int) -> ChangeSet:
    return ChangeSet(events=[Event(event_id, time.time(), EventKind.POLICY, message="test")])
