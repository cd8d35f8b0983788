"""The CA's certificates over real mutual TLS: a gRPC server on port 0 that requires client certificates
admits the ones our CA signed and turns away the rest during the handshake."""

from __future__ import annotations

from concurrent import futures
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from jobplane.agent.keygen import make_key_and_csr
from jobplane.server.security.pki import Authority, identity_of

DAY = timedelta(days=1)


class RecordingHealth(health.HealthServicer):
    """The standard health servicer, remembering each caller's auth context: what the server will read identity from."""

    def __init__(self) -> None:
        super().__init__()
        self.auth_contexts: list[dict[str, list[bytes]]] = []

    def Check(self, request, context):
        self.auth_contexts.append(context.auth_context())
        return super().Check(request, context)


@pytest.fixture
def serve():
    servers = []

    def start(ca: Authority, directory) -> tuple[str, RecordingHealth]:
        files = ca.issue_server(directory, ["127.0.0.1"])
        credentials = grpc.ssl_server_credentials(
            [(files.key.read_bytes(), files.cert.read_bytes())],
            root_certificates=ca.trust_bundle(), require_client_auth=True)
        servicer = RecordingHealth()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}", servicer

    yield start
    for server in servers:
        server.stop(None)


@pytest.fixture
def ca(tmp_path) -> Authority:
    return Authority.load_or_create(tmp_path / "ca")


def client_cert(ca: Authority, identity: str = "worker-3", **when) -> tuple[bytes, bytes]:
    key, csr = make_key_and_csr(identity)
    return key, ca.sign_csr(csr, identity=identity, role="agent", lifetime=DAY, **when)


def check(address: str, ca: Authority, key: bytes | None = None, cert: bytes | None = None):
    credentials = grpc.ssl_channel_credentials(ca.trust_bundle(), key, cert)
    with grpc.secure_channel(address, credentials) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)


def assert_refused(address: str, ca: Authority, key: bytes | None = None, cert: bytes | None = None) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        check(address, ca, key, cert)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_signed_by_the_ca_is_admitted_and_the_server_sees_its_identity(ca, tmp_path, serve):
    address, servicer = serve(ca, tmp_path)
    key, cert = client_cert(ca)

    assert check(address, ca, key, cert).status == health_pb2.HealthCheckResponse.SERVING

    [auth] = servicer.auth_contexts
    assert auth["x509_subject_alternative_name"] == [b"jobplane://agent/worker-3"]
    assert identity_of(auth["x509_pem_cert"][0]) == identity_of(cert)


def test_a_client_without_a_certificate_is_refused(ca, tmp_path, serve):
    address, servicer = serve(ca, tmp_path)

    assert_refused(address, ca)
    assert servicer.auth_contexts == []


def test_a_client_signed_by_another_ca_is_refused(ca, tmp_path, serve):
    address, _ = serve(ca, tmp_path)
    key, cert = client_cert(Authority.load_or_create(tmp_path / "other"))

    assert_refused(address, ca, key, cert)


def test_an_expired_client_certificate_is_refused(ca, tmp_path, serve):
    address, _ = serve(ca, tmp_path)
    key, cert = client_cert(ca, now=datetime.now(timezone.utc) - 2 * DAY)

    assert_refused(address, ca, key, cert)


def test_after_rotation_clients_of_the_old_and_the_new_ca_are_admitted(ca, tmp_path, serve):
    old_key, old_cert = client_cert(ca, "worker-old")
    rotated = ca.rotate(tmp_path / "ca")
    address, servicer = serve(rotated, tmp_path)
    new_key, new_cert = client_cert(rotated, "worker-new")

    check(address, rotated, old_key, old_cert)
    check(address, rotated, new_key, new_cert)

    names = [auth["x509_common_name"] for auth in servicer.auth_contexts]
    assert names == [[b"worker-old"], [b"worker-new"]]
