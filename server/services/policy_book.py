"""The policies in force, and their versions: which normalized status each caller sees.

Policies are few and small, so the current ones are cached in memory; every change is a new
version row, committed on the writer thread before it is answered (followers reload on the
leader's POLICY events). The default policy is stored like the others: its built-in rules are
version 1, never stored; an operator's edit is version 2 on; a deletion returns it to the
built-in rules (as a version of its own, so the history keeps what was there).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from jobplane.v1 import event_pb2, policy_pb2

from ..domain.model import Status
from ..domain.policies import (
    BUILTIN_VERSION, DEFAULT_NAME, DEFAULT_POLICY, Policy, is_decision_reason, parse_policy, policy_to_dict,
    priority_class, redecide, renormalize)
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..security.policy import Caller
from ..store.records import PolicyVersion
from ..store.security import PolicyStore
from . import convert

DEFAULT, GROUP, USER = policy_pb2.POLICY_SCOPE_DEFAULT, policy_pb2.POLICY_SCOPE_GROUP, policy_pb2.POLICY_SCOPE_USER
SCOPE_WORD = {DEFAULT: "default", GROUP: "group", USER: "user"}


def describe(scope: int, name: str) -> str:
    """`the default policy`, `the group policy 'ops'`: for messages."""
    return "the default policy" if scope == DEFAULT else f"the {SCOPE_WORD[scope]} policy {name!r}"


@dataclass(frozen=True)
class Version:
    """One version of a policy: its rules (None for a deletion of a user or group policy) and
    the stored row (None for the default policy's built-in version 1)."""

    scope: int
    name: str
    number: int
    policy: Policy | None
    stored: PolicyVersion | None = None

    @property
    def deleted(self) -> bool:
        return self.stored is not None and self.stored.deleted

    def message(self) -> policy_pb2.Policy:
        rules = policy_to_dict(self.policy)["rules"] if self.policy is not None else []
        stored = self.stored
        return policy_pb2.Policy(scope=self.scope, name=self.name, version=self.number,
                                 document=convert.struct({"rules": rules}), deleted=self.deleted,
                                 update_time=convert.ts(stored.time if stored else None),
                                 updated_by=stored.updated_by if stored else "")


BUILTIN = Version(DEFAULT, DEFAULT_NAME, BUILTIN_VERSION, DEFAULT_POLICY)


class PolicyBook:
    """The policies in force, by (scope, name), and every version on request."""

    def __init__(self, store: PolicyStore, writer: ThreadPoolExecutor) -> None:
        self._store = store
        self._writer = writer
        self._current: dict[tuple[int, str], Version] = {}
        self._default = BUILTIN

    async def load(self) -> None:
        newest = [self._version(v) for v in await self._write(self._store.newest)]
        self._current = {(v.scope, v.name): v for v in newest if v.scope != DEFAULT and not v.deleted}
        self._default = next((v for v in newest if v.scope == DEFAULT), BUILTIN)

    @property
    def default(self) -> Policy:
        """The default policy in force."""
        assert self._default.policy is not None
        return self._default.policy

    def get(self, scope: int, name: str) -> Version:
        """The current version; NotFound for a user or group without a policy."""
        found = self._default if scope == DEFAULT else self._current.get((scope, name))
        if found is None:
            raise NotFound(f"no {SCOPE_WORD[scope]} policy {name!r}; `jobplane policy list` shows them")
        return found

    def all(self) -> list[Version]:
        """The default policy, then the group and user policies."""
        return [self._default] + [self._current[key] for key in sorted(self._current)]

    async def versions(self, scope: int, name: str) -> list[Version]:
        """Every version of a policy, newest first; NotFound if it never had one."""
        found = [self._version(v) for v in await self._write(self._store.versions, scope, name)]
        if scope == DEFAULT:
            found.append(BUILTIN)
        if not found:
            raise NotFound(f"{describe(scope, name)} has no versions; `jobplane policy list` shows the policies")
        return found

    async def version(self, scope: int, name: str, number: int) -> Version:
        if number < 0:
            raise InvalidArgument("version", f"must be >= 0 (0 = the current version), got {number}")
        if number == 0:
            return self.get(scope, name)
        versions = await self.versions(scope, name)
        for version in versions:
            if version.number == number:
                return version
        raise NotFound(f"{describe(scope, name)} has no version {number}; it has versions "
                       f"{versions[-1].number} to {versions[0].number} (`jobplane policy history`)")

    async def set(self, scope: int, name: str, document: dict, by: str) -> Version:
        policy = _parse(name, document)  # validates before anything is stored
        text = json.dumps({"rules": policy_to_dict(policy)["rules"]}, sort_keys=True)
        stored = await self._write(self._store.add_version, scope, name, text, time.time(), by, False,
                                   BUILTIN_VERSION + 1 if scope == DEFAULT else 1)
        return self._keep(Version(scope, name, stored.version, policy, stored))

    async def delete(self, scope: int, name: str, by: str) -> Version:
        """The version that records the deletion (for the default policy: the return to the built-in rules)."""
        current = self.get(scope, name)  # NotFound for a user or group without a policy
        if scope == DEFAULT and current.policy is DEFAULT_POLICY:
            raise FailedPrecondition(f"the default policy is the built-in rules already (version {current.number}); "
                                     "`jobplane policy set --default FILE` stores other rules")
        stored = await self._write(self._store.add_version, scope, name, "{}", time.time(), by, True,
                                   BUILTIN_VERSION + 1 if scope == DEFAULT else 1)
        return self._keep(self._version(stored))

    def _keep(self, version: Version) -> Version:
        if version.scope == DEFAULT:
            self._default = version
        elif version.deleted:
            self._current.pop((version.scope, version.name), None)
        else:
            self._current[(version.scope, version.name)] = version
        return version

    def for_caller(self, user: str, groups: tuple[str, ...]) -> tuple[Policy | None, list[Policy]]:
        found = self._current.get((USER, user))
        return (found.policy if found else None,
                [self._current[(GROUP, g)].policy for g in groups if (GROUP, g) in self._current])

    def status_of(self, caller: Caller) -> convert.StatusOf | None:
        """The caller's normalization of (environment, raw properties, stored status), or
        None when the default policy is all it has (the stored status is then right)."""
        user, groups = self.for_caller(caller.identity, caller.groups)
        if user is None and not groups:
            return None
        default = self.default
        return lambda environment, raw, stored: renormalize(environment, raw, Status(stored), user=user,
                                                             groups=groups, default=default)

    def class_of(self, caller: Caller) -> convert.ClassOf | None:
        """The caller's priority classes (from its policies, then the default), or None when
        the default policy is all it has."""
        user, groups = self.for_caller(caller.identity, caller.groups)
        if user is None and not groups:
            return None
        default = self.default
        return lambda environment, raw: priority_class(environment, raw, user=user, groups=groups, default=default)

    def normalizer(self, caller: Caller) -> Callable[[event_pb2.Event], None] | None:
        """What re-normalizes events for this caller, or None when the default is all it has.
        An event whose message says which rule decided says it for the caller's own decision."""
        user, groups = self.for_caller(caller.identity, caller.groups)
        if user is None and not groups:
            return None
        default = self.default

        def apply(event: event_pb2.Event) -> None:
            if not event.environment:
                return
            decision = redecide(event.environment, _raw_of(event), Status(event.status), user=user, groups=groups,
                                default=default)
            if decision is not None:
                event.status = int(decision.status)
                if is_decision_reason(event.message):
                    event.message = decision.reason

        return apply

    def _version(self, stored: PolicyVersion) -> Version:
        """A stored row as a version: a deleted default policy is the built-in rules again."""
        if stored.deleted:
            policy = DEFAULT_POLICY if stored.scope == DEFAULT else None
        else:
            policy = _parse(stored.name, json.loads(stored.document))
        return Version(stored.scope, stored.name, stored.version, policy, stored)

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
