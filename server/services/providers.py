"""ProviderService: the agent stream (Connect) and the provider registry."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import grpc

from jobplane.logs import ids
from jobplane.v1 import provider_pb2, provider_pb2_grpc

from ..domain.limits import check_seconds, check_text
from ..domain.changes import ChangeSet, Stop
from ..errors import InvalidArgument, JobplaneError, NotFound, PermissionDenied
from ..security.policy import current_caller
from ..store.live import list_providers
from . import convert
from .base import Deps, page_size, rpc, status_code
from .fleet_gc import FleetFreezer
from .logs import LogRelay

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HELLO_DEADLINE = 10.0
MAX_SLOTS = 10_000
# Hellos taken into the engine at once. A storm of connects (20,000 agents coming back to a
# restarted server) waits its turn here, cheaply, instead of filling batches with thousands of
# connects each (their states, events and log lines) while the connected agents' heartbeats wait.
CONNECTS_AT_ONCE = 200
NO_FACTS: Mapping[str, float] = MappingProxyType({})  # a heartbeat without live facts (most): one shared, read-only


@dataclass(eq=False)
class Connection:
    id: int
    provider: str
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    error: JobplaneError | None = None  # a message that could not be taken ends the stream with it
    acks_with_assignments: bool = False  # the agent reads an ack inside an Assignments message


class ProviderService(provider_pb2_grpc.ProviderServiceServicer):
    def __init__(self, deps: Deps, access=None) -> None:
        self.d = deps
        self._ids = itertools.count(1)
        self._conns: dict[int, Connection] = {}  # by connection id; the engine knows which is current
        self._connecting = asyncio.Semaphore(CONNECTS_AT_ONCE)
        self.access = access  # revoking a provider also revokes its certificates
        self.logs = LogRelay()  # output asked of agents (TaskService.StreamLogs)
        self._freezer = FleetFreezer()
        self._welcomed = 0  # streams welcomed and not ended

    # ----- the agent stream ----------------------------------------------------------

    async def Connect(self, request_iterator, context):
        conn = Connection(next(self._ids), "")
        # Registered before the connect op, so what that op sends (e.g. stop stale attempts) arrives.
        self._conns[conn.id] = conn
        try:
            hello = await self._hello(context, conn)
            takeover = _check_identity(hello.name)
            conn.provider = hello.name
            async with self._connecting:
                provider, kept = await self.d.core.call(lambda engine: _connect(engine, hello, conn.id, takeover))
        except JobplaneError as exc:
            del self._conns[conn.id]
            await context.abort(status_code(exc), str(exc))
        except asyncio.TimeoutError:
            del self._conns[conn.id]
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"no hello within {HELLO_DEADLINE:g}s")
        reader = asyncio.get_running_loop().create_task(self._read(context, conn))
        self._welcomed += 1
        self._freezer.opened(self._welcomed)
        try:
            yield provider_pb2.ConnectResponse(welcome=provider_pb2.Welcome(
                provider_id=provider.id, heartbeat_interval_seconds=provider.heartbeat,
                reconnect_grace_seconds=self.d.config.reconnect_grace, lists_kept=True,
                kept=[provider_pb2.AttemptRef(task_id=str(task_id), attempt=number) for task_id, number in kept]))
            while (first := await conn.queue.get()) is not None:
                messages, closing = _coalesce(first, conn.queue, conn.acks_with_assignments)
                for message in messages:
                    yield message
                if closing:
                    break
            if conn.error is not None:
                await context.abort(status_code(conn.error), str(conn.error))
        finally:
            self._welcomed -= 1
            self._freezer.ended(self._welcomed)
            reader.cancel()
            self._conns.pop(conn.id, None)
            self.logs.broken(conn.id)
            if self.d.leading:  # else the engine that knew the stream is gone (a replica stepped down)
                self._send(lambda engine: engine.disconnect(conn.provider, conn.id))

    async def _hello(self, context, conn: Connection):
        first = await asyncio.wait_for(context.read(), HELLO_DEADLINE)
        if first is grpc.aio.EOF or first.WhichOneof("message") != "hello":
            raise InvalidArgument("hello", "the first message on Connect must be hello")
        h = first.hello
        conn.acks_with_assignments = h.acks_with_assignments
        if not NAME.match(h.name):
            raise InvalidArgument("hello.name", f"{h.name!r} is not a provider name: 1-128 letters, digits, '.', '_' or '-'")
        if not 1 <= h.slots <= MAX_SLOTS:
            raise InvalidArgument("hello.slots", f"must be between 1 and {MAX_SLOTS}, got {h.slots}")
        if not 0 <= h.queue_ahead <= MAX_SLOTS:
            raise InvalidArgument("hello.queue_ahead", f"must be between 0 (none) and {MAX_SLOTS}, got {h.queue_ahead}")
        hb = h.heartbeat_interval_seconds
        if not (math.isfinite(hb) and 0 < hb <= 3600):
            raise InvalidArgument("hello.heartbeat_interval_seconds", f"must be in (0, 3600], got {hb}")
        for field_name, most in (("kill_deadline_seconds", 600), ("reconnect_backoff_max_seconds", 3600)):
            value = getattr(h, field_name)
            if not (math.isfinite(value) and 0 <= value <= most):
                raise InvalidArgument(f"hello.{field_name}", f"must be in [0, {most}] seconds, got {value}")
        if len(h.containment) > 32:
            raise InvalidArgument("hello.containment", "must be at most 32 characters, e.g. cgroup or subreaper")
        return convert.hello_from_proto(h)

    async def _read(self, context, conn: Connection) -> None:
        try:
            while True:
                message = await context.read()
                if message is grpc.aio.EOF:
                    break
                self._handle(conn, message)
        except (asyncio.CancelledError, grpc.RpcError):
            pass
        except JobplaneError as exc:  # e.g. a message that does not decode
            conn.error = exc
        finally:
            conn.queue.put_nowait(None)

    def _handle(self, conn: Connection, message) -> None:
        if not self.d.leading:  # a replica that stepped down: the stream is ending
            return
        which = message.WhichOneof("message")
        if which == "heartbeat":  # the most frequent by far: no op, future or copy of its own (core.heartbeat)
            facts = message.heartbeat.facts
            self.d.core.heartbeat(conn.provider, conn.id, dict(facts) if facts else NO_FACTS)
        elif which == "reports":
            reports = [r for r in map(convert.report_from_proto, message.reports.reports) if r is not None]
            seq = message.reports.seq
            fut = self.d.core.enqueue(lambda engine: engine.report(conn.provider, conn.id, reports))
            fut.add_done_callback(lambda f: self._ack(conn, seq, f))
        elif which == "ready":
            self._send(lambda engine: engine.ready_signal(conn.provider, conn.id))
        elif which == "scan_report":
            results = convert.scan_results_from_proto(message.scan_report)
            self._send(lambda engine: engine.scan_report(conn.provider, conn.id, results))
        elif which == "probe_reply":
            reply = message.probe_reply
            running = convert.probe_reply_from_proto(reply)
            self._send(lambda engine: engine.probe_reply(conn.provider, conn.id, reply.probe_id, running))
        elif which == "log_chunk":
            self.logs.chunk(conn.id, message.log_chunk)
        elif which == "goodbye":
            bye = message.goodbye
            wait, deadline = bye.wait, bye.deadline_seconds if math.isfinite(bye.deadline_seconds) else 0.0
            self._send(lambda engine: engine.goodbye(conn.provider, conn.id, wait, max(0.0, deadline)))

    def _send(self, op) -> None:
        """An op no one waits on; if the core stops before committing it (the server stopping,
        a replica stepping down), the agent's stream ends and it says it all again."""
        self.d.core.enqueue(op).add_done_callback(_settled)

    def _ack(self, conn: Connection, seq: int, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        if fut.result() is None:  # not the provider's current stream: nothing was taken, so no ack
            log.warning("reports from %s on a stream that is not its current one; hanging up so they are sent "
                        "again", conn.provider, extra=ids(provider_id=conn.provider))
            conn.queue.put_nowait(None)
            return
        for _, _, code, _ in fut.result() or ():
            self.d.metrics.rejected_reports.inc(code)
        rejected = [provider_pb2.RejectedReport(attempt=provider_pb2.AttemptRef(task_id=str(t), attempt=n),
                                                code=code, reason=reason)
                    for t, n, code, reason in fut.result() or ()]
        conn.queue.put_nowait(provider_pb2.ConnectResponse(ack=provider_pb2.Ack(seq=seq, rejected=rejected)))

    def deliver(self, cs: ChangeSet) -> None:
        """After a commit: send each provider its assignments, cancellations and probes;
        hang up on the streams of providers given up on."""
        for provider_id, items in cs.assignments.items():
            conn = self._current(provider_id)
            if conn is not None:
                message = provider_pb2.ConnectResponse(assign=provider_pb2.Assignments(
                    scan=_to_scan(cs.piggyback.get(provider_id, ()))))
                for a in items:
                    convert.add_assignment(message.assign, a.task, a.attempt, a.ahead)
                conn.queue.put_nowait(message)
        for provider_id, items in cs.scans.items():
            conn = self._current(provider_id)
            if conn is not None:
                conn.queue.put_nowait(provider_pb2.ConnectResponse(scan=provider_pb2.ScanRequest(
                    signatures=_to_scan(items))))
        for provider_id, stops in cs.stops.items():
            conn = self._current(provider_id)
            if conn is not None:
                for (reason, unstarted), group in itertools.groupby(
                        sorted(stops, key=_stop_kind), key=_stop_kind):
                    conn.queue.put_nowait(provider_pb2.ConnectResponse(cancel=provider_pb2.Cancellations(
                        attempts=[provider_pb2.AttemptRef(task_id=str(s.task_id), attempt=s.attempt,
                                                          handed_on_external_job_id=s.keep_job) for s in group],
                        reason=reason, unstarted_only=unstarted)))
        for provider_id, suspends in cs.suspends.items():
            conn = self._current(provider_id)
            if conn is not None:
                for (resume, reason), group in itertools.groupby(suspends, key=lambda s: (s.resume, s.reason)):
                    conn.queue.put_nowait(provider_pb2.ConnectResponse(suspend=provider_pb2.Suspensions(
                        attempts=[provider_pb2.AttemptRef(task_id=str(s.task_id), attempt=s.attempt) for s in group],
                        resume=resume, reason=reason)))
        for provider_id, probe_id in cs.probes.items():
            conn = self._current(provider_id)
            if conn is not None:
                conn.queue.put_nowait(provider_pb2.ConnectResponse(probe=provider_pb2.Probe(probe_id=probe_id)))
        for conn_id in cs.closes:
            conn = self._conns.get(conn_id)
            if conn is not None:
                conn.queue.put_nowait(None)

    def close_all(self) -> None:
        """End every agent stream (the server stopped taking changes); agents reconnect and are
        told why."""
        for conn in self._conns.values():
            conn.queue.put_nowait(None)

    def _current(self, provider_id: str) -> Connection | None:
        return self._conns.get(self.d.core.stream_of(provider_id))

    def link(self, provider_id: str) -> tuple[int, Callable[[provider_pb2.ConnectResponse], None]] | None:
        """The provider's current stream (its id) and how to send on it; None if it has none."""
        conn = self._current(provider_id)
        return None if conn is None else (conn.id, conn.queue.put_nowait)

    # ----- the registry --------------------------------------------------------------

    @rpc
    async def ListProviders(self, request, context):
        page = list_providers(self.d.core.providers_view(), request.filter, request.page_token,
                              page_size(request.page_size))
        return provider_pb2.ListProvidersResponse(providers=[convert.provider_to_proto(p) for p in page.items],
                                                  next_page_token=page.next_page_token)

    @rpc
    async def DrainProvider(self, request, context):
        if not request.provider_id:
            raise InvalidArgument("provider_id", "must not be empty; name the provider to drain")
        check_seconds("deadline_seconds", request.deadline_seconds, "no limit")
        if request.deadline_seconds and not request.wait:
            raise InvalidArgument("deadline_seconds", "only applies with wait; without it tasks are handed on at once")
        await self.d.core.call(lambda engine: engine.drain(request.provider_id, request.wait, request.deadline_seconds))
        return provider_pb2.DrainProviderResponse(provider=self._provider(request.provider_id))

    @rpc
    async def ResumeProvider(self, request, context):
        if not request.provider_id:
            raise InvalidArgument("provider_id", "must not be empty; name the provider to resume")
        await self.d.core.call(lambda engine: engine.resume_provider(request.provider_id))
        return provider_pb2.ResumeProviderResponse(provider=self._provider(request.provider_id))

    @rpc
    async def RevokeProvider(self, request, context):
        if not request.provider_id:
            raise InvalidArgument("provider_id", "must not be empty; name the provider to revoke")
        check_text("reason", request.reason)
        await self.d.core.call(lambda engine: engine.revoke(request.provider_id, request.reason))
        if self.access is not None and not self.access.insecure:
            await self.access.revoke_identity(request.provider_id)
        return provider_pb2.RevokeProviderResponse(provider=self._provider(request.provider_id))

    @rpc
    async def GetProvider(self, request, context):
        return provider_pb2.GetProviderResponse(provider=self._provider(request.provider_id))

    def _provider(self, provider_id: str) -> provider_pb2.Provider:
        view = self.d.core.provider_view(provider_id)
        if view is None:
            raise NotFound(f"provider {provider_id!r} not found; `jobplane providers list` shows them")
        return convert.provider_to_proto(view)


def _settled(fut: asyncio.Future) -> None:
    """Retrieved, so asyncio logs no "exception was never retrieved" for each of 20,000 streams
    when the server stops (the core logs why it stopped, once)."""
    if not fut.cancelled() and fut.exception() is not None:
        log.debug("an agent's op was not taken: %s", fut.exception())


def _to_scan(items) -> list[provider_pb2.SignatureToScan]:
    return [provider_pb2.SignatureToScan(signature_id=ask.signature_id, signature=convert.struct(ask.signature))
            for ask in items]


def _connect(engine, hello, conn_id: int, takeover: bool):
    """The engine's connect, and the attempts the provider keeps after it (its welcome's)."""
    provider = engine.connect(hello, conn_id, takeover=takeover)
    return provider, engine.kept(provider.id)


def _check_identity(name: str) -> bool:
    """The hello must name the provider the certificate was issued to; True if the caller is
    proven by a certificate, so a new stream of theirs may take over an old one."""
    caller = current_caller.get()
    if caller.method != "certificate":
        return False
    if name != caller.identity:
        raise PermissionDenied(f"this certificate was issued to provider {caller.identity!r}; "
                               f"the hello names {name!r}")
    return True


def _stop_kind(stop: Stop) -> tuple[str, bool]:
    """What one Cancellations message shares: its reason, and whether it takes back only what has not started."""
    return stop.reason, stop.unstarted_only


def _coalesce(first, queue: asyncio.Queue, acks_with_assignments: bool = False) -> tuple[list, bool]:
    """Everything queued for one stream as few messages as possible: the message rate,
    not the task count, is what Python gRPC runs out of. Assignments merge into one
    message; acks are cumulative, so only the last is sent (carrying every rejection),
    inside the assignments when the agent reads it there and nothing else goes between
    (a commit that frees slots both acknowledges reports and assigns: one message, not two).
    True if the stream should close."""
    assigns, acks, others, closing = [], None, [], False
    message = first
    while True:
        which = message.WhichOneof("message")
        if which == "assign":
            assigns.append(message)
        elif which == "ack":
            if acks is not None and acks.ack.rejected:
                rejected = [*acks.ack.rejected, *message.ack.rejected]
                message = provider_pb2.ConnectResponse(ack=provider_pb2.Ack(seq=message.ack.seq, rejected=rejected))
            acks = message
        else:
            others.append(message)
        if queue.empty():
            break
        message = queue.get_nowait()
        if message is None:
            closing = True
            break
    out = assigns[:1]  # one as it is (no copy); more merge into the first
    for more in assigns[1:]:
        out[0].assign.assignments.extend(more.assign.assignments)
        out[0].assign.scan.extend(more.assign.scan)
    if acks is not None and out and not others and acks_with_assignments:
        out[0].assign.ack.CopyFrom(acks.ack)
        acks = None
    return out + others + ([acks] if acks is not None else []), closing

