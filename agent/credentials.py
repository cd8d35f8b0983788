"""How the link reaches the server: plaintext (`--insecure`), or mutual TLS with a certificate
this agent enrolled for with a join token and keeps renewed.

Enrollment goes to the server's main address over server-authenticated TLS (trusting `--ca`);
the certificate it returns opens the agent address (`agent_port` on the same host), where the
link streams and where renewals go, authenticated by the current certificate. Given several
replicas, each try goes to the next address, and `targets` lists every replica's agent address
(identity.py says how it is found) for the link to find the leader among them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import grpc

from jobplane.connect import CHANNEL_OPTIONS
from jobplane.replicas import split_addresses
from .config import AgentConfig
from .errors import AgentError, EnrollmentRefused, NotEnrolled
from .identity import Identity, IdentityStore
from .replicas import Targets
from .statedir import state_root

if TYPE_CHECKING:  # loaded to enroll or renew, not by an agent that only streams
    from jobplane.v1 import security_pb2

log = logging.getLogger(__name__)

T = TypeVar("T")

RPC_TIMEOUT = 10.0
RETRY_FIRST = 0.2
RETRY_CAP = 30.0
# The next key is made this long before its renewal is due (a child process makes it in well
# under a second): not at each start, and never on the renewal's clock.
KEY_LEAD = 60.0
IDENTITY_DIR = "identity"
ENROLL_HINT = "pass --token (from `jobplane tokens create --role agent`) and --ca"
# Enroll errors that waiting cures: the server is not up yet, or it rate-limits enrollments.
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.DEADLINE_EXCEEDED}
# TLS failures that look like UNAVAILABLE but never go away: a wrong CA, a plaintext server.
_WRONG_CA, _NO_TLS = "CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER"
# RenewCertificate errors that waiting does not cure: the certificate is refused (revoked).
_REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


class CertificateLost(AgentError):
    """The certificate was refused renewal, or expired, and the agent cannot enroll again."""


def identity_dir(config: AgentConfig) -> Path:
    """Where the agent keeps its key and certificate: `<state_dir>/identity`."""
    return Path(state_root(config)) / IDENTITY_DIR


def open_credentials(config: AgentConfig) -> Plaintext | MutualTLS:
    """The credentials the configuration asks for."""
    if config.insecure:
        return Plaintext(config.server)
    return MutualTLS(config, IdentityStore(identity_dir(config)))


Options = list[tuple[str, int]]


class Plaintext:
    """No TLS and no identity: for servers started with --insecure (where the agent address of
    each replica is its only address)."""

    generation = 0

    def __init__(self, server: str) -> None:
        self._server = server
        self.targets = Targets(split_addresses(server))

    async def ready(self) -> None:
        log.warning("connecting to %s in plaintext (--insecure): nothing is encrypted and the "
                    "server cannot tell this agent from an impostor", self._server)

    def open_channel(self, target: str, options: Options = CHANNEL_OPTIONS) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(target, options=options)

    async def changed(self, generation: int) -> None:
        await asyncio.Event().wait()  # plaintext never changes

    async def keep_renewed(self) -> None:
        return


class MutualTLS:
    """A certificate for the agent's name: the stored one, else one enrolled for; kept renewed."""

    def __init__(self, config: AgentConfig, store: IdentityStore) -> None:
        self._config = config
        self._store = store
        self._identity: Identity | None = None
        self._targets: Targets | None = None
        # Bumped by every renewal; `changed` waiters wake on `_changed`, then replaced.
        self.generation = 0
        self._changed = asyncio.Event()

    @property
    def targets(self) -> Targets:
        """The replicas' agent addresses, the link's current one first; `ready()` first."""
        if self._targets is None:
            raise RuntimeError("MutualTLS.ready() has not obtained an identity yet")
        return self._targets

    @property
    def identity(self) -> Identity:
        """The current identity; `ready()` first."""
        if self._identity is None:
            raise RuntimeError("MutualTLS.ready() has not obtained an identity yet")
        return self._identity

    async def ready(self) -> None:
        """Reuse the stored identity if it is still good, else enroll; raises AgentError."""
        stored = self._store.load()
        why = self._unusable(stored)
        if why is None:
            assert stored is not None
            log.info("using the stored certificate of %s (valid until %s)", stored.name,
                     _when(stored.not_after))
            self._identity = stored
        elif not self._config.token:
            raise NotEnrolled(f"{why}: {ENROLL_HINT}")
        else:
            log.info("%s: enrolling with %s", why, self._config.server)
            self._identity = await self._enroll(self._first_contact_ca(stored))
        servers = split_addresses(self._config.server)
        self._targets = Targets(list(dict.fromkeys(self.identity.agent_address(s) for s in servers)))

    def open_channel(self, target: str, options: Options = CHANNEL_OPTIONS) -> grpc.aio.Channel:
        """A mutual-TLS channel to the agent address `target` with the current certificate."""
        return grpc.aio.secure_channel(target, self.identity.channel_credentials(), options=options)

    async def changed(self, generation: int) -> None:
        """Return once the credentials are newer than `generation`."""
        while self.generation == generation:
            await self._changed.wait()

    async def keep_renewed(self) -> None:
        """Renew at ~70% of each certificate's life, retrying until it expires; logs, never raises."""
        try:
            while True:
                identity = self.identity
                renew_at = identity.renew_time()
                await asyncio.sleep(max(0.0, renew_at - KEY_LEAD - time.time()))
                key_and_csr = await new_key_and_csr(identity.name)
                await asyncio.sleep(max(0.0, renew_at - time.time()))
                self._publish(await self._renewed(identity, key_and_csr))
        except AgentError as exc:
            log.error("%s", exc)
        except Exception:  # a bug, or the disk: say so loudly rather than expire silently
            log.exception("renewing the certificate of %s failed; it will not be renewed again",
                          self._config.name)

    def _unusable(self, stored: Identity | None) -> str | None:
        """Why the stored identity cannot be used, or None if it can."""
        config = self._config
        if stored is None:
            return "this agent is not enrolled yet"
        if stored.name != config.name or stored.server not in split_addresses(config.server):
            return (f"the stored certificate is for {stored.name!r} at {stored.server}, "
                    f"not {config.name!r} at {config.server}")
        if stored.expired():
            return f"the stored certificate of {stored.name!r} expired at {_when(stored.not_after)}"
        return None

    def _first_contact_ca(self, stored: Identity | None) -> bytes:
        """The CA bundle that verifies the main address: --ca, else the one stored for this server."""
        if self._config.ca_file:
            try:
                return Path(self._config.ca_file).read_bytes()
            except OSError as exc:
                raise NotEnrolled(f"cannot read the CA bundle --ca {self._config.ca_file}: "
                                  f"{exc.strerror}") from None
        if stored is not None and stored.server in split_addresses(self._config.server):
            return stored.ca_pem
        raise NotEnrolled("enrolling needs the CA that signed the server's certificate: pass --ca "
                          "PATH (the server's DATA_DIR/ca-bundle.crt) or set JOBPLANE_CA")

    async def _enroll(self, ca_pem: bytes) -> Identity:
        """Trade the join token and a new key's CSR for a certificate, and store them. Each try
        goes to the next replica listed."""
        config = self._config
        from jobplane.v1 import security_pb2

        key_pem, csr_pem = await new_key_and_csr(config.name)
        request = security_pb2.EnrollRequest(token=config.token, name=config.name, csr_pem=csr_pem)
        credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
        servers = itertools.cycle(split_addresses(config.server))
        try:
            server, response = await _retrying(lambda: _enroll_at(next(servers), credentials, request),
                                               f"enroll with {config.server}", retry=_enroll_transient)
        except grpc.aio.AioRpcError as exc:
            raise EnrollmentRefused(_refusal(config, exc)) from None
        if response.agent_port <= 0:
            raise EnrollmentRefused(f"the server at {server} enrolled this agent but did "
                                    "not say its agent port; is it a jobplane server?")
        identity = Identity(name=config.name, server=server, agent_port=response.agent_port,
                            key_pem=key_pem, cert_pem=response.certificate_pem,
                            ca_pem=response.ca_bundle_pem or ca_pem, received=time.time())
        await asyncio.to_thread(self._store.save, identity)
        log.info("enrolled with %s as %s; the certificate is valid until %s", server,
                 config.name, _when(identity.not_after))
        return identity

    async def _renewed(self, identity: Identity, key_and_csr: tuple[bytes, bytes]) -> Identity:
        """A renewed identity; enrolls again with the token if the certificate expired first."""
        try:
            return await self._renew(identity, key_and_csr)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSED:
                raise CertificateLost(
                    f"the server refused to renew the certificate of agent {identity.name!r} "
                    f"({exc.code().name}: {exc.details()}); it may have been revoked") from None
            log.error("could not renew the certificate of agent %r before it expired at %s (%s: %s)",
                      identity.name, _when(identity.not_after), exc.code().name, exc.details())
        if not self._config.token:
            raise CertificateLost(
                f"the certificate of agent {identity.name!r} expired at {_when(identity.not_after)}; "
                "the server refuses it from now on, and enrolling again needs a join token: restart "
                "the agent with --token (from `jobplane tokens create --role agent`)")
        return await self._enroll(self._first_contact_ca(identity))

    async def _renew(self, identity: Identity, key_and_csr: tuple[bytes, bytes]) -> Identity:
        """RenewCertificate for the new key and CSR `key_and_csr`, on the agent address the link
        uses (then the other replicas', in turn), retried until the certificate expires."""
        from jobplane.v1 import security_pb2

        key_pem, csr_pem = key_and_csr
        request = security_pb2.RenewCertificateRequest(csr_pem=csr_pem)
        targets = itertools.cycle(self.targets.in_order())
        _, response = await _retrying(
            lambda: _renew_at(next(targets), identity, request), "renew the certificate",
            retry=lambda exc: exc.code() not in _REFUSED, until=identity.not_after)
        renewed = identity.renewed(key_pem, response.certificate_pem, response.ca_bundle_pem)
        await asyncio.to_thread(self._store.save_renewal, renewed)
        log.info("renewed the certificate of %s; valid until %s", renewed.name,
                 _when(renewed.not_after))
        return renewed

    def _publish(self, identity: Identity) -> None:
        self._identity = identity
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()


