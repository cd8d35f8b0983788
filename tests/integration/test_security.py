"""Security with a real server: certificates and the agent port, join tokens, roles and
tenancy, renewal under a running task, limits, and the audit log."""

from __future__ import annotations

import queue
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from jobplane.client import NotFound, PermissionDenied, ResourceExhausted, Unauthenticated
from jobplane.agent.keygen import make_key_and_csr
from jobplane.server.security.pki import Authority
from jobplane.v1 import job_pb2, job_pb2_grpc, provider_pb2, provider_pb2_grpc, security_pb2, security_pb2_grpc
from support import admin_channel, agent_certificate, wait_until
from support import agent_channel as support_agent_channel

SUCCEEDED = 3
SLEEP = {"name": "t", "command": ["sleep", "300"]}


def certificate(cluster, name: str, **options) -> tuple[bytes, bytes]:
    return agent_certificate(cluster.server, name, **options)


def agent_channel(cluster, key: bytes | None, cert: bytes | None) -> grpc.Channel:
    return support_agent_channel(cluster.server, key, cert)


def whoami(channel: grpc.Channel) -> security_pb2.WhoAmIResponse:
    return security_pb2_grpc.SecurityServiceStub(channel).WhoAmI(security_pb2.WhoAmIRequest(), timeout=10)


