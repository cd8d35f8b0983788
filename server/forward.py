"""On a follower replica: the calls only the leader can answer, passed on to it as they are.

A follower answers reads and watches from the database itself (LOCAL). Every other call is
authenticated here, then sent to the leader unchanged (the request's bytes) with the
identity this replica authenticated (FORWARDED_IDENTITY), over the leader's mutual-TLS
address with this replica's certificate, which is what makes the leader believe it. The
leader's answer, or its error, goes back as it came. An agent's stream is not forwarded: it is
refused with the leader's agent address in the trailing metadata, and the agent connects there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc

from jobplane.replicas import FORWARDED_BY, FORWARDED_IDENTITY, LEADER_ADDRESS, LEADER_AGENT_ADDRESS
from jobplane.v1 import security_pb2

log = logging.getLogger(__name__)

_V1 = "/jobplane.v1."
# What a follower answers itself, from the database and its own event hub.
LOCAL = frozenset(_V1 + name for name in (
    "JobService/GetJob", "JobService/ListJobs", "JobService/SummarizeJobs", "JobService/WatchEvents",
    "EventService/WatchEvents", "TaskService/GetTask", "TaskService/ListTasks",
    "ContinuationService/ListContinuations", "ContinuationService/GetContinuation",
    "ContinuationService/WatchContinuations", "ViewService/GetView", "ViewService/ListViews",
    "PolicyService/GetPolicy", "PolicyService/ListPolicies", "PolicyService/ListPolicyVersions",
    "PolicyService/TestPolicy",
    "SecurityService/ListAuditRecords", "SecurityService/GetAuthority", "SecurityService/WhoAmI",
    "ServerService/ListServers", "ScheduleService/GetSchedule", "ScheduleService/ListSchedules",
    "AlertService/GetAlertRule", "AlertService/ListAlertRules"))
ENROLL = _V1 + "SecurityService/Enroll"
# Request metadata that is the link's, not the call's: never passed on.
_HOP = ("authorization", "user-agent", "content-type", "te", "grpc-", ":", FORWARDED_IDENTITY, FORWARDED_BY)


@dataclass(frozen=True)
class Leader:
    """Where the leader is, as the lease says ("" when no replica leads just now)."""

    id: str = ""
    address: str = ""
    agent_address: str = ""
    epoch: int = 0


class Forwarder:
    """Calls to the leader: one channel, remade when the leader changes."""

    def __init__(self, me: str, credentials: grpc.ChannelCredentials | None,
                 identity_of: Callable[[object], str] | None, agent_port: int = 0) -> None:
        self._me = me
        self._agent_port = agent_port  # this replica's: an agent enrolled here is told it, not the leader's
        self._credentials = credentials  # None: --insecure, plaintext to the leader's main address
        self._identity_of = identity_of  # the caller, as FORWARDED_IDENTITY says it
        self.leader = Leader()
        self._channel: grpc.aio.Channel | None = None
        self._target = ""
        self._closing: set[asyncio.Task] = set()  # old channels closing (held: the loop keeps weak references)

    def follow(self, leader: Leader) -> None:
        self.leader = leader

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def unary(self, method: str, body: bytes, caller, context) -> bytes:
        channel = await self._leader_channel(context)
        try:
            answer = await channel.unary_unary(method)(body, metadata=self._metadata(caller, context),
                                                       timeout=context.time_remaining())
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "", tuple(exc.trailing_metadata() or ()))
        return self._own_agent_port(answer) if method == ENROLL and self._agent_port else answer

    def _own_agent_port(self, answer: bytes) -> bytes:
        """An enrollment answered by the leader, with this replica's agent port: the agent
        works out every replica's agent address from the one it enrolled through."""
        response = security_pb2.EnrollResponse.FromString(answer)
        response.agent_port = self._agent_port
        return response.SerializeToString()

    async def stream(self, method: str, body: bytes, caller, context) -> AsyncIterator[bytes]:
        channel = await self._leader_channel(context)
        call = channel.unary_stream(method)(body, metadata=self._metadata(caller, context),
                                            timeout=context.time_remaining())
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "", tuple(exc.trailing_metadata() or ()))
        finally:
            call.cancel()

    async def redirect(self, context) -> None:
        """An agent's stream: refused, with where the leader is."""
        leader = self.leader
        where = f"the leader is {leader.agent_address}" if leader.id else "no replica leads just now; retry"
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"this server replica follows; {where}",
                            ((LEADER_AGENT_ADDRESS, leader.agent_address), (LEADER_ADDRESS, leader.address)))

    async def _leader_channel(self, context) -> grpc.aio.Channel:
        leader = self.leader
        if not leader.id or leader.id == self._me:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no server replica leads just now (a takeover is "
                                "under way); retry in a moment", ((LEADER_ADDRESS, ""),))
        if _forwarded(context):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this replica stopped leading while the call was on "
                                "its way; retry", ((LEADER_ADDRESS, leader.address),))
        target = leader.address if self._credentials is None else leader.agent_address
        if target != self._target or self._channel is None:
            if self._channel is not None:  # calls still on it may finish; this one does not wait
                closing = asyncio.get_running_loop().create_task(self._channel.close(grace=5.0))
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
            self._channel = (grpc.aio.insecure_channel(target) if self._credentials is None
                             else grpc.aio.secure_channel(target, self._credentials))
            self._target = target
        return self._channel

    def _metadata(self, caller, context) -> tuple[tuple[str, str], ...]:
        kept = tuple((key, value) for key, value in context.invocation_metadata() or ()
                     if not key.startswith(_HOP) and not key.endswith("-bin"))
        extra = ((FORWARDED_BY, self._me),)
        if self._identity_of is not None:
            extra += ((FORWARDED_IDENTITY, self._identity_of(caller)),)
        return kept + extra


def _forwarded(context) -> bool:
    return any(key == FORWARDED_BY for key, _ in context.invocation_metadata() or ())
