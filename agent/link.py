"""The agent's end of ProviderService.Connect: hello, heartbeats, reports and acks, reconnects
(to the leading server replica, when there are several: replicas.py)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from jobplane.connect import CHANNEL_OPTIONS
from jobplane.logs import ids
from jobplane.v1 import provider_pb2, provider_pb2_grpc

from .config import AgentConfig
from .errors import AgentError, HelloRejected, NameInUse
from .backoff import Backoff
from .capacity import capacity_message, machine_capacity
from .facts import live_facts, machine_facts
from .logserve import LogServer
from .metrics import AgentMetrics
from .outbox import Outbox
from .prerequisites import ScanQueue
from .replicas import Targets, leader_named

if TYPE_CHECKING:  # the contracts only: not imported by a running agent (its memory)
    from .link_parties import Credentials, LinkHandler

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.1
BACKOFF_CAP = 2.0
# ALREADY_EXISTS may be our own previous stream that the server has not torn down yet.
NAME_IN_USE_PATIENCE = 3.0
# After half-closing the stream, how long the server has to end it before we cancel it.
CLOSE_GRACE = 1.0
# Errors that retrying does not cure: a bad hello, or credentials the server refuses (revoked).
_REFUSED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.UNAUTHENTICATED)
# A server that stops answering without closing the connection (frozen, or cut off) breaks the
# stream when a keepalive ping has no answer within this long: the agent moves on at once.
PING_ANSWER_MS = 2_000
_KEEPALIVE = ("grpc.keepalive_time_ms", "grpc.keepalive_timeout_ms", "grpc.http2.ping_timeout_ms")


def link_options(heartbeat_interval: float) -> list[tuple[str, int]]:
    """The link's channel options: CHANNEL_OPTIONS with a keepalive ping as often as the agent's
    heartbeats (at least every second) and PING_ANSWER_MS to answer it. Not more often: a gRPC
    server ends a connection whose pings come more often than its min_ping_interval_without_data
    (500 ms in jobplane-server: server/serving.py) while it sends nothing back."""
    every = max(1_000, round(heartbeat_interval * 1_000))
    return [*(option for option in CHANNEL_OPTIONS if option[0] not in _KEEPALIVE),
            ("grpc.keepalive_time_ms", every), ("grpc.keepalive_timeout_ms", PING_ANSWER_MS),
            ("grpc.http2.ping_timeout_ms", PING_ANSWER_MS)]


class _StreamEnded(Exception):
    """The server ended the stream without an error status."""


@dataclass
class _Stream:
    """One Connect stream, on a channel of its own to `target` with the credentials it was
    opened with."""

    target: str
    channel: grpc.aio.Channel
    call: grpc.aio.StreamStreamCall
    generation: int


class Link:
    """Keeps one Connect stream open to the server, reconnecting with backoff until closed.

    Given several server replicas, it streams to the one that leads: a follower's redirect is
    followed at once; any other failure moves it on to the next replica after the backoff.

    When the credentials are renewed, a second stream is opened with the new ones; once it is
    welcomed (the server's takeover ends the old stream), it carries on in the old one's place.
    Running attempts never notice; unacknowledged reports are re-sent on the new stream.
    """

    def __init__(self, config: AgentConfig, outbox: Outbox, handler: LinkHandler,
                 credentials: Credentials, metrics: AgentMetrics | None = None) -> None:
        self._config = config
        self._metrics = metrics or AgentMetrics()
        self._outbox = outbox
        self._handler = handler
        self._credentials = credentials
        self._options = link_options(config.heartbeat_interval)
        self._facts = machine_facts()
        self._capacity = capacity_message(machine_capacity(config.cpus, config.memory, config.gpus, config.resources))
        self._facts_file = Path(config.facts_file) if config.facts_file else None
        # Problems with the facts file already logged, so each is logged once while it lasts.
        self._facts_problems: set[str] = set()
        self._calls: set[grpc.aio.StreamStreamCall] = set()
        # Scans the server asks for; they outlive a stream, their reports go on the current one.
        self._scans = ScanQueue(config.scan_limits, timed=self._metrics.scan_seconds.observe)
        # Output the server asked for (TaskService.StreamLogs), answered on the stream it came on.
        self._logs = LogServer(handler.attempt_logs)
        self._write_lock = asyncio.Lock()
        self._welcomed = False
        self._closing = False
        # Sent on every stream once the agent is stopping, so a reconnect does not forget it.
        self._goodbye: provider_pb2.Goodbye | None = None
        # The welcomed stream that carries reports now (a handover's successor is not, yet).
        self._current: grpc.aio.StreamStreamCall | None = None
        # Failed attempts to connect since the last welcome; only the first is logged loudly.
        self._failures = 0

    @property
    def connected(self) -> bool:
        """Whether a stream is open and welcomed."""
        return self._welcomed and bool(self._calls)

    async def run(self) -> None:
        """Obtain credentials, then stay connected until close(); raises AgentError subclasses
        (NotEnrolled, EnrollmentRefused, NameInUse, HelloRejected)."""
        await self._credentials.ready()
        renewing = asyncio.create_task(self._credentials.keep_renewed(),
                                       name="jobplane-agent-renewal")
        scanning = asyncio.create_task(self._scans.run(), name="jobplane-agent-scans")
        try:
            await self._stay_connected()
        finally:
            for task in (renewing, scanning):
                task.cancel()
            await asyncio.gather(renewing, scanning, return_exceptions=True)

    async def _stay_connected(self) -> None:
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_CAP)  # jittered: a fleet cut off at once comes back spread out
        name_in_use_since: float | None = None
        targets = self._credentials.targets
        while not self._closing:
            target, at_once = targets.current, False
            try:
                await self._session(target)
            except (grpc.aio.AioRpcError, _StreamEnded) as exc:
                if isinstance(exc, grpc.aio.AioRpcError):
                    name_in_use_since = self._check_permanent(exc, name_in_use_since)
                at_once = self._move_on(targets, target, exc)
            except AgentError:
                raise
            except Exception:  # a bug or an unforeseen gRPC failure: stay up, say it loudly
                log.exception("the link to %s failed unexpectedly; reconnecting", target)
            if self._welcomed:
                backoff.reset()
                self._welcomed = False
            if not self._closing and not at_once:  # at once: to the leader a follower named
                await asyncio.sleep(backoff.next())

    def _move_on(self, targets: Targets, target: str, exc: grpc.aio.AioRpcError | _StreamEnded) -> bool:
        """Choose the address to try after `target` failed with `exc`; True to try it at once
        (the leader a follower named)."""
        leader = leader_named(exc) if isinstance(exc, grpc.aio.AioRpcError) else None
        if leader is None:
            if not (isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.ALREADY_EXISTS):
                targets.lost(target)  # ALREADY_EXISTS: our own previous stream lingers there; stay
            self._log_disconnect(target, _why(exc))
            return False
        follow = targets.redirected(target, leader)
        if follow:
            log.info("the server at %s does not lead; connecting to the leader at %s", target, leader)
            return True
        self._failures += 1
        log.log(logging.WARNING if self._failures == 1 else logging.DEBUG,
                "the server at %s does not lead and %s; trying %s next", target,
                f"names {leader} as the leader" if leader else "no server leads just now", targets.current)
        return False

    async def flush(self, timeout: float) -> bool:
        """Wait until every report is sent and acknowledged; False if disconnected or too slow."""
        if not self.connected:
            return False
        try:
            await asyncio.wait_for(self._outbox.wait_settled(), timeout)
        except TimeoutError:
            return False
        return True

    async def say_goodbye(self, goodbye: provider_pb2.Goodbye) -> None:
        """Tell the server the agent is stopping, on this stream and on any later one."""
        self._goodbye = goodbye  # from now on, each new stream says it after its welcome
        call = self._current
        if call is not None and not call.done():
            try:
                await self._write(call, provider_pb2.ConnectRequest(goodbye=goodbye))
            except (grpc.aio.AioRpcError, grpc.aio.UsageError):
                pass  # the stream broke: the next one says it

    async def close(self) -> None:
        """Half-close the stream(s) so the server sees a clean goodbye; `run()` then returns."""
        self._closing = True
        async with self._write_lock:
            for call in list(self._calls):
                if not call.done():
                    try:
                        await call.done_writing()
                    except (grpc.aio.AioRpcError, grpc.aio.UsageError):
                        pass

    async def _session(self, target: str) -> None:
        """Streams to `target` from hello to the end, handing over to a new one when the
        credentials change."""
        stream = await self._open_stream(target)
        try:
            while True:
                # Before _resume: a goodbye said meanwhile may then go twice, never not at all.
                self._current = stream.call
                await self._resume(stream.call)
                successor = await self._serve(stream)
                await self._drop(stream)
                stream = successor
        finally:
            await self._drop(stream)

    async def _open_stream(self, target: str, *, handover: bool = False) -> _Stream:
        """A channel to `target` with the current credentials, and a Connect stream on it that
        is welcomed."""
        generation = self._credentials.generation
        channel = self._credentials.open_channel(target, self._options)
        stream = _Stream(target, channel, provider_pb2_grpc.ProviderServiceStub(channel).Connect(),
                         generation)
        self._calls.add(stream.call)
        try:
            await self._write(stream.call, provider_pb2.ConnectRequest(hello=self._hello()))
            await self._read_welcome(stream, announce=not handover)
        except BaseException:
            await self._drop(stream)
            raise
        return stream

    async def _drop(self, stream: _Stream) -> None:
        self._calls.discard(stream.call)
        stream.call.cancel()
        await stream.channel.close()

    async def _resume(self, call: grpc.aio.StreamStreamCall) -> None:
        """After the welcome: re-send unacknowledged reports, send the live facts (so that the
        server checks runtime conditions against them from the first assignment on), then say
        how many slots are free."""
        for batch in self._outbox.resend_batches():
            await self._write(call, provider_pb2.ConnectRequest(reports=batch))
        await self._write(call, provider_pb2.ConnectRequest(heartbeat=self._heartbeat()))
        if self._goodbye is not None:
            await self._write(call, provider_pb2.ConnectRequest(goodbye=self._goodbye))
        ready = provider_pb2.Ready(free_slots=self._handler.free_slots())
        await self._write(call, provider_pb2.ConnectRequest(ready=ready))

    async def _serve(self, stream: _Stream) -> _Stream:
        """Carry the stream until it ends (raises why) or a successor with newer credentials is
        welcomed (returned)."""
        call = stream.call
        pumps = asyncio.create_task(_until_first_ends(
            self._send_reports(call), self._send_heartbeats(call), self._send_scan_reports(call),
            self._receive(call)))
        begun = asyncio.Event()
        handover = asyncio.create_task(self._handover(stream, begun, pumps))
        try:
            await asyncio.wait({pumps, handover}, return_when=asyncio.FIRST_COMPLETED)
            if begun.is_set() and not handover.done():
                await asyncio.wait({handover})  # the takeover ended the old stream; wait for the new
            if handover.done():
                return handover.result()
            pumps.result()
            raise _StreamEnded("the stream ended")
        finally:
            self._logs.close()
            for task in (pumps, handover):
                task.cancel()
            await asyncio.gather(pumps, handover, return_exceptions=True)

    async def _handover(self, current: _Stream, begun: asyncio.Event,
                        old: asyncio.Task[None]) -> _Stream:
        """Once the credentials change, a welcomed stream that uses them, to the same server.

        Failures are retried with backoff while the old stream lives; once it has ended (or
        the server refuses us for good) they are raised.
        """
        delay, failures = BACKOFF_FIRST, 0
        while True:
            await self._credentials.changed(current.generation)
            begun.set()
            try:
                stream = await self._open_stream(current.target, handover=True)
            except (grpc.aio.AioRpcError, _StreamEnded) as exc:
                if isinstance(exc, grpc.aio.AioRpcError):
                    self._check_permanent(exc, None)  # raises if the server refuses us for good
                if old.done():
                    raise
                begun.clear()
                failures += 1
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "cannot switch the link to the renewed certificate yet (%s); the current "
                        "stream carries on", _why(exc))
            else:
                log.info("switched the link to %s to the renewed certificate", current.target)
                return stream
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_CAP)

    def _hello(self) -> provider_pb2.Hello:
        config = self._config
        containment, kill_deadline = self._handler.containment()
        return provider_pb2.Hello(
            name=config.name,
            facts=self._facts,
            labels=config.labels,
            slots=config.slots,
            queue_ahead=config.queue_ahead or 0,
            heartbeat_interval_seconds=config.heartbeat_interval,
            standby=config.standby,
            kill_deadline_seconds=kill_deadline,
            containment=containment,
            reconnect_backoff_max_seconds=BACKOFF_CAP,
            capacity=self._capacity,
            acks_with_assignments=True,
            gives_back_unstarted=True,
            running=[
                provider_pb2.AttemptRef(task_id=task_id, attempt=attempt)
                for task_id, attempt in self._handler.held_attempts()
            ],
        )

    async def _read_welcome(self, stream: _Stream, *, announce: bool) -> None:
        response = await stream.call.read()
        if response is grpc.aio.EOF:
            raise _StreamEnded("the server closed the stream before its welcome")
        if response.WhichOneof("message") != "welcome":
            raise _StreamEnded(f"expected a welcome, got {response.WhichOneof('message')}")
        self._welcomed = True
        self._failures = 0
        self._credentials.targets.welcomed()
        self._handler.on_welcome(response.welcome)
        if announce:  # a new connection, not a handover to new credentials
            self._metrics.welcomed()
            config = self._config
            log.info("connected to %s as %s with %d slots", stream.target, config.name, config.slots)

    async def _send_reports(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            batch = await self._outbox.next_batch()
            await self._write(call, provider_pb2.ConnectRequest(reports=batch))

    async def _send_scan_reports(self, call: grpc.aio.StreamStreamCall) -> None:
        # A report taken here and lost with a broken stream is not sent again: the server
        # asks again for what its inventory still lacks.
        while True:
            report = await self._scans.next_report()
            await self._write(call, provider_pb2.ConnectRequest(scan_report=report))

    async def _send_heartbeats(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            await asyncio.sleep(self._config.heartbeat_interval)
            await self._write(call, provider_pb2.ConnectRequest(heartbeat=self._heartbeat()))

    def _heartbeat(self) -> provider_pb2.Heartbeat:
        facts = live_facts(self._facts_file, reported=self._facts_problems)
        return provider_pb2.Heartbeat(
            free_slots=self._handler.free_slots(),
            running=self._handler.running_count(),
            load_average=facts["load_average"],
            facts=facts,
        )

    async def _receive(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                raise _StreamEnded("the server closed the stream")
            if response.WhichOneof("message") == "probe":
                await self._answer_probe(call, response.probe.probe_id)
            elif response.WhichOneof("message") == "logs":
                self._logs.handle(response.logs, functools.partial(self._write, call))
            else:
                self._dispatch(response)

    async def _answer_probe(self, call: grpc.aio.StreamStreamCall, probe_id: int) -> None:
        """Answer "are you there?" with how each running attempt is doing."""
        running = await self._handler.running_status()
        reply = provider_pb2.ProbeReply(probe_id=probe_id, running=running)
        await self._write(call, provider_pb2.ConnectRequest(probe_reply=reply))

    def _dispatch(self, response: provider_pb2.ConnectResponse) -> None:
        kind = response.WhichOneof("message")
        if kind == "assign":
            self._handler.on_assign(list(response.assign.assignments))
            self._scans.request(response.assign.scan)
            if response.assign.HasField("ack"):  # Hello.acks_with_assignments: read after the assignments
                self._take_ack(response.assign.ack)
        elif kind == "scan":
            self._scans.request(response.scan.signatures)
        elif kind == "cancel" and response.cancel.unstarted_only:
            self._handler.on_give_back(list(response.cancel.attempts), response.cancel.reason)
        elif kind == "cancel":
            self._handler.on_cancel(list(response.cancel.attempts), response.cancel.reason)
        elif kind == "suspend":
            suspend = response.suspend
            self._handler.on_suspend(list(suspend.attempts), suspend.resume, suspend.reason)
        elif kind == "ack":
            self._take_ack(response.ack)
        else:
            log.debug("ignoring an unexpected %s from the server", kind)

    def _take_ack(self, ack: provider_pb2.Ack) -> None:
        for rejected in ack.rejected:
            log.warning("the server rejected the report on task %s attempt %d (%s): %s",
                        rejected.attempt.task_id, rejected.attempt.attempt, rejected.code, rejected.reason,
                        extra=ids(task_id=rejected.attempt.task_id, attempt=rejected.attempt.attempt))
        self._outbox.ack(ack.seq)

    async def _write(
        self, call: grpc.aio.StreamStreamCall, request: provider_pb2.ConnectRequest
    ) -> None:
        # gRPC allows one write in flight per call; reports and heartbeats share the stream.
        async with self._write_lock:
            if self._closing:
                return
            await call.write(request)

    def _check_permanent(self, exc: grpc.aio.AioRpcError, since: float | None) -> float | None:
        """Raise if the error will not go away by retrying; when ALREADY_EXISTS began."""
        code = exc.code()
        if code in _REFUSED:
            raise HelloRejected(f"the server refused this agent: {exc.details()}")
        if code != grpc.StatusCode.ALREADY_EXISTS:
            return None
        now = time.monotonic()
        if since is not None and now - since >= NAME_IN_USE_PATIENCE:
            raise NameInUse(
                f"an agent named {self._config.name!r} is already connected to "
                f"{self._config.server}; give this one another --name"
            )
        return since if since is not None else now

    def _log_disconnect(self, target: str, why: str) -> None:
        if self._closing:
            return
        targets = self._credentials.targets
        then = f"; trying {targets.current} next" if targets.several else ""
        if self._welcomed:
            log.warning("lost the connection to %s (%s); reconnecting%s", target, why, then)
            return
        self._failures += 1
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(level, "cannot connect to %s (%s)%s", target, why, then or "; retrying")


def _why(exc: grpc.aio.AioRpcError | _StreamEnded) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc)


async def _until_first_ends(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines until one ends; cancel the others and raise its error, if any."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()
