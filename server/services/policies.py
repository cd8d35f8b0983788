"""PolicyService, and the policies in force: which normalized status each caller sees.

Policies are few and small, so they are cached in memory (one server per database); every
change is a new version row, committed on the writer thread before it is answered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from google.protobuf import json_format

from jobplane.v1 import event_pb2, policy_pb2, policy_pb2_grpc

from ..domain.model import Status
from ..domain.policies import (
    DEFAULT_POLICY, Policy, is_decision_reason, normalize, parse_policy, policy_to_dict, redecide, renormalize)
from ..domain.query import page_of
from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..security.policy import Caller, Role, current_caller
from ..store.records import PolicyVersion
from ..store.security import PolicyStore
from . import convert
from .base import Deps, page_size, rpc

DEFAULT, GROUP, USER = policy_pb2.POLICY_SCOPE_DEFAULT, policy_pb2.POLICY_SCOPE_GROUP, policy_pb2.POLICY_SCOPE_USER
SCOPE_WORD = {GROUP: "group", USER: "user"}


class PolicyBook:
    """The group and user policies in force, by (scope, name): (policy, its stored version)."""

    def __init__(self, store: PolicyStore, writer: ThreadPoolExecutor) -> None:
        self._store = store
        self._writer = writer
        self._policies: dict[tuple[int, str], tuple[Policy, PolicyVersion]] = {}

    async def load(self) -> None:
        versions = await self._write(self._store.current)
        self._policies = {(v.scope, v.name): (_parse(v.name, json.loads(v.document)), v) for v in versions}

    def get(self, scope: int, name: str) -> tuple[Policy, PolicyVersion] | None:
        return self._policies.get((scope, name))

    def all(self) -> list[tuple[Policy, PolicyVersion]]:
        return [self._policies[key] for key in sorted(self._policies)]

    async def set(self, scope: int, name: str, document: dict, by: str) -> tuple[Policy, PolicyVersion]:
        policy = _parse(name, document)  # validates before anything is stored
        text = json.dumps({"rules": policy_to_dict(policy)["rules"]}, sort_keys=True)
        version = await self._write(self._store.add_version, scope, name, text, time.time(), by, False)
        self._policies[(scope, name)] = (policy, version)
        return policy, version

    async def delete(self, scope: int, name: str, by: str) -> int:
        """Returns the version that records the deletion."""
        if (scope, name) not in self._policies:
            raise NotFound(f"no {SCOPE_WORD[scope]} policy {name!r}; `jobplane policy list` shows them")
        version = await self._write(self._store.add_version, scope, name, "{}", time.time(), by, True)
        del self._policies[(scope, name)]
        return version.version

    def for_caller(self, user: str, groups: tuple[str, ...]) -> tuple[Policy | None, list[Policy]]:
        found = self._policies.get((USER, user))
        return (found[0] if found else None,
                [self._policies[(GROUP, g)][0] for g in groups if (GROUP, g) in self._policies])

    def status_of(self, caller: Caller) -> convert.StatusOf | None:
        """The caller's normalization of (environment, raw properties, stored status), or
        None when the default policy is all it has (the stored status is then right)."""
        user, groups = self.for_caller(caller.identity, caller.groups)
        if user is None and not groups:
            return None
        return lambda environment, raw, stored: renormalize(environment, raw, Status(stored), user=user, groups=groups)

    def normalizer(self, caller: Caller) -> Callable[[event_pb2.Event], None] | None:
        """What re-normalizes events for this caller, or None when the default is all it has.
        An event whose message says which rule decided says it for the caller's own decision."""
        user, groups = self.for_caller(caller.identity, caller.groups)
        if user is None and not groups:
            return None

        def apply(event: event_pb2.Event) -> None:
            if not event.environment:
                return
            decision = redecide(event.environment, _raw_of(event), Status(event.status), user=user, groups=groups)
            if decision is not None:
                event.status = int(decision.status)
                if is_decision_reason(event.message):
                    event.message = decision.reason

        return apply

    async def _write(self, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)


def _raw_of(event: event_pb2.Event) -> dict[str, str]:
    """The raw properties a policy sees: the event's, plus jobplane's own state and attempt."""
    raw = dict(event.raw)
    if event.environment == "jobplane":
        raw.setdefault("state", event.raw_status)
        raw.setdefault("attempt", str(event.attempt))
    return raw


