"""What `Client` and `AsyncClient` share for SecurityService: roles by the names users type
(`admin`, `viewer`, ...) and the request that creates a token."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from jobplane.v1 import security_pb2

ROLES: dict[str, int] = {
    "admin": security_pb2.ROLE_ADMIN,
    "operator": security_pb2.ROLE_OPERATOR,
    "submitter": security_pb2.ROLE_SUBMITTER,
    "viewer": security_pb2.ROLE_VIEWER,
    "agent": security_pb2.ROLE_AGENT,
}
_NAMES = {value: name for name, value in ROLES.items()}


def parse_role(role: str | int) -> int:
    """The Role value of `role`: a name (any case, `ROLE_` prefix optional) or a Role value.

    Raises ValueError naming the roles there are.
    """
    if isinstance(role, int) and role in _NAMES:
        return role
    name = str(role).strip().lower().removeprefix("role_")
    if name not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of: {', '.join(ROLES)}")
    return ROLES[name]


def role_name(value: int) -> str:
    """`admin` for ROLE_ADMIN; "-" for ROLE_UNSPECIFIED, the number for a value newer than this client."""
    if value == security_pb2.ROLE_UNSPECIFIED:
        return "-"
    return _NAMES.get(value, str(value))


def token_request(
    role: str | int,
    *,
    user: str = "",
    groups: Iterable[str] = (),
    ttl: float | timedelta = 0,
    uses: int = 0,
    name_prefix: str = "",
) -> security_pb2.CreateTokenRequest:
    """A CreateToken request; raises ValueError for an unknown role or a negative ttl or use count."""
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if seconds < 0 or uses < 0:
        raise ValueError("ttl and uses must be >= 0 (0 takes the server's default)")
    if isinstance(groups, str):
        groups = [groups]  # one group, not its letters
    return security_pb2.CreateTokenRequest(role=parse_role(role), user=user, groups=list(groups),
                                           ttl_seconds=seconds, uses=uses, name_prefix=name_prefix)