def refused(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def test_the_agent_port_admits_only_current_certificates_of_its_own_ca(cluster, tmp_path):
    key, cert = certificate(cluster, "a1")
    with agent_channel(cluster, key, cert) as channel:
        assert (whoami(channel).identity, whoami(channel).method) == ("a1", "certificate")
    with agent_channel(cluster, None, None) as channel:
        assert refused(lambda: whoami(channel)) == grpc.StatusCode.UNAVAILABLE  # no certificate
    stranger = Authority.load_or_create(tmp_path / "other-ca")
    with agent_channel(cluster, *certificate(cluster, "a1", authority=stranger)) as channel:
        assert refused(lambda: whoami(channel)) == grpc.StatusCode.UNAVAILABLE  # another CA
    past = datetime.now(timezone.utc) - timedelta(days=2)
    with agent_channel(cluster, *certificate(cluster, "a1", now=past)) as channel:
        assert refused(lambda: whoami(channel)) == grpc.StatusCode.UNAVAILABLE  # expired


def test_a_revoked_provider_is_cut_off_and_its_certificate_refused(cluster):
    agent = cluster.add_agent("a1", slots=1)
    identity = cluster.workdir / "agent-a1.state" / "identity"
    key, cert = (identity / "agent.key").read_bytes(), (identity / "agent.crt").read_bytes()
    cluster.client.revoke_provider("a1", reason="stolen laptop")
    wait_until(lambda: not agent.alive(), 30, "the revoked agent's stream to close and the agent to give up")
    with agent_channel(cluster, key, cert) as channel:
        assert refused(lambda: whoami(channel)) == grpc.StatusCode.UNAUTHENTICATED


def test_identity_comes_from_the_certificate_not_the_message(cluster):
    cluster.add_agent("b1", slots=1)
    job = cluster.client.submit_job({"name": "theirs", "tasks": [SLEEP]})
    wait_until(lambda: [t.state for t in cluster.client.list_tasks(job.id)] == [4], 30, "the task running on b1")
    (task,) = list(cluster.client.list_tasks(job.id))
    with agent_channel(cluster, *certificate(cluster, "a1")) as channel:
        stub = provider_pb2_grpc.ProviderServiceStub(channel)
        hello = provider_pb2.Hello(name="b1", slots=1, heartbeat_interval_seconds=5)
        posing = stub.Connect(iter([provider_pb2.ConnectRequest(hello=hello)]), timeout=10)
        assert refused(lambda: next(posing)) == grpc.StatusCode.PERMISSION_DENIED
        outgoing: queue.Queue = queue.Queue()
        outgoing.put(provider_pb2.ConnectRequest(hello=provider_pb2.Hello(
            name="a1", slots=1, heartbeat_interval_seconds=5)))
        stream = stub.Connect(iter(outgoing.get, None), timeout=30)
        try:
            assert next(stream).WhichOneof("message") == "welcome"
            finished = provider_pb2.AttemptFinished(outcome=provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED)
            report = provider_pb2.TaskReport(task_id=task.id, attempt=1, finished=finished)
            outgoing.put(provider_pb2.ConnectRequest(reports=provider_pb2.TaskReports(seq=1, reports=[report])))
            ack = next(m for m in stream if m.WhichOneof("message") == "ack")
            assert [(r.attempt.task_id, r.code) for r in ack.ack.rejected] == [(task.id, "PERMISSION_DENIED")]
        finally:
            outgoing.put(None)
            stream.cancel()
        job_stub = job_pb2_grpc.JobServiceStub(channel)
        spec = job_pb2.JobSpec(name="x", tasks=[job_pb2.TaskSpec(name="t", command=["true"])])
        assert refused(lambda: job_stub.SubmitJob(job_pb2.SubmitJobRequest(spec=spec), timeout=10)) == \
            grpc.StatusCode.PERMISSION_DENIED
    assert list(cluster.client.list_tasks(job.id))[0].state == 4, "b1's task still runs, untouched"
    with admin_channel(cluster.server) as channel:
        hello = provider_pb2.Hello(name="c1", slots=1, heartbeat_interval_seconds=5)
        opened = provider_pb2_grpc.ProviderServiceStub(channel).Connect(
            iter([provider_pb2.ConnectRequest(hello=hello)]), timeout=10)
        assert refused(lambda: next(opened)) == grpc.StatusCode.PERMISSION_DENIED  # a user token
    cluster.client.cancel_job(job.id)


def enroll(cluster, secret: str, name: str) -> security_pb2.EnrollResponse:
    _, csr = make_key_and_csr(name)
    with grpc.secure_channel(cluster.server.address, grpc.ssl_channel_credentials(cluster.server.ca.read_bytes())) as ch:
        request = security_pb2.EnrollRequest(token=secret, name=name, csr_pem=csr)
        return security_pb2_grpc.SecurityServiceStub(ch).Enroll(request, timeout=10)


def test_join_tokens_are_single_use_expiring_random_and_stored_hashed(cluster):
    created = cluster.client.create_token("agent", name_prefix="gpu-")
    assert created.token.uses_left == 1 and created.secret.count("_") >= 2
    assert enroll(cluster, created.secret, "gpu-1").provider_id == "gpu-1"
    assert refused(lambda: enroll(cluster, created.secret, "gpu-2")) == grpc.StatusCode.UNAUTHENTICATED  # replay
    other = cluster.client.create_token("agent", uses=5, name_prefix="gpu-")
    assert refused(lambda: enroll(cluster, other.secret, "cpu-1")) == grpc.StatusCode.PERMISSION_DENIED
    short = cluster.client.create_token("agent", ttl=1, uses=100)
    wait_until(lambda: enroll_code(cluster, short.secret, "late") == grpc.StatusCode.UNAUTHENTICATED,
               10, "the one-second token to expire")
    secrets = [created.secret, other.secret]
    random_parts = [s.split("_", 2)[2] for s in secrets]  # jpa_<id>_<secret>
    assert len(set(random_parts)) == 2 and all(len(part) * 6 >= 128 for part in random_parts)  # base64: 6 bits each
    if cluster.db_url.startswith("sqlite"):
        stored = b"".join(path.read_bytes() for path in _database_files(cluster))
        assert not any(s.encode() in stored for s in secrets), "only hashes are stored"


def enroll_code(cluster, secret: str, name: str) -> grpc.StatusCode:
    try:
        enroll(cluster, secret, name)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _database_files(cluster) -> list:
    from pathlib import Path

    db = Path(cluster.db_url.removeprefix("sqlite:///"))
    return [p for p in (db, db.with_name(db.name + "-wal")) if p.exists()]


def test_submitters_see_and_touch_only_their_own_jobs(cluster):
    from jobplane.client import Client

    users = {}
    for name in ("alice", "bob"):
        secret = cluster.client.create_token("submitter", user=name).secret
        users[name] = Client.connect(cluster.server.address, token=secret, ca=cluster.server.ca)
    viewer = Client.connect(cluster.server.address, ca=cluster.server.ca,
                            token=cluster.client.create_token("viewer", user="vic").secret)
    try:
        alices = users["alice"].submit_job({"name": "alices", "wait_for_providers": True, "tasks": [SLEEP]})
        bobs = users["bob"].submit_job({"name": "bobs", "wait_for_providers": True, "tasks": [SLEEP]})
        assert alices.owner == "alice"
        assert [j.id for j in users["alice"].list_jobs()] == [alices.id]
        assert users["alice"].summarize_jobs().total == 1 and viewer.summarize_jobs().total == 2
        for call in (lambda: users["alice"].get_job(bobs.id), lambda: users["alice"].cancel_job(bobs.id),
                     lambda: list(users["alice"].list_tasks(bobs.id)),
                     lambda: next(iter(users["alice"].watch(bobs.id, timeout=5)))):
            with pytest.raises(NotFound):
                call()
        with pytest.raises(PermissionDenied, match="viewer or above"):
            next(iter(users["alice"].watch(timeout=5)))
        assert {j.id for j in viewer.list_jobs()} == {alices.id, bobs.id}
        with pytest.raises(PermissionDenied, match="needs the role"):
            viewer.submit_job({"name": "nope", "wait_for_providers": True, "tasks": [SLEEP]})
        users["bob"].cancel_job(bobs.id)
        users["alice"].cancel_job(alices.id)
    finally:
        for client in (*users.values(), viewer):
            client.close()
    with pytest.raises(Unauthenticated):
        with Client.connect(cluster.server.address, ca=cluster.server.ca, token="jpu_AAAAAAAA_" + "x" * 32) as nobody:
            list(nobody.list_jobs())
    denied = list(cluster.client.list_audit_records(filter="code=PERMISSION_DENIED"))
    assert any(r.identity == "vic" and r.method.endswith("SubmitJob") for r in denied)

    def alices_calls():  # a call's audit record is written with the batch after its answer
        return {r.method.rsplit("/", 1)[1] for r in cluster.client.list_audit_records(filter="identity=alice code=OK")}

    assert wait_until(lambda: alices_calls() == {"SubmitJob", "CancelJob"} or None, 10, "alice's calls audited")


@pytest.mark.server_args("--agent-cert-ttl", "4")
def test_the_agent_renews_its_certificate_under_a_running_task(cluster):
    cluster.add_agent("a1", slots=1)
    job = cluster.client.submit_job({"name": "long", "tasks": [{"name": "t", "command": ["sleep", "7"]}]})
    assert cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    (task,) = list(cluster.client.list_tasks(job.id))
    assert len(task.attempts) == 1, "the task ran once, undisturbed"
    renewals = list(cluster.client.list_audit_records(filter="identity=a1 code=OK"))
    assert sum(r.method.endswith("RenewCertificate") for r in renewals) >= 1


@pytest.mark.server_args("--max-message-bytes", "65536", "--submit-rate", "1")
def test_oversized_messages_and_submit_bursts_are_refused_and_the_server_stays_healthy(cluster):
    huge = {"name": "huge", "wait_for_providers": True, "tasks": [{"name": "t", "command": ["true"], "env": {"X": "y" * 100_000}}]}
    with pytest.raises(ResourceExhausted):
        cluster.client.submit_job(huge)
    small = {"name": "small", "wait_for_providers": True, "tasks": [{"name": "t", "command": ["true"]}]}
    with pytest.raises(ResourceExhausted, match="submits per second"):
        for _ in range(5):
            cluster.client.submit_job(small)
    assert cluster.client.whoami().identity == "admin"


def test_a_rotated_ca_keeps_enrolled_agents_and_signs_new_ones(tmp_path, sqlite_url):
    from conftest import Cluster
    from support import free_port

    cluster = Cluster(tmp_path, sqlite_url)
    port = free_port()
    cluster.start_server(port=port, grace=10.0)
    try:
        cluster.add_agent("a1", slots=1)
        old = cluster.client.get_authority().fingerprint
        cluster.server.stop()
        cluster.start_server(port=port, grace=10.0, extra=["--rotate-ca"])
        assert cluster.client.get_authority().fingerprint != old
        cluster.wait_active("a1")  # its certificate is from the old CA: still trusted
        cluster.add_agent("a2", slots=1)  # enrolled by the new CA
        jobs = [cluster.client.submit_job({"name": f"j{i}", "tasks": [{"name": "t", "command": ["true"]}]})
                for i in range(2)]
        assert all(cluster.client.wait_job(j.id, timeout=30).state == SUCCEEDED for j in jobs)
    finally:
        cluster.close()


def test_an_existing_ca_can_be_used_instead_of_the_built_in_one(tmp_path, sqlite_url):
    from conftest import Cluster

    ours = Authority.load_or_create(tmp_path / "corporate-ca")
    cluster = Cluster(tmp_path, sqlite_url)
    cluster.start_server(extra=["--ca-cert", str(tmp_path / "corporate-ca" / "ca.crt"),
                                "--ca-key", str(tmp_path / "corporate-ca" / "ca.key")])
    try:
        assert cluster.client.get_authority().fingerprint == ours.fingerprint()
        cluster.add_agent("a1", slots=1)
    finally:
        cluster.close()


@pytest.mark.server_args("--max-streams", "1")
def test_streams_past_the_per_identity_limit_are_refused_not_retried(cluster):
    first = cluster.client.watch(timeout=30)
    try:
        cluster.client.submit_job({"name": "j", "wait_for_providers": True, "tasks": [SLEEP]})
        next(first)  # the first stream is open and delivering
        with pytest.raises(ResourceExhausted, match="streams open already"):
            next(iter(cluster.client.watch(timeout=10)))
    finally:
        first.close()
    assert cluster.client.whoami().identity == "admin"


def _certificates_of(cluster, identity: str) -> int:
    """How many certificates the server's database holds for `identity` (issued, revoked or not)."""
    from jobplane.server.store.db import open_database
    from jobplane.server.store.models import CertificateRow
    from jobplane.server.store.repo import Store

    store = Store(open_database(cluster.db_url))
    try:
        return CertificateRow.select().where(CertificateRow.identity == identity).count()
    finally:
        store.close()


def test_a_revoked_name_cannot_enroll_again_and_nothing_is_issued(cluster):
    """Enrolling under a revoked name issued a certificate (only the hello was refused): now the
    enrollment itself is refused, naming the name and the way out, before a token use is spent."""
    cluster.add_agent("a1", slots=1)
    cluster.client.revoke_provider("a1", reason="stolen laptop")
    token = cluster.client.create_token("agent", uses=5)
    issued = _certificates_of(cluster, "a1")
    with pytest.raises(grpc.RpcError) as caught:
        enroll(cluster, token.secret, "a1")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'a1' was revoked" in caught.value.details() and "another --name" in caught.value.details()

    again = cluster.add_agent("a1-again", wait=False, extra=["--name", "a1"])  # a fresh state dir, name a1
    wait_until(lambda: not again.alive(), 30, "the agent under the revoked name to give up")
    assert "was revoked and may not enroll again" in again.output(), again.output()
    assert not list((cluster.workdir / "agent-a1-again.state").rglob("*.crt")), "no certificate was written"
    assert _certificates_of(cluster, "a1") == issued
    assert [t.uses_left for t in cluster.client.list_tokens() if t.id == token.token.id] == [5]
    assert [p.id for p in cluster.client.list_providers()] == ["a1"]


def test_enrolling_without_a_good_token_learns_nothing_of_the_name(cluster):
    """Whether a name was revoked, or is connected, is told only to a caller with a join token."""
    cluster.add_agent("a1", slots=1)
    cluster.add_agent("a2", slots=1)
    cluster.client.revoke_provider("a1", reason="stolen laptop")
    for name in ("a1", "a2"):
        with pytest.raises(grpc.RpcError) as caught:
            enroll(cluster, "not-a-token", name)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value.details()
        assert name not in caught.value.details()
    token = cluster.client.create_token("agent", uses=5)
    with pytest.raises(grpc.RpcError) as caught:
        enroll(cluster, token.secret, "a2")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS and "'a2' is connected" in caught.value.details()
    assert [t.uses_left for t in cluster.client.list_tokens() if t.id == token.token.id] == [5]