def _parse(name: str, document: dict) -> Policy:
    if not isinstance(document, dict):
        raise InvalidArgument("document", 'must be a table such as { rules = [...] }')
    return parse_policy("policy", {"name": name, "rules": document.get("rules", [])})


class PolicyService(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self, book: PolicyBook, deps: Deps) -> None:
        self._book = book
        self._deps = deps  # its core is the leader's, of the term

    async def _announce(self, scope: int, name: str, version: int, deleted: bool) -> None:
        """A POLICY event, so watchers know statuses may read differently from now on."""
        by = current_caller.get().identity
        await self._deps.core.call(lambda engine: engine.policy_changed(SCOPE_WORD[scope], name, version, by, deleted))

    @rpc
    async def GetPolicy(self, request, context):
        if request.scope == DEFAULT:
            return policy_pb2.GetPolicyResponse(policy=_default_message())
        name = _name(request)
        found = self._book.get(request.scope, name)
        if found is None:
            raise NotFound(f"no {SCOPE_WORD[request.scope]} policy {name!r}; `jobplane policy list` shows them")
        return policy_pb2.GetPolicyResponse(policy=_message(request.scope, *found))

    @rpc
    async def ListPolicies(self, request, context):
        size = page_size(request.page_size)
        policies = [_default_message()] + [_message(v.scope, policy, v) for policy, v in self._book.all()]
        page = page_of(policies, request.page_token, size)
        return policy_pb2.ListPoliciesResponse(policies=page.items, next_page_token=page.next_page_token)

    @rpc
    async def SetPolicy(self, request, context):
        name = _name(request)
        _may_change(current_caller.get(), request.scope, name)
        document = json_format.MessageToDict(request.document)
        policy, version = await self._book.set(request.scope, name, document, current_caller.get().identity)
        await self._announce(request.scope, name, version.version, False)
        return policy_pb2.SetPolicyResponse(policy=_message(request.scope, policy, version))

    @rpc
    async def DeletePolicy(self, request, context):
        name = _name(request)
        _may_change(current_caller.get(), request.scope, name)
        version = await self._book.delete(request.scope, name, current_caller.get().identity)
        await self._announce(request.scope, name, version, True)
        return policy_pb2.DeletePolicyResponse()

    @rpc
    async def TestPolicy(self, request, context):
        caller = current_caller.get()
        user_name = request.user or caller.identity
        groups = tuple(request.groups) if request.groups or request.user else caller.groups
        user, group_policies = self._book.for_caller(user_name, groups)
        decision = normalize(request.environment, dict(request.raw), user=user, groups=group_policies)
        level = decision.reason.split(" policy ", 1)[0] if decision.policy else ""
        label = "default" if level == "default" else f"{level} {decision.policy}" if level else ""
        return policy_pb2.TestPolicyResponse(status=int(decision.status), policy=label,
                                             rule_index=-1 if decision.rule_index is None else decision.rule_index,
                                             reason=decision.reason)


def _name(request) -> str:
    if request.scope not in SCOPE_WORD:
        raise InvalidArgument("scope", "must be POLICY_SCOPE_GROUP or POLICY_SCOPE_USER (the default is read-only)")
    if not request.name:
        raise InvalidArgument("name", "name the group or user the policy is for")
    return request.name


def _may_change(caller: Caller, scope: int, name: str) -> None:
    """Operators and admins change any policy; others only their own user policy."""
    if caller.role in (Role.ADMIN, Role.OPERATOR) or caller.method == "insecure":
        return
    if scope == USER and name == caller.identity:
        return
    raise PermissionDenied(f"changing the {SCOPE_WORD[scope]} policy {name!r} needs the role operator or admin; "
                           f"{caller.identity} may change only its own user policy")


def _message(scope: int, policy: Policy, stored: PolicyVersion) -> policy_pb2.Policy:
    return policy_pb2.Policy(scope=scope, name=policy.name, version=stored.version,
                             document=convert.struct({"rules": policy_to_dict(policy)["rules"]}),
                             update_time=convert.ts(stored.time), updated_by=stored.updated_by)


def _default_message() -> policy_pb2.Policy:
    return policy_pb2.Policy(scope=DEFAULT, name="default", version=1,
                             document=convert.struct({"rules": policy_to_dict(DEFAULT_POLICY)["rules"]}))
