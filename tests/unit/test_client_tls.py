"""The SDK and CLI over real TLS to a scripted SecurityService: the bearer token really travels, the
CA is really checked, and the server's answers and refusals reach the user as they should."""

from __future__ import annotations

import asyncio
import json
from concurrent import futures
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from jobplane.client import AsyncClient, Client, PermissionDenied, Unauthenticated, Unavailable
from jobplane.client.cli import main
from jobplane.agent.keygen import make_key_and_csr
from jobplane.server.security.pki import Authority
from jobplane.v1 import job_pb2, job_pb2_grpc, security_pb2, security_pb2_grpc

ADMIN, VIEWER = "admin-secret", "viewer-secret"
CALLERS = {ADMIN: ("root", security_pb2.ROLE_ADMIN), VIEWER: ("vera", security_pb2.ROLE_VIEWER)}


class ScriptedSecurity(security_pb2_grpc.SecurityServiceServicer):
    """Authenticates as the real server does (bearer token or client certificate) and records requests."""

    def __init__(self) -> None:
        self.headers: list[str] = []
        self.requests: list = []

    def _caller(self, context) -> tuple[str, int, str]:
        if certs := context.auth_context().get("x509_common_name"):
            return certs[0].decode(), security_pb2.ROLE_OPERATOR, "certificate"
        header = dict(context.invocation_metadata()).get("authorization", "")
        self.headers.append(header)
        secret = header.removeprefix("Bearer ")
        if secret not in CALLERS:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing, unknown or expired token")
        return (*CALLERS[secret], "token")

    def _admin(self, request, context) -> None:
        self.requests.append(request)
        if self._caller(context)[1] != security_pb2.ROLE_ADMIN:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "this call needs the admin role")

    def WhoAmI(self, request, context):
        identity, role, method = self._caller(context)
        return security_pb2.WhoAmIResponse(identity=identity, role=role, groups=["ops"], method=method)

    def CreateToken(self, request, context):
        self._admin(request, context)
        token = security_pb2.Token(id="tok1", role=request.role, user=request.user, groups=request.groups,
                                   name_prefix=request.name_prefix, uses_left=request.uses or -1)
        token.expire_time.GetCurrentTime()
        token.expire_time.seconds += int(request.ttl_seconds)
        return security_pb2.CreateTokenResponse(token=token, secret="jp_new_secret")

    def ListTokens(self, request, context):
        self._admin(request, context)
        tokens = [security_pb2.Token(id="tok1", role=security_pb2.ROLE_AGENT, name_prefix="local-", uses_left=1),
                  security_pb2.Token(id="tok2", role=security_pb2.ROLE_VIEWER, user="vera", uses_left=-1)]
        return security_pb2.ListTokensResponse(tokens=tokens)

    def RevokeToken(self, request, context):
        self._admin(request, context)
        return security_pb2.RevokeTokenResponse(token=security_pb2.Token(id=request.token_id, revoked=True,
                                                                         role=security_pb2.ROLE_VIEWER, user="vera"))

    def ListAuditRecords(self, request, context):
        self._admin(request, context)
        record = security_pb2.AuditRecord(id=7, identity="alice", role=security_pb2.ROLE_SUBMITTER,
                                          method="/jobplane.v1.JobService/SubmitJob", target="job 12", code="OK")
        return security_pb2.ListAuditRecordsResponse(records=[record])

    def GetAuthority(self, request, context):
        self._caller(context)
        return security_pb2.GetAuthorityResponse(ca_bundle_pem=b"-----BEGIN CERTIFICATE-----\nMIIB\n"
                                                 b"-----END CERTIFICATE-----\n", subject="CN=jobplane CA",
                                                 fingerprint="ab" * 32)


class ScriptedJobs(job_pb2_grpc.JobServiceServicer):
    def GetJob(self, request, context):
        return job_pb2.GetJobResponse(job=job_pb2.Job(id=request.job_id, owner="alice",
                                                      spec=job_pb2.JobSpec(name="nightly")))


@dataclass
class TlsServer:
    address: str
    data_dir: Path  # holds ca-bundle.crt and admin.token, as a real server's does
    authority: Authority
    security: ScriptedSecurity

    @property
    def ca(self) -> Path:
        return self.data_dir / "ca-bundle.crt"


