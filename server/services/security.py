"""SecurityService: enrollment and certificate renewal, tokens, the audit log, the CA."""

from __future__ import annotations

from jobplane.v1 import security_pb2, security_pb2_grpc

from ..domain.query import page_of
from ..domain.model import ProviderState
from ..errors import AlreadyExists, InvalidArgument, PermissionDenied
from ..security.access import Access, Issued
from ..security.policy import Role, current_caller
from ..store.records import AuditView, TokenView
from ..store.security import SecurityStore
from . import convert
from .base import Deps, page_size, rpc


class SecurityService(security_pb2_grpc.SecurityServiceServicer):
    def __init__(self, deps: Deps, access: Access, store: SecurityStore | None, agent_port: int) -> None:
        """`store`: not used (the audit log is read through deps.reads); kept for the caller."""
        self.d = deps
        self._access = access
        self._agent_port = agent_port

    @rpc
    async def Enroll(self, request, context):
        if not request.token:
            raise InvalidArgument("token", "pass the join token `jobplane tokens create --role agent` printed")
        issued = await self._access.enroll(request.token, request.name, request.csr_pem, admit=self._may_enroll)
        return security_pb2.EnrollResponse(
            provider_id=issued.identity, certificate_pem=issued.certificate_pem, ca_bundle_pem=issued.ca_bundle_pem,
            expire_time=convert.ts(issued.expire_time), agent_port=self._agent_port)

    def _may_enroll(self, name: str) -> None:
        """Whether provider `name` may enroll now: asked once its token is known good, before a
        use of it is spent (a caller without one learns nothing of the name)."""
        known = self.d.core.provider_view(name)
        if known is not None and known.state == ProviderState.REVOKED:
            raise PermissionDenied(f"provider {name!r} was revoked and may not enroll again (a revoke "
                                   "is not undone): run this agent under another --name")
        if known is not None and known.connected:
            raise AlreadyExists(f"provider {name!r} is connected; give this agent another --name")

    @rpc
    async def RenewCertificate(self, request, context):
        issued = await self._access.renew(current_caller.get(), request.csr_pem)
        return security_pb2.RenewCertificateResponse(**_certificate(issued))

    @rpc
    async def CreateToken(self, request, context):
        if request.role not in Role._value2member_map_:
            raise InvalidArgument("role", "must be ROLE_ADMIN, ROLE_OPERATOR, ROLE_SUBMITTER, ROLE_VIEWER or ROLE_AGENT")
        secret, row = await self._access.create_token(
            current_caller.get().identity, Role(request.role), user=request.user, groups=tuple(request.groups),
            ttl=request.ttl_seconds, uses=request.uses, name_prefix=request.name_prefix)
        return security_pb2.CreateTokenResponse(token=token_to_proto(row), secret=secret)

    @rpc
    async def ListTokens(self, request, context):
        page = page_of(await self._access.tokens(), request.page_token, page_size(request.page_size))
        return security_pb2.ListTokensResponse(tokens=[token_to_proto(t) for t in page.items],
                                               next_page_token=page.next_page_token)

    @rpc
    async def RevokeToken(self, request, context):
        row = await self._access.revoke_token(request.token_id)
        return security_pb2.RevokeTokenResponse(token=token_to_proto(row))

    @rpc
    async def ListAuditRecords(self, request, context):
        page = await self.d.read(self.d.reads.list_audit, request.filter, request.page_token,
                                 page_size(request.page_size))
        return security_pb2.ListAuditRecordsResponse(records=[audit_to_proto(r) for r in page.items],
                                                     next_page_token=page.next_page_token)

    @rpc
    async def GetAuthority(self, request, context):
        authority = self._access.authority
        if authority is None:
            return security_pb2.GetAuthorityResponse(subject="none: the server runs with --insecure")
        cert = authority.cert
        return security_pb2.GetAuthorityResponse(
            ca_bundle_pem=authority.trust_bundle(), subject=cert.subject.rfc4514_string(),
            fingerprint=authority.fingerprint(), not_before=convert.ts(cert.not_valid_before_utc.timestamp()),
            not_after=convert.ts(cert.not_valid_after_utc.timestamp()))

    @rpc
    async def WhoAmI(self, request, context):
        caller = current_caller.get()
        return security_pb2.WhoAmIResponse(identity=caller.identity, role=int(caller.role),
                                           groups=list(caller.groups), method=caller.method)


def _certificate(issued: Issued) -> dict:
    return {"certificate_pem": issued.certificate_pem, "ca_bundle_pem": issued.ca_bundle_pem,
            "expire_time": convert.ts(issued.expire_time)}


def token_to_proto(t: TokenView) -> security_pb2.Token:
    """A stored token as listed. Uses count only for join tokens: an API token stored with a use
    count by an older server lists as unlimited, which is how it is treated."""
    return security_pb2.Token(
        id=t.id, role=t.role, user=t.user, groups=list(t.groups), name_prefix=t.name_prefix,
        create_time=convert.ts(t.create_time), expire_time=convert.ts(t.expire_time),
        uses_left=t.uses_left if t.role == Role.AGENT else -1, revoked=t.revoked, created_by=t.created_by)


def audit_to_proto(a: AuditView) -> security_pb2.AuditRecord:
    return security_pb2.AuditRecord(id=a.id, time=convert.ts(a.time), identity=a.identity, role=a.role,
                                    method=a.method, target=a.target, code=a.code, message=a.message)
