"""PolicyService: the normalization policies (default, group, user), their versions, and a
dry run of how raw values map for a user. What is in force lives in policy_book.PolicyBook."""

from __future__ import annotations

from google.protobuf import json_format

from jobplane.v1 import policy_pb2, policy_pb2_grpc

from ..domain.policies import DEFAULT_NAME, PROPERTIES, STATUS, normalize
from ..domain.query import page_of
from ..errors import InvalidArgument, PermissionDenied
from ..security.policy import Caller, Role, current_caller
from .base import Deps, page_size, rpc
from .policy_book import DEFAULT, SCOPE_WORD, USER, PolicyBook, Version, describe

__all__ = ["PolicyBook", "PolicyService"]


class PolicyService(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self, book: PolicyBook, deps: Deps) -> None:
        self._book = book
        self._deps = deps  # its core is the leader's, of the term

    async def _announce(self, version: Version) -> None:
        """A POLICY event, so watchers know statuses may read differently from now on; a new
        default policy also goes to the engine, where it decides how tasks end from now on."""
        by = current_caller.get().identity
        default = version.policy if version.scope == DEFAULT else None
        await self._deps.core.call(lambda engine: engine.policy_changed(
            SCOPE_WORD[version.scope], version.name, version.number, by, version.deleted, default))

    @rpc
    async def GetPolicy(self, request, context):
        version = await self._book.version(request.scope, _name(request), request.version)
        return policy_pb2.GetPolicyResponse(policy=version.message())

    @rpc
    async def ListPolicies(self, request, context):
        size = page_size(request.page_size)
        page = page_of([version.message() for version in self._book.all()], request.page_token, size)
        return policy_pb2.ListPoliciesResponse(policies=page.items, next_page_token=page.next_page_token)

    @rpc
    async def ListPolicyVersions(self, request, context):
        size = page_size(request.page_size)
        versions = await self._book.versions(request.scope, _name(request))
        page = page_of([version.message() for version in versions], request.page_token, size)
        return policy_pb2.ListPolicyVersionsResponse(policies=page.items, next_page_token=page.next_page_token)

    @rpc
    async def SetPolicy(self, request, context):
        name = _name(request)
        _may_change(current_caller.get(), request.scope, name)
        document = json_format.MessageToDict(request.document)
        version = await self._book.set(request.scope, name, document, current_caller.get().identity)
        await self._announce(version)
        return policy_pb2.SetPolicyResponse(policy=version.message())

    @rpc
    async def DeletePolicy(self, request, context):
        name = _name(request)
        _may_change(current_caller.get(), request.scope, name)
        await self._announce(await self._book.delete(request.scope, name, current_caller.get().identity))
        return policy_pb2.DeletePolicyResponse()

    @rpc
    async def TestPolicy(self, request, context):
        caller = current_caller.get()
        user_name = request.user or caller.identity
        groups = tuple(request.groups) if request.groups or request.user else caller.groups
        user, group_policies = self._book.for_caller(user_name, groups)
        raw, default = dict(request.raw), self._book.default

        def decide(prop: str):
            return normalize(request.environment, raw, user=user, groups=group_policies, default=default,
                             property_name=prop)

        decision = decide(STATUS)
        properties = [policy_pb2.NormalizedProperty(name=prop, value=d.value, **_decided_by(d))
                      for prop, d in ((prop, decide(prop)) for prop in PROPERTIES if prop != STATUS)]
        return policy_pb2.TestPolicyResponse(status=int(decision.status), properties=properties,
                                             **_decided_by(decision))


def _decided_by(decision) -> dict:
    """policy ("user alice", "group ops", "default"; "" when none matched), rule_index (-1) and reason."""
    level = decision.reason.split(" policy ", 1)[0] if decision.policy else ""
    label = "default" if level == "default" else f"{level} {decision.policy}" if level else ""
    return {"policy": label, "rule_index": -1 if decision.rule_index is None else decision.rule_index,
            "reason": decision.reason}

def _name(request) -> str:
    """The policy's name: the group's or user's; "default" (or nothing) for the default policy."""
    if request.scope not in SCOPE_WORD:
        raise InvalidArgument("scope", "must be POLICY_SCOPE_DEFAULT, POLICY_SCOPE_GROUP or POLICY_SCOPE_USER")
    if request.scope == DEFAULT:
        if request.name not in ("", DEFAULT_NAME):
            raise InvalidArgument("name", f"the default policy is named {DEFAULT_NAME!r}; leave name empty")
        return DEFAULT_NAME
    if not request.name:
        raise InvalidArgument("name", "name the group or user the policy is for")
    return request.name


def _may_change(caller: Caller, scope: int, name: str) -> None:
    """Operators and admins change any policy; others only their own user policy."""
    if caller.role in (Role.ADMIN, Role.OPERATOR) or caller.method == "insecure":
        return
    if scope == USER and name == caller.identity:
        return
    raise PermissionDenied(f"changing {describe(scope, name)} needs the role operator or admin; "
                           f"{caller.identity} may change only its own user policy")

