"""One PKI and one set of tokens across server replicas, and forwarded callers.

Forwarding (any database): a caller forwarded in FORWARDED_IDENTITY is believed only from a peer
presenting a replica certificate of the server's CA, on the mutual-TLS address; a token client or
an agent that sends the metadata is refused UNAUTHENTICATED.

Replicas (real PostgreSQL, two real jobplane-server processes on one database): one CA that the
first replica stores and every other loads, tokens that work (and stop working) on every replica,
and a join token's uses spent in the database, never twice.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest

from conftest import _create_pg_database, _pg_admin_url
from jobplane.client import Client, Unauthenticated
from jobplane.agent.keygen import make_key_and_csr
from jobplane.replicas import FORWARDED_IDENTITY
from jobplane.server.security.authorities import shared_authority
from jobplane.server.security.forwarding import encode_identity, replica_credentials
from jobplane.server.security.pki import Authority
from jobplane.server.security.policy import Caller, Role
from jobplane.server.store.db import open_database
from jobplane.server.store.repo import Store
from jobplane.server.store.security import SecurityStore
from jobplane.v1 import security_pb2, security_pb2_grpc
from support import ServerProc, admin_channel, agent_certificate, agent_channel, server_authority, wait_until

ALICE = Caller("alice", Role.SUBMITTER, ("physics",))


def whoami(channel: grpc.Channel, metadata=()) -> security_pb2.WhoAmIResponse:
    return security_pb2_grpc.SecurityServiceStub(channel).WhoAmI(security_pb2.WhoAmIRequest(), metadata=metadata,
                                                                 timeout=10)


def refusal(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def forwarded(caller: Caller) -> tuple[tuple[str, str]]:
    return ((FORWARDED_IDENTITY, encode_identity(caller)),)


def replica_channel(server: ServerProc, authority: Authority, replica_id: str = "replica-1") -> grpc.Channel:
    """What a follower opens to the leader: its agent address, with a replica certificate."""
    return grpc.secure_channel(server.agent_address, replica_credentials(authority, replica_id))


# ----- forwarded callers ---------------------------------------------------------------


def test_a_replica_certificate_forwards_a_caller_who_keeps_their_own_role(sqlite_cluster):
    server = sqlite_cluster.server
    with replica_channel(server, server_authority(server)) as channel:
        me = whoami(channel, forwarded(ALICE))
        assert (me.identity, me.role, list(me.groups), me.method) == ("alice", int(Role.SUBMITTER), ["physics"],
                                                                      "token")
        stub = security_pb2_grpc.SecurityServiceStub(channel)
        denied = refusal(lambda: stub.CreateToken(security_pb2.CreateTokenRequest(role=int(Role.ADMIN), user="x"),
                                                  metadata=forwarded(ALICE), timeout=10))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and "alice has submitter" in denied.details()
        alone = refusal(lambda: whoami(channel))  # a replica is no caller of its own
        assert alone.code() == grpc.StatusCode.UNAUTHENTICATED and FORWARDED_IDENTITY in alone.details()
        garbled = refusal(lambda: whoami(channel, ((FORWARDED_IDENTITY, "bm90IGpzb24="),)))
        assert garbled.code() == grpc.StatusCode.UNAUTHENTICATED and "not base64url-encoded JSON" in garbled.details()
    audit = wait_until(lambda: list(sqlite_cluster.client.list_audit_records(filter="identity=alice")), 10,
                       "the refused call's audit record")  # written with the engine's next batch
    assert [(r.method.rsplit("/", 1)[1], r.code) for r in audit] == [("CreateToken", "PERMISSION_DENIED")]


def test_a_forwarded_identity_from_a_token_client_or_an_agent_is_refused(sqlite_cluster):
    server = sqlite_cluster.server
    admin = Caller("root", Role.ADMIN)
    with admin_channel(server) as channel:
        assert whoami(channel).identity == "admin"
        forged = refusal(lambda: whoami(channel, forwarded(admin)))
    assert forged.code() == grpc.StatusCode.UNAUTHENTICATED
    assert forged.details().startswith(f"{FORWARDED_IDENTITY}: only a jobplane-server replica may forward a caller")
    with agent_channel(server, *agent_certificate(server, "a1")) as channel:
        assert whoami(channel).identity == "a1"
        forged = refusal(lambda: whoami(channel, forwarded(admin)))
    assert forged.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "the agent certificate of a1 is not a replica's" in forged.details()


def test_a_replica_certificate_of_another_ca_is_refused_at_the_handshake(sqlite_cluster):
    with replica_channel(sqlite_cluster.server, Authority.create()) as channel:
        assert refusal(lambda: whoami(channel, forwarded(ALICE))).code() == grpc.StatusCode.UNAVAILABLE


# ----- replicas on one PostgreSQL database ----------------------------------------------


@pytest.fixture
def pg_url():
    url, drop = _create_pg_database(_pg_admin_url())
    yield url
    drop()


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str):
    """Two jobplane-server processes on one PostgreSQL database, each with its data directory."""
    started: list[ServerProc] = []

    def start(name: str) -> ServerProc:
        workdir = tmp_path / name
        (workdir / "data").mkdir(parents=True)
        if started:  # the admin token is the database's, made by the first replica
            (workdir / "data" / "admin.token").write_text(started[0].token)
        started.append(ServerProc(workdir, pg_url))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def enroll(server: ServerProc, secret: str, name: str) -> tuple[bytes, bytes]:
    """What an agent does to join: (its new key, the certificate `server` signed for it)."""
    key, csr = make_key_and_csr(name)
    with grpc.secure_channel(server.address, grpc.ssl_channel_credentials(server.ca.read_bytes())) as channel:
        request = security_pb2.EnrollRequest(token=secret, name=name, csr_pem=csr)
        return key, security_pb2_grpc.SecurityServiceStub(channel).Enroll(request, timeout=10).certificate_pem


@pytest.mark.postgres
def test_replicas_share_one_ca_that_trusts_agents_and_clients_of_either(replicas):
    a, b = replicas("a"), replicas("b")
    assert a.ca.read_bytes() == b.ca.read_bytes()
    with a.client() as on_a, Client.connect(b.address, token=a.token, ca=a.ca) as on_b:  # a's bundle verifies b
        assert on_a.get_authority().fingerprint == on_b.get_authority().fingerprint
        join = on_a.create_token("agent").secret
    with agent_channel(b, *enroll(a, join, "gpu-1")) as channel:  # enrolled by a, trusted by b
        assert (whoami(channel).identity, whoami(channel).method) == ("gpu-1", "certificate")


@pytest.mark.postgres
def test_a_token_made_on_one_replica_works_on_the_other_until_revoked_there(replicas):
    a, b = replicas("a"), replicas("b")
    with a.client() as on_a:
        made = on_a.create_token("viewer", user="vera")
        with Client.connect(b.address, token=made.secret, ca=b.ca) as vera_on_b:
            assert vera_on_b.whoami().identity == "vera"  # at once: b looks up what it has not seen
            on_a.revoke_token(made.token.id)

            def refused_on_b() -> bool:
                try:
                    vera_on_b.whoami()
                except Unauthenticated as exc:
                    return f"token {made.token.id} was revoked" in str(exc)
                return False

            wait_until(refused_on_b, 5, "b to refuse the token a revoked")
        with b.client() as admin_on_b:
            listed = {t.id: t.revoked for t in admin_on_b.list_tokens()}
        assert listed[made.token.id] is True


@pytest.mark.postgres
def test_a_join_token_with_one_use_enrolls_once_across_replicas(replicas):
    a, b = replicas("a"), replicas("b")
    with a.client() as on_a:
        join = on_a.create_token("agent", name_prefix="gpu-").secret
    wrong_name = refusal(lambda: enroll(b, join, "cpu-1"))  # b has now seen the token, with its one use
    assert wrong_name.code() == grpc.StatusCode.PERMISSION_DENIED
    enroll(a, join, "gpu-1")
    again = refusal(lambda: enroll(b, join, "gpu-2"))
    assert again.code() == grpc.StatusCode.UNAUTHENTICATED and "has no uses left" in again.details()


@pytest.mark.postgres
def test_concurrent_uses_of_a_join_token_spend_each_use_once(pg_url):
    store = Store(open_database(pg_url))
    store.create_schema()
    security = SecurityStore(store.db)
    ids = [f"tok{i:05d}" for i in range(40)]
    for token_id in ids:
        security.add_token({"id": token_id, "secret_hash": "x", "role": int(Role.AGENT), "create_time": 0.0,
                            "uses_left": 1})
    spent: list[str] = []
    barrier = threading.Barrier(2)

    def use_all() -> None:  # a replica of its own: its own connection (peewee's are per thread)
        for token_id in ids:
            barrier.wait()
            if security.use_token(token_id, 1.0) is not None:
                spent.append(token_id)
        store.close()

    threads = [threading.Thread(target=use_all) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(spent) == ids, "each single use was spent exactly once"
    assert all(security.token(token_id).uses_left == 0 for token_id in ids)
    store.close()


@pytest.mark.postgres
def test_replicas_starting_together_store_one_ca_and_a_rotation_keeps_the_old_one(pg_url, tmp_path):
    store = Store(open_database(pg_url))
    store.create_schema()
    found: list[Authority] = []
    barrier = threading.Barrier(3)

    def start(name: str) -> None:
        barrier.wait()
        found.append(shared_authority(SecurityStore(store.db), tmp_path / name / "pki"))
        store.close()

    threads = [threading.Thread(target=start, args=(f"r{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(found) == 3 and len({ca.fingerprint() for ca in found}) == 1, "every replica signs with one CA"
    rotated = shared_authority(SecurityStore(store.db), tmp_path / "r1" / "pki", rotate=True)
    loaded = shared_authority(SecurityStore(store.db), tmp_path / "r2" / "pki")
    assert loaded.fingerprint() == rotated.fingerprint() != found[0].fingerprint()
    assert loaded.trust_bundle() == rotated.cert_pem + found[0].cert_pem, "the old CA stays trusted"
    store.close()


@pytest.mark.postgres
def test_the_first_replica_stores_the_ca_its_data_directory_had(pg_url, tmp_path):
    existing = Authority.load_or_create(tmp_path / "pki")
    store = Store(open_database(pg_url))
    store.create_schema()
    try:
        assert shared_authority(SecurityStore(store.db), tmp_path / "pki").fingerprint() == existing.fingerprint()
        assert shared_authority(SecurityStore(store.db), tmp_path / "elsewhere").fingerprint() == \
            existing.fingerprint()
    finally:
        store.close()