def start_server(tmp_path: Path, *, require_client_cert: bool = False):
    authority = Authority.load_or_create(tmp_path / "pki")
    files = authority.issue_server(tmp_path / "pki", ["localhost"])
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "ca-bundle.crt").write_bytes(authority.trust_bundle())
    (data_dir / "admin.token").write_text(ADMIN + "\n")
    security = ScriptedSecurity()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    security_pb2_grpc.add_SecurityServiceServicer_to_server(security, server)
    job_pb2_grpc.add_JobServiceServicer_to_server(ScriptedJobs(), server)
    tls = grpc.ssl_server_credentials([(files.key.read_bytes(), files.cert.read_bytes())],
                                      root_certificates=authority.trust_bundle(),
                                      require_client_auth=require_client_cert)
    port = server.add_secure_port("127.0.0.1:0", tls)
    server.start()
    return server, TlsServer(f"127.0.0.1:{port}", data_dir, authority, security)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path: Path):
    for name in ("JOBPLANE_SERVER", "JOBPLANE_TOKEN", "JOBPLANE_CA", "JOBPLANE_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOBPLANE_HOME", str(tmp_path / "empty-home"))


@pytest.fixture
def tls_server(tmp_path: Path):
    server, described = start_server(tmp_path)
    yield described
    server.stop(None)


@pytest.fixture
def on_this_machine(tls_server, monkeypatch) -> TlsServer:
    """The server's data directory is the default one, as for a server started on this machine."""
    monkeypatch.setenv("JOBPLANE_HOME", str(tls_server.data_dir))
    return tls_server


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# The SDK


def test_the_token_travels_as_bearer_metadata_over_tls(tls_server):
    with Client.connect(tls_server.address, token=ADMIN, ca=tls_server.ca) as client:
        me = client.whoami()
    assert tls_server.security.headers == [f"Bearer {ADMIN}"]
    assert (me.identity, me.role, me.method) == ("root", security_pb2.ROLE_ADMIN, "token")


def test_the_async_client_sends_the_token_too(tls_server):
    async def whoami() -> security_pb2.WhoAmIResponse:
        async with await AsyncClient.connect(tls_server.address, token=VIEWER, ca=tls_server.ca) as client:
            return await client.whoami()

    assert asyncio.run(whoami()).identity == "vera"
    assert tls_server.security.headers == [f"Bearer {VIEWER}"]


def test_with_no_arguments_a_client_on_the_servers_machine_uses_its_data_dir(on_this_machine):
    with Client.connect(on_this_machine.address) as client:
        assert client.whoami().identity == "root"
    assert on_this_machine.security.headers == [f"Bearer {ADMIN}"]


def test_the_sdk_raises_typed_errors_for_refusals(tls_server):
    with Client.connect(tls_server.address, token=VIEWER, ca=tls_server.ca) as client:
        with pytest.raises(PermissionDenied, match="needs the admin role"):
            client.create_token("viewer", user="x")
    with Client.connect(tls_server.address, token="wrong", ca=tls_server.ca) as client:
        with pytest.raises(Unauthenticated):
            client.whoami()


def test_a_server_certificate_from_another_ca_is_refused(tls_server, tmp_path):
    other = tmp_path / "other.pem"
    other.write_bytes(Authority.load_or_create(tmp_path / "other").trust_bundle())
    with Client.connect(tls_server.address, token=ADMIN, ca=other, timeout=5) as client:
        with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
            client.whoami()
    assert tls_server.security.headers == []  # the token never left


def test_sdk_security_methods_send_what_they_are_given(tls_server):
    with Client.connect(tls_server.address, token=ADMIN, ca=tls_server.ca) as client:
        created = client.create_token("submitter", user="alice", groups=["ml"], ttl=3600, uses=3)
        assert created.secret == "jp_new_secret"
        assert [token.id for token in client.list_tokens()] == ["tok1", "tok2"]
        assert client.revoke_token("tok2").revoked
        assert [record.id for record in client.list_audit_records(filter="identity=alice")] == [7]
        assert client.get_authority().subject == "CN=jobplane CA"
    create, _, revoke, audit = tls_server.security.requests
    assert (create.role, create.user, list(create.groups), create.ttl_seconds, create.uses) == (
        security_pb2.ROLE_SUBMITTER, "alice", ["ml"], 3600, 3)
    assert revoke.token_id == "tok2" and audit.filter == "identity=alice"


def test_a_client_certificate_is_presented_when_given(tmp_path):
    server, described = start_server(tmp_path, require_client_cert=True)
    try:
        key_pem, csr_pem = make_key_and_csr("ops-bot")
        cert_pem = described.authority.sign_csr(csr_pem, identity="ops-bot", role="client",
                                                lifetime=timedelta(hours=1))
        (tmp_path / "c.pem").write_bytes(cert_pem)
        (tmp_path / "k.pem").write_bytes(key_pem)
        with Client.connect(described.address, ca=described.ca, cert=tmp_path / "c.pem", key=tmp_path / "k.pem") as c:
            me = c.whoami()
    finally:
        server.stop(None)
    assert (me.identity, me.method) == ("ops-bot", "certificate")


# The CLI


def test_cli_whoami_needs_no_flags_on_the_servers_machine(on_this_machine, capsys):
    code, out, _ = cli(capsys, "whoami", "--server", on_this_machine.address)
    assert code == 0
    assert "root" in out and "admin" in out and "token" in out