async def new_key_and_csr(name: str) -> tuple[bytes, bytes]:
    """(private key PEM, CSR PEM) for a new key, made by `python -m jobplane.agent.keygen` in a
    child process, so that the agent does not load the cryptography package (keygen.py)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobplane.agent.keygen", name,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await child.communicate()
    except BaseException:  # cancelled (the agent stops): leave no child behind
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        raise
    key_pem, csr_begins, csr = out.partition(b"-----BEGIN CERTIFICATE REQUEST-----")
    if child.returncode != 0 or not csr_begins:
        raise AgentError(f"cannot make a key for the certificate of {name!r} (python -m "
                         f"jobplane.agent.keygen exited with {child.returncode}): "
                         f"{err.decode(errors='replace').strip()}")
    return key_pem, csr_begins + csr


async def _retrying(call: Callable[[], Awaitable[T]], what: str, *,
                    retry: Callable[[grpc.aio.AioRpcError], bool], until: float | None = None) -> T:
    """`call()`, again after growing pauses while `retry(error)` holds; past `until` the last error."""
    delay, failures = RETRY_FIRST, 0
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            remaining = float("inf") if until is None else until - time.time()
            if not retry(exc) or remaining <= 0:
                raise
            failures += 1
            log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                    "cannot %s (%s: %s); retrying", what, exc.code().name, exc.details())
        await asyncio.sleep(min(delay, max(remaining / 4, RETRY_FIRST)))
        delay = min(delay * 2, RETRY_CAP)


async def _enroll_at(server: str, credentials: grpc.ChannelCredentials,
                     request: security_pb2.EnrollRequest) -> tuple[str, security_pb2.EnrollResponse]:
    """(`server`, its answer to Enroll) over server-authenticated TLS."""
    from jobplane.v1 import security_pb2_grpc

    async with grpc.aio.secure_channel(server, credentials, options=CHANNEL_OPTIONS) as channel:
        stub = security_pb2_grpc.SecurityServiceStub(channel)
        return server, await stub.Enroll(request, timeout=RPC_TIMEOUT)


async def _renew_at(target: str, identity: Identity, request: security_pb2.RenewCertificateRequest
                    ) -> tuple[str, security_pb2.RenewCertificateResponse]:
    """(`target`, its answer to RenewCertificate) over mutual TLS with the current certificate."""
    from jobplane.v1 import security_pb2_grpc

    async with grpc.aio.secure_channel(target, identity.channel_credentials(), options=CHANNEL_OPTIONS) as channel:
        stub = security_pb2_grpc.SecurityServiceStub(channel)
        return target, await stub.RenewCertificate(request, timeout=RPC_TIMEOUT)


def _enroll_transient(exc: grpc.aio.AioRpcError) -> bool:
    details = exc.details() or ""
    return exc.code() in _TRANSIENT and _WRONG_CA not in details and _NO_TLS not in details


def _refusal(config: AgentConfig, exc: grpc.aio.AioRpcError) -> str:
    """What went wrong with an enrollment, and what to do about it."""
    details, server = exc.details() or "", config.server
    if _WRONG_CA in details:
        return (f"the certificate of the server at {server} is not signed by the CA bundle "
                f"{config.ca_file or '(stored)'}: pass that server's CA with --ca (its "
                "DATA_DIR/ca-bundle.crt)")
    if _NO_TLS in details:
        return (f"the server at {server} does not speak TLS; if it runs with --insecure, "
                "start this agent with --insecure too")
    hint = {
        grpc.StatusCode.UNAUTHENTICATED:
            "create a new join token with `jobplane tokens create --role agent` and pass it with --token",
        grpc.StatusCode.PERMISSION_DENIED: "use a --name the token allows, or another token",
    }.get(exc.code(), "check the server's log")
    return (f"the server at {server} refused to enroll agent {config.name!r} "
            f"({exc.code().name}: {details}); {hint}")


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
