"""The agent's side of security: enrolling with a join token, mutual TLS, renewal, insecure mode.

A stand-in server plays the contract on two real ports: the main address (TLS, no client
certificate) answers Enroll; the agent address (mutual TLS) serves Connect and
RenewCertificate. Certificates come from a real test CA.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from support_standin import DEADLINE, FINISHED, STARTED, StandIn, report_kind, with_agent

from jobplane.agent import Agent, AgentConfig
from jobplane.agent.credentials import MutualTLS
from jobplane.agent.errors import EnrollmentRefused, NotEnrolled
from jobplane.agent.der import cert_lifetime
from jobplane.agent.identity import Identity, IdentityStore
from jobplane.agent.keygen import make_key_and_csr
from jobplane.server.security.pki import Authority, identity_of
from jobplane.v1 import provider_pb2, provider_pb2_grpc, security_pb2, security_pb2_grpc

TOKEN = "jpa_test0001_the-one-good-join-token"
T = TypeVar("T")


def peer(context: grpc.aio.ServicerContext) -> tuple[str, str, int]:
    """(role, identity, serial) of the certificate the caller presented."""
    return identity_of(context.auth_context()["x509_pem_cert"][0])


class StandInSecurity(security_pb2_grpc.SecurityServiceServicer):
    """Enroll trades a known token (while it has uses left) for a certificate; renewals too."""

    def __init__(self, ca: Authority) -> None:
        self.ca = ca
        self.uses = {TOKEN: 1}
        self.agent_port = 0
        self.enroll_ttl = 3600.0
        self.enrolled: list[tuple[str, float]] = []  # (name, when)
        self.issued: list[bytes] = []  # every certificate, in order
        self.renewal_failures = 0
        self.renewals: list[tuple[tuple[str, str, int], float]] = []  # (caller, when)

    async def Enroll(self, request, context):
        if self.uses.get(request.token, 0) < 1:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "unknown token; create one with `jobplane tokens create`")
        self.uses[request.token] -= 1
        self.enrolled.append((request.name, time.time()))
        pem, expires = self._sign(request.csr_pem, request.name, self.enroll_ttl)
        return security_pb2.EnrollResponse(provider_id=request.name, certificate_pem=pem,
                                           ca_bundle_pem=self.ca.trust_bundle(),
                                           expire_time=expires, agent_port=self.agent_port)

    async def RenewCertificate(self, request, context):
        caller = peer(context)
        self.renewals.append((caller, time.time()))
        if self.renewal_failures:
            self.renewal_failures -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the test failed this renewal")
        pem, expires = self._sign(request.csr_pem, caller[1], 3600.0)
        return security_pb2.RenewCertificateResponse(
            certificate_pem=pem, ca_bundle_pem=self.ca.trust_bundle(), expire_time=expires)

    def _sign(self, csr_pem: bytes, name: str, ttl: float) -> tuple[bytes, Timestamp]:
        pem = self.ca.sign_csr(csr_pem, identity=name, role="agent", lifetime=timedelta(seconds=ttl))
        self.issued.append(pem)
        expires = Timestamp()
        expires.FromSeconds(int(time.time() + ttl))
        return pem, expires


class StandInProviders(StandIn):
    """Connect as the agent address serves it: remembers which certificate opened each stream."""

    def __init__(self) -> None:
        super().__init__()
        self.take_over = True
        self.peers: list[tuple[str, str, int]] = []

    async def Connect(self, request_iterator, context):
        self.peers.append(peer(context))
        async for message in super().Connect(request_iterator, context):
            yield message


@dataclass
class Plane:
    """The stand-in server's two addresses, and what an agent needs to join it."""

    tmp: Path
    ca: Authority
    security: StandInSecurity
    providers: StandInProviders
    main: str
    ca_file: Path
    servers: list[grpc.aio.Server] = field(default_factory=list)

    def config(self, **overrides) -> AgentConfig:
        options = dict(server=self.main, name="a1", slots=2, heartbeat_interval=0.2,
                       kill_grace=1.0, work_dir=str(self.tmp), state_dir=str(self.state_dir),
                       token=TOKEN, ca_file=str(self.ca_file))
        return AgentConfig(**{**options, **overrides})

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    @property
    def identity_dir(self) -> Path:
        return self.state_dir / "identity"


@asynccontextmanager
async def plane(tmp: Path) -> AsyncIterator[Plane]:
    ca = Authority.load_or_create(tmp / "ca")
    files = ca.issue_server(tmp / "server", ["127.0.0.1"])
    pair = [(files.key.read_bytes(), files.cert.read_bytes())]
    security, providers = StandInSecurity(ca), StandInProviders()
    main, agent_address = grpc.aio.server(), grpc.aio.server()
    security_pb2_grpc.add_SecurityServiceServicer_to_server(security, main)
    security_pb2_grpc.add_SecurityServiceServicer_to_server(security, agent_address)
    provider_pb2_grpc.add_ProviderServiceServicer_to_server(providers, agent_address)
    main_port = main.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(pair))
    security.agent_port = agent_address.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
        pair, root_certificates=ca.trust_bundle(), require_client_auth=True))
    ca_file = tmp / "ca-bundle.crt"
    ca_file.write_bytes(ca.trust_bundle())
    for server in (main, agent_address):
        await server.start()
    try:
        yield Plane(tmp, ca, security, providers, f"127.0.0.1:{main_port}", ca_file)
    finally:
        for server in (main, agent_address):
            await server.stop(None)


@asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(agent.run())
    try:
        yield task
    finally:
        await asyncio.wait_for(agent.stop(), DEADLINE)


def run(main) -> object:
    return asyncio.run(asyncio.wait_for(main(), 2 * DEADLINE))


async def eventually(check: Callable[[], T | None], what: str) -> T:
    """Wait for `check()` to hold (polling the loop's own progress); fail at the deadline."""
    deadline = time.monotonic() + DEADLINE
    while (value := check()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return value


def test_an_agent_with_a_join_token_enrolls_keeps_its_key_and_connects_with_mutual_tls(tmp_path):
    async def main():
        async with plane(tmp_path) as p, running(Agent(p.config())):
            stream = await p.providers.next_stream()
            await stream.signal("ready")
            return stream.hello.name, p.providers.peers, p.security, p.main

    name, peers, security, main_address = run(main)
    files = tmp_path / "state" / "identity"
    assert stat.S_IMODE((files / "agent.key").stat().st_mode) == 0o600
    role, identity, serial = identity_of((files / "agent.crt").read_bytes())
    assert (role, identity, name) == ("agent", "a1", "a1")
    assert peers == [("agent", "a1", serial)]  # the stream was opened with that certificate
    assert json.loads((files / "endpoint.json").read_text()) == {
        "server": main_address, "name": "a1", "agent_port": security.agent_port}
    assert [name for name, _ in security.enrolled] == ["a1"]
    assert security.uses[TOKEN] == 0


def test_a_restarted_agent_reuses_its_certificate_without_a_token(tmp_path):
    async def main():
        async with plane(tmp_path) as p:
            async with running(Agent(p.config())):
                await (await p.providers.next_stream()).signal("ready")
            async with running(Agent(p.config(token="", ca_file=""))):
                await (await p.providers.next_stream()).signal("ready")
            return p.providers.peers, p.security.enrolled

    peers, enrolled = run(main)
    assert len(enrolled) == 1  # the single-use token was spent once
    assert len(peers) == 2 and peers[0] == peers[1]


def test_a_bad_token_ends_the_agent_with_a_clear_error(tmp_path):
    async def main():
        async with plane(tmp_path) as p:
            agent = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "jobplane.agent", "--server", p.main, "--name", "a1",
                "--token", "jpa_wrong", "--ca", str(p.ca_file), "--work-dir", str(tmp_path),
                "--state-dir", str(p.state_dir), stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(agent.communicate(), DEADLINE)
            return agent.returncode, err.decode(), p.identity_dir

    code, err, identity_dir = run(main)
    assert code == 1, err
    assert "refused to enroll agent 'a1' (UNAUTHENTICATED: unknown token" in err
    assert "jobplane tokens create --role agent" in err
    assert not (identity_dir / "endpoint.json").exists()


def test_a_server_certificate_from_another_ca_is_refused_at_once(tmp_path):
    async def main():
        async with plane(tmp_path) as p:
            other = tmp_path / "other.crt"
            other.write_bytes(Authority.load_or_create(tmp_path / "other").cert_pem)
            with pytest.raises(EnrollmentRefused, match="not signed by the CA bundle"):
                await Agent(p.config(ca_file=str(other))).run()
            return p.security.uses[TOKEN]

    assert run(main) == 1  # the token was never sent


@pytest.mark.parametrize("take_over", [True, False], ids=["server-takes-over", "agent-lets-go"])
def test_the_certificate_is_renewed_and_the_link_switches_under_a_running_task(tmp_path, take_over):
    async def main():
        async with plane(tmp_path) as p, running(Agent(p.config())):
            p.security.enroll_ttl, p.security.renewal_failures = 3.0, 1
            p.providers.take_over = take_over
            first = await p.providers.next_stream()
            first.auto_ack = True
            first.assign("long", command=["sleep", "300"])
            await first.report("long", STARTED)
            second = await p.providers.next_stream()  # opened with the renewed certificate
            second.auto_ack = True
            await second.signal("ready")
            second.send(cancel=provider_pb2.Cancellations(
                attempts=[provider_pb2.AttemptRef(task_id="long", attempt=1)], reason="by the test"))
            _, finished = await second.report("long", FINISHED)
            while not first.batches.empty():
                first.seen += [(0, report) for report in first.batches.get_nowait().reports]
            return p, first, second, finished

    p, first, second, finished = run(main)
    (_, enrolled_at), = p.security.enrolled
    expired_at = cert_lifetime(p.security.issued[0])[1].timestamp()  # whole seconds: <= 3 s on
    (failed, failed_at), (renewer, renewed_at) = p.security.renewals
    assert failed_at >= enrolled_at + 0.6 * (expired_at - enrolled_at)  # ~70% in, not at once
    assert renewed_at > failed_at and failed == renewer == p.providers.peers[0]
    old, new = p.providers.peers
    assert old[:2] == new[:2] == ("agent", "a1") and old[2] != new[2]
    assert identity_of((p.identity_dir / "agent.crt").read_bytes())[2] == new[2]
    assert ("long", 1) in {(ref.task_id, ref.attempt) for ref in second.hello.running}
    assert not [report for _, report in first.seen if report_kind(report) == FINISHED]
    assert finished.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_CANCELLED  # it ran until cancelled
    assert finished.finished.error == "by the test"


def test_a_certificate_that_expires_unrenewed_says_a_new_token_is_needed(tmp_path, caplog):
    def error_naming_the_fix():
        return next((record.getMessage() for record in caplog.records
                     if record.levelno == logging.ERROR and "--token" in record.getMessage()), None)

    async def main():
        async with plane(tmp_path) as p:
            p.security.enroll_ttl, p.security.renewal_failures = 3.0, 10**6
            async with running(Agent(p.config())):
                await (await p.providers.next_stream()).signal("ready")
            async with running(Agent(p.config(token="", ca_file=""))) as agent:
                await (await p.providers.next_stream()).signal("ready")
                message = await eventually(error_naming_the_fix, "the expiry to be reported")
                return message, agent.done(), len(p.security.renewals)

    message, ended, renewals = run(main)
    assert "the certificate of agent 'a1' expired at" in message
    assert "enrolling again needs a join token: restart the agent with --token" in message
    assert renewals > 1 and not ended  # it kept trying until the end; running work is not dropped


def test_an_insecure_agent_connects_in_plaintext_and_keeps_no_identity(tmp_path):
    async def scenario(service, agent, running):
        return (await service.next_stream()).hello.name

    assert with_agent(tmp_path, scenario, insecure=True, state_dir=str(tmp_path / "s")) == "a1"
    assert not (tmp_path / "s" / "identity").exists()


# The stored identity, without a server.

def stored(tmp_path: Path, *, server: str = "h:1", expired: bool = False) -> Identity:
    ca = Authority.load_or_create(tmp_path / "ca")
    key, csr = make_key_and_csr("a1")
    now = datetime.now(timezone.utc) - (timedelta(days=2) if expired else timedelta(0))
    cert = ca.sign_csr(csr, identity="a1", role="agent", lifetime=timedelta(days=1), now=now)
    identity = Identity(name="a1", server=server, agent_port=7071, key_pem=key, cert_pem=cert,
                        ca_pem=ca.trust_bundle(), received=time.time())
    IdentityStore(tmp_path / "state" / "identity").save(identity)
    return identity


@pytest.mark.parametrize("server, expired, words", [
    ("other:1", False, "the stored certificate is for 'a1' at other:1, not 'a1' at h:1"),
    ("h:1", True, "the stored certificate of 'a1' expired at"),
])
def test_a_stored_identity_for_another_server_or_expired_needs_a_token(tmp_path, server, expired,
                                                                       words):
    stored(tmp_path, server=server, expired=expired)
    config = AgentConfig(server="h:1", name="a1", work_dir=str(tmp_path),
                         state_dir=str(tmp_path / "state"))
    credentials = MutualTLS(config, IdentityStore(tmp_path / "state" / "identity"))
    with pytest.raises(NotEnrolled, match="pass --token") as refused:
        asyncio.run(credentials.ready())
    assert words in str(refused.value)


def test_a_renewal_interrupted_between_certificate_and_key_is_finished_on_load(tmp_path):
    old = stored(tmp_path)
    store = IdentityStore(tmp_path / "state" / "identity")
    key, csr = make_key_and_csr("a1")
    cert = Authority.load_or_create(tmp_path / "ca").sign_csr(
        csr, identity="a1", role="agent", lifetime=timedelta(days=1))
    (store.root / "agent.key.next").write_bytes(key)  # the crash came after the certificate
    (store.root / "agent.crt").write_bytes(cert)
    loaded = store.load()
    assert loaded is not None and loaded.key_pem == key and loaded.key_pem != old.key_pem
    assert (store.root / "agent.key").read_bytes() == key
    assert not (store.root / "agent.key.next").exists()


def test_renewal_is_due_70_percent_into_the_time_the_certificate_is_ours(tmp_path):
    identity = stored(tmp_path)  # the CA backdates not_before by a minute
    lifetime = identity.not_after - identity.received
    assert identity.renew_time() == pytest.approx(identity.received + 0.7 * lifetime, abs=1.0)
