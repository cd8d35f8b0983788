"""The SDK's security (tokens, audit, authority, identity) and server calls, defined once as every call in calls.py is and bound by both clients."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from operator import attrgetter

from jobplane.client.calls import Paged, Unary, itself
from jobplane.client.security import token_request
from jobplane.v1 import security_pb2, security_pb2_grpc, server_pb2, server_pb2_grpc

SECURITY = security_pb2_grpc.SecurityServiceStub
SERVERS = server_pb2_grpc.ServerServiceStub


# Security


def create_token(role: str | int, *, user: str = "", groups: Iterable[str] = (), ttl: float | timedelta = 0,
                 uses: int = 0, name_prefix: str = "") -> Unary[security_pb2.CreateTokenResponse]:
    """Admin: a join token (role "agent") or an API token (other roles; needs `user`).

    `ttl`/`uses` 0 take the server's defaults (join tokens: 1 hour, one use; API tokens: no
    limit). The response holds the secret, which the server never shows again.
    Raises ValueError for an unknown role.
    """
    request = token_request(role, user=user, groups=groups, ttl=ttl, uses=uses, name_prefix=name_prefix)
    return Unary(SECURITY, "CreateToken", request, itself)


def list_tokens(*, page_size: int = 100) -> Paged[security_pb2.Token]:
    """Admin: every token, with what it may do and how long it lasts (never its secret)."""
    return Paged(SECURITY, "ListTokens", security_pb2.ListTokensRequest(page_size=page_size), "tokens")


def revoke_token(token_id: str) -> Unary[security_pb2.Token]:
    """Admin: the token stops working now."""
    return Unary(SECURITY, "RevokeToken", security_pb2.RevokeTokenRequest(token_id=token_id), attrgetter("token"),
                 idempotent=True)


def list_audit_records(*, filter: str = "", page_size: int = 100) -> Paged[security_pb2.AuditRecord]:
    """Admin: mutating calls, newest first, matching `filter` (e.g. `identity=alice code=OK`)."""
    request = security_pb2.ListAuditRecordsRequest(filter=filter, page_size=page_size)
    return Paged(SECURITY, "ListAuditRecords", request, "records")


def get_authority() -> Unary[security_pb2.GetAuthorityResponse]:
    """The CA bundle agents and clients should trust, with its subject, fingerprint and validity."""
    return Unary(SECURITY, "GetAuthority", security_pb2.GetAuthorityRequest(), itself, idempotent=True)


def whoami() -> Unary[security_pb2.WhoAmIResponse]:
    """Who the server takes this client for: identity, role, groups, and how it authenticated."""
    return Unary(SECURITY, "WhoAmI", security_pb2.WhoAmIRequest(), itself, idempotent=True)


# Servers


def list_servers() -> Unary[server_pb2.ListServersResponse]:
    """The server replicas that share the database, the leader first, and which one answered.
    A server that predates replicas answers UNIMPLEMENTED (a JobplaneError with that code)."""
    return Unary(SERVERS, "ListServers", server_pb2.ListServersRequest(), itself, idempotent=True)