def test_cli_creates_a_join_token_and_says_how_to_start_an_agent(on_this_machine, capsys):
    code, out, _ = cli(capsys, "tokens", "create", "--role", "agent", "--uses", "2", "--ttl", "10m",
                       "--name-prefix", "gpu-", "--server", on_this_machine.address)
    assert code == 0
    (request,) = on_this_machine.security.requests
    assert (request.role, request.uses, request.ttl_seconds, request.name_prefix) == (
        security_pb2.ROLE_AGENT, 2, 600, "gpu-")
    assert out.count("jp_new_secret") == 2  # the secret, and in the hint
    assert (f"jobplane-agent --server {on_this_machine.address} --token jp_new_secret "
            f"--ca {on_this_machine.ca}") in out


def test_cli_creates_an_api_token_with_groups(tls_server, capsys):
    code, out, _ = cli(capsys, "tokens", "create", "--role", "submitter", "--user", "alice", "--group", "ml",
                       "--group", "ops", "--ttl", "1h", "--server", tls_server.address,
                       "--token", ADMIN, "--ca", str(tls_server.ca), "-o", "json")
    assert code == 0
    assert json.loads(out)["secret"] == "jp_new_secret"
    (request,) = tls_server.security.requests
    assert (request.user, list(request.groups), request.ttl_seconds) == ("alice", ["ml", "ops"], 3600)


def test_cli_lists_and_revokes_tokens(on_this_machine, capsys):
    code, out, _ = cli(capsys, "tokens", "list", "--server", on_this_machine.address)
    assert code == 0
    assert "tok1" in out and "agents local-*" in out and "unlimited" in out and "never" in out
    code, out, _ = cli(capsys, "tokens", "revoke", "tok2", "--server", on_this_machine.address)
    assert (code, out.strip()) == (0, "revoked token tok2 (viewer for vera)")


def test_cli_audit_list_passes_its_filter(on_this_machine, capsys):
    code, out, _ = cli(capsys, "audit", "list", "--filter", "identity=alice", "--server", on_this_machine.address)
    assert code == 0
    assert "JobService/SubmitJob" in out and "job 12" in out
    assert on_this_machine.security.requests[0].filter == "identity=alice"


def test_cli_ca_show(on_this_machine, capsys):
    code, out, _ = cli(capsys, "ca", "show", "--server", on_this_machine.address)
    assert code == 0 and "CN=jobplane CA" in out and "ab" * 32 in out
    code, out, _ = cli(capsys, "ca", "show", "-o", "json", "--server", on_this_machine.address)
    shown = json.loads(out)
    assert shown["fingerprint"] == "ab" * 32 and shown["ca_bundle_pem"].startswith("-----BEGIN CERTIFICATE-----")
    code, out, _ = cli(capsys, "ca", "show", "--pem", "--server", on_this_machine.address)
    assert out.startswith("-----BEGIN CERTIFICATE-----")


def test_cli_jobs_get_shows_the_owner(on_this_machine, capsys):
    code, out, _ = cli(capsys, "jobs", "get", "12", "--server", on_this_machine.address)
    assert code == 0
    assert any(line.split() == ["Owner", "alice"] for line in out.splitlines())


def test_cli_permission_denied_exits_3_with_the_servers_message(tls_server, capsys):
    code, _, err = cli(capsys, "tokens", "list", "--server", tls_server.address, "--token", VIEWER,
                       "--ca", str(tls_server.ca))
    assert code == 3
    assert "this call needs the admin role" in err


def test_cli_unauthenticated_exits_3_and_says_how_to_pass_a_token(tls_server, capsys, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("wrong\n")
    code, _, err = cli(capsys, "whoami", "--server", tls_server.address, "--token-file", str(token_file),
                       "--ca", str(tls_server.ca))
    assert code == 3
    assert "missing, unknown or expired token" in err and "--token" in err
    assert tls_server.security.headers == ["Bearer wrong"]


def test_cli_hints_at_ca_when_the_server_certificate_is_not_trusted(tls_server, capsys):
    code, _, err = cli(capsys, "whoami", "--server", tls_server.address, "--token", ADMIN)  # system roots only
    assert code == 3
    assert "not signed by a CA this client trusts (only the system's CAs)" in err and "--ca" in err


def test_cli_hints_that_insecure_is_wrong_for_a_tls_server(tls_server, capsys):
    code, _, err = cli(capsys, "whoami", "--server", tls_server.address, "--insecure")
    assert code == 3
    assert "drop --insecure" in err


def test_cli_unreadable_credentials_are_bad_input(tls_server, capsys, tmp_path):
    code, _, err = cli(capsys, "whoami", "--server", tls_server.address, "--token-file", str(tmp_path / "nope"))
    assert code == 2
    assert f"cannot read the token file {tmp_path / 'nope'}" in err
