"""Authentication and credentials: who a caller is (a bearer token, a certificate the
built-in CA issued, or a caller another replica forwarded), join tokens traded for agent
certificates, API tokens, revocation.

Tokens and revoked certificate serials are cached in memory, and the database is the truth
that several replicas share: a token this replica has not seen is looked up there, a join
token's use is spent there (in a conditional UPDATE), and `start_refresh` reads what other
replicas revoked every REFRESH_INTERVAL. Every change is committed on the writer thread
before it is answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import grpc
from cryptography import x509

from jobplane.replicas import FORWARDED_IDENTITY

from ..domain.limits import MAX_TOKEN_TTL, check_entries, check_text
from ..errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from ..store.records import TokenView
from ..store.security import SecurityStore, token_groups
from .forwarding import decode_identity, forwarded_identity, replica_credentials
from .pki import REPLICA, Authority, identity_of, write_private
from .policy import INSECURE, Caller, Role
from .tokens import TokenKind, hash_secret, new_token, parse, verify

log = logging.getLogger(__name__)

JOIN_TOKEN_TTL = 3600.0
ADMIN_TOKEN_FILE = "admin.token"
CA_BUNDLE_FILE = "ca-bundle.crt"
NAME_MAX = 128
REFRESH_INTERVAL = 0.5  # seconds between reads of what other replicas revoked


@dataclass(frozen=True)
class Issued:
    """A certificate the CA just signed for an agent."""

    certificate_pem: bytes
    ca_bundle_pem: bytes
    expire_time: float
    identity: str


class Access:
    def __init__(self, store: SecurityStore, writer: Executor, authority: Authority | None,
                 *, agent_cert_ttl: float, reader: Executor | None = None) -> None:
        """`writer` commits changes; `reader` (default: the writer) looks up what the cache lacks."""
        self._store = store
        self._writer = writer
        self._reader = reader or writer
        self.authority = authority  # None: --insecure
        self._agent_cert_ttl = agent_cert_ttl
        self._tokens: dict[str, TokenView] = {}
        self._revoked: set[int] = set()
        self._refresher: asyncio.Task | None = None
        self._replica_credentials: dict[str, grpc.ChannelCredentials] = {}

    @property
    def insecure(self) -> bool:
        return self.authority is None

    async def load(self) -> None:
        rows = await self._write(self._store.tokens)
        self._tokens = {row.id: row for row in rows}
        self._revoked = await self._write(self._store.revoked_serials, time.time())

    def start_refresh(self, interval: float = REFRESH_INTERVAL) -> None:
        """Read what other replicas revoked every `interval` seconds, until `stop_refresh`.

        A periodic query rather than a check on each use: one small query a replica makes
        twice a second, instead of a database round trip on every call."""
        if self._refresher is None and not self.insecure:
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_every(interval), name="jobplane-access-refresh")

    def stop_refresh(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None

    async def refresh(self) -> None:
        """Take in the tokens and certificates revoked in the database (by any replica)."""
        tokens, serials = await self._read(self._revocations, time.time())
        for token_id in tokens:
            row = self._tokens.get(token_id)
            if row is not None and not row.revoked:
                self._tokens[token_id] = replace(row, revoked=True)
        self._revoked |= serials  # a union: a revocation made here meanwhile is not lost

    def _revocations(self, now: float) -> tuple[set[str], set[int]]:
        return self._store.revoked_tokens(now), self._store.revoked_serials(now)

    async def _refresh_every(self, interval: float) -> None:
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception as exc:  # the database is away: keep the last known revocations, retry
                if not failing:
                    log.warning("cannot read revoked tokens and certificates from the database (%s); "
                                "retrying every %gs", exc, interval)
                failing = True
            else:
                failing = False

    async def bootstrap(self, data_dir: Path) -> None:
        """First start: an admin API token whose secret is written to DATA_DIR/admin.token (0600)."""
        if self.insecure or any(row.role == Role.ADMIN for row in self._tokens.values()):
            return
        secret, _ = await self.create_token("bootstrap", Role.ADMIN, user="admin")
        write_private(data_dir / ADMIN_TOKEN_FILE, (secret + "\n").encode())
        log.info("created the first admin token in %s", data_dir / ADMIN_TOKEN_FILE)

    # ----- who is calling ------------------------------------------------------------

    async def authenticate(self, metadata: Any, auth_context: dict) -> Caller:
        """The caller an RPC's credentials prove; raises Unauthenticated (ValueError for a
        certificate without a jobplane identity)."""
        if self.insecure:
            return INSECURE
        certificates = auth_context.get("x509_pem_cert") or []
        forwarded = forwarded_identity(metadata)
        if forwarded is not None:
            return self._forwarded_caller(certificates[0] if certificates else None, forwarded)
        if certificates:
            return self._certificate_caller(certificates[0])
        return await self._token_caller(_bearer(metadata))

    def _forwarded_caller(self, pem: bytes | None, forwarded: str) -> Caller:
        """The caller another replica authenticated, believed only from a replica certificate of our CA."""
        if pem is None:
            raise Unauthenticated(f"{FORWARDED_IDENTITY}: only a jobplane-server replica may forward a caller, "
                                  "over the agent (mutual-TLS) address with its replica certificate; "
                                  "drop this metadata and authenticate as yourself")
        role, identity, _ = identity_of(pem)
        if role != REPLICA or not self.authority.issued(pem):
            raise Unauthenticated(f"{FORWARDED_IDENTITY}: the {role} certificate of {identity} is not a replica's, "
                                  "and only a jobplane-server replica may forward a caller; drop this metadata")
        caller = decode_identity(forwarded, forwarded_by=identity)
        if caller.serial and caller.serial in self._revoked:
            raise Unauthenticated(f"the certificate of {caller.identity} was revoked")
        return caller

    def _certificate_caller(self, pem: bytes) -> Caller:
        role, identity, serial = identity_of(pem)
        if serial in self._revoked:
            raise Unauthenticated(f"the certificate of {identity} was revoked")
        if role == REPLICA:
            raise Unauthenticated(f"a replica certificate only carries calls forwarded for a caller "
                                  f"(metadata {FORWARDED_IDENTITY}); it is no caller of its own")
        if role != "agent":
            raise Unauthenticated("client certificates are not accepted yet; use an API token")
        return Caller(identity, Role.AGENT, method="certificate", serial=serial)

    async def _token_caller(self, secret: str) -> Caller:
        row = await self._valid(secret)
        if row.role == Role.AGENT:
            raise Unauthenticated("a join token only enrolls an agent (jobplane-agent --token); "
                                  "API calls need an API token")
        return Caller(row.user, Role(row.role), token_groups(row))

    async def _valid(self, secret: str) -> TokenView:
        """The stored token `secret` is, if it is still good; raises Unauthenticated. A token
        this replica has not seen (another replica created it) is looked up in the database."""
        try:
            _, token_id = parse(secret)
        except ValueError as exc:
            raise Unauthenticated(str(exc)) from None
        row = self._tokens.get(token_id)
        if row is None:
            row = await self._read(self._store.token, token_id)
            if row is not None:
                self._tokens[token_id] = row
        if row is None or not verify(secret, row.secret_hash):
            raise Unauthenticated("unknown token; create one with `jobplane tokens create`")
        _check_live(row)
        return row

    # ----- tokens --------------------------------------------------------------------

    async def create_token(self, creator: str, role: Role, *, user: str = "", groups: tuple[str, ...] = (),
                           ttl: float = 0.0, uses: int = 0, name_prefix: str = "") -> tuple[str, TokenView]:
        """(secret, stored row) of a new token; defaults: join tokens 1 use, 1 hour."""
        agent = role == Role.AGENT
        _check_token_fields(agent, user, groups, ttl, uses, name_prefix)
        secret, token_id = new_token(TokenKind.AGENT if agent else TokenKind.USER)
        now = time.time()
        ttl = ttl or (JOIN_TOKEN_TTL if agent else 0.0)
        row = {"id": token_id, "secret_hash": hash_secret(secret), "role": int(role), "user": user,
               "groups": json.dumps(list(groups)), "name_prefix": name_prefix, "create_time": now,
               "expire_time": now + ttl if ttl else None, "uses_left": uses or (1 if agent else -1),
               "revoked": 0, "created_by": creator}
        stored = await self._write(self._store.add_token, row)
        self._tokens[token_id] = stored
        return secret, stored

    async def tokens(self) -> list[TokenView]:
        """Every token, newest first, as the database has them (other replicas may have made some)."""
        return await self._read(self._store.tokens)

    async def revoke_token(self, token_id: str) -> TokenView:
        row = await self._write(self._store.revoke_token, token_id)
        if row is None:
            raise NotFound(f"token {token_id!r} not found; `jobplane tokens list` shows them")
        self._tokens[token_id] = row
        return row

    # ----- certificates --------------------------------------------------------------

    async def enroll(self, secret: str, name: str, csr_pem: bytes,
                     admit: Callable[[str], None] | None = None) -> Issued:
        """Spend one use of a join token on a certificate for provider `name`; `admit(name)`
        may refuse the name (raises) once the token is known good, before the use is spent."""
        authority = self._require_authority()
        row = await self._valid(secret)
        if row.role != Role.AGENT:
            raise PermissionDenied("only a join token (jobplane tokens create --role agent) enrolls an agent")
        if not name or len(name) > NAME_MAX or not name.startswith(row.name_prefix):
            raise PermissionDenied(f"provider name {name!r} is not allowed by this token; "
                                   f"it must start with {row.name_prefix!r}")
        if admit is not None:
            admit(name)
        used = await self._write(self._store.use_token, row.id, time.time())
        if used is None:  # spent, revoked or expired, maybe by another replica: say which
            stored = await self._read(self._store.token, row.id)
            if stored is not None:
                self._tokens[row.id] = stored
                _check_live(stored)
            raise Unauthenticated(f"token {row.id} has no uses left; create a new one")
        self._tokens[row.id] = used
        return await self._issue(authority, name, csr_pem)

    async def renew(self, caller: Caller, csr_pem: bytes) -> Issued:
        return await self._issue(self._require_authority(), caller.identity, csr_pem)

    async def _issue(self, authority: Authority, name: str, csr_pem: bytes) -> Issued:
        try:
            pem = authority.sign_csr(csr_pem, identity=name, role="agent",
                                     lifetime=timedelta(seconds=self._agent_cert_ttl))
        except ValueError as exc:
            raise InvalidArgument("csr_pem", str(exc)) from None
        cert = x509.load_pem_x509_certificate(pem)
        not_after = cert.not_valid_after_utc.timestamp()
        await self._write(self._store.add_certificate, cert.serial_number, name, int(Role.AGENT), not_after)
        return Issued(pem, authority.trust_bundle(), not_after, name)

    async def revoke_identity(self, identity: str) -> None:
        """Refuse every certificate issued to `identity` from now on."""
        self._revoked |= set(await self._write(self._store.revoke_certificates, identity))

    def replica_channel_credentials(self, replica_id: str) -> grpc.ChannelCredentials | None:
        """Credentials for this replica's channel to another replica's agent (mutual-TLS) address,
        presenting a replica certificate for `replica_id`; None with --insecure (use a plaintext
        channel). Made once per id; the certificate lives as long as a server certificate."""
        if self.authority is None:
            return None
        credentials = self._replica_credentials.get(replica_id)
        if credentials is None:
            credentials = self._replica_credentials[replica_id] = replica_credentials(self.authority, replica_id)
        return credentials

    def _require_authority(self) -> Authority:
        if self.authority is None:
            raise PermissionDenied("this server runs with --insecure: there are no certificates to issue")
        return self.authority

    async def _write(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def _read(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, *args)


def _check_live(row: TokenView) -> None:
    """Raise Unauthenticated if the token was revoked or has expired."""
    if row.revoked:
        raise Unauthenticated(f"token {row.id} was revoked")
    if row.expire_time is not None and row.expire_time <= time.time():
        raise Unauthenticated(f"token {row.id} has expired; create a new one")


def _check_token_fields(agent: bool, user: str, groups: tuple[str, ...], ttl: float, uses: int,
                        name_prefix: str) -> None:
    if not agent and not user:
        raise InvalidArgument("user", "API tokens act as a user; name one (e.g. --user alice)")
    if not math.isfinite(ttl) or not 0 <= ttl <= MAX_TOKEN_TTL:
        raise InvalidArgument("ttl_seconds", f"must be a number of seconds >= 0 and at most {MAX_TOKEN_TTL:.0f} "
                                             f"(10 years; 0 = {'1 hour' if agent else 'no expiry'}), got {ttl}")
    if not agent and uses:
        raise InvalidArgument("uses", "only join tokens (role agent) have a use count; an API token works until "
                                      "it expires (ttl_seconds) or is revoked: leave it out")
    if uses < -1:
        raise InvalidArgument("uses", f"must be a number of uses, 0 for one or -1 for no limit; got {uses}")
    check_text("user", user, NAME_MAX)
    check_text("name_prefix", name_prefix, NAME_MAX)
    check_entries("groups", groups, 100)
    for i, group in enumerate(groups):
        check_text(f"groups[{i}]", group, NAME_MAX)


def _bearer(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthenticated("the authorization metadata must read `Bearer <token>`")
    raise Unauthenticated("no credentials: pass an API token (--token, JOBPLANE_TOKEN) over TLS; "
                          "`jobplane tokens create` makes one")
