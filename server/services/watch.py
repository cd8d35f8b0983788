"""The event stream behind WatchEvents and WatchContinuations: replay what is stored after
an id, then stream live, with no gap and no duplicate.

The stream is written as frames: serialized responses of the form `repeated Event events = 1`,
which WatchEventsResponse and WatchContinuationsResponse share. Each event is encoded once
when it is published (events.py) and a watcher that sees events as they are writes those
bytes unchanged, several commits' worth at a time when it has fallen a little behind or
when there are many watchers (events.py spaces their takes; protobuf merges concatenated
messages, so joined frames are one response with all the events). Callers with policies of
their own get re-normalized copies, encoded for them.
`register_with_frames` lets the two methods' handlers send frames as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

import grpc

from jobplane.v1 import event_pb2

from ..domain.model import EventKind
from ..events import Batch
from . import convert
from ..security.policy import current_caller
from .base import Deps

REPLAY_PAGE = 1000
# The most bytes joined into one frame (clients accept 4 MiB messages by default).
FRAME_BYTES = 1 << 20
# The methods whose handlers send stream_events' frames.
FRAME_METHODS = ("/jobplane.v1.EventService/WatchEvents", "/jobplane.v1.JobService/WatchEvents",
                 "/jobplane.v1.ContinuationService/WatchContinuations")
_EVENTS_TAG = b"\x0a"  # field 1, length-delimited

Renormalize = Callable[[event_pb2.Event], None] | None
Keep = Callable[[list[event_pb2.Event]], Awaitable[list[event_pb2.Event]]] | None


async def stream_events(deps: Deps, context, after_id: int, *, job_id: int | None = None,
                        kind: EventKind | None = None, keep: Keep = None) -> AsyncIterator[bytes]:
    """Frames of the events after `after_id` (of one job, or one kind), stored then live.
    `keep` picks the events a filtered watcher sees (as the caller's policies show them).
    A watcher that falls behind is cut off with RESOURCE_EXHAUSTED saying where to resume."""
    if after_id and after_id < deps.hub.oldest_id - 1:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"after_event_id: events before id {deps.hub.oldest_id} were compacted (--event-retention);"
                            f" resume with after_event_id={deps.hub.oldest_id - 1}, or 0 for the oldest there is")
    sub = deps.hub.subscribe(job_id, kind)  # before the replay, so nothing falls in between
    renormalize = deps.policies.normalizer(current_caller.get()) if deps.policies is not None else None
    try:
        last = after_id
        while True:
            page = await deps.read(_replay_page, deps, last, job_id, kind)
            if page:
                last = page[-1].id
                events = _seen_by(page, renormalize)
                if keep is not None:
                    events = await keep(events)
                if events:
                    yield encode_events(events)
            if len(page) < REPLAY_PAGE:
                break
        while True:
            batches = await sub.take()
            if batches is None:
                if deps.leading and deps.core.failed is not None:  # a follower has no core
                    await context.abort(grpc.StatusCode.UNAVAILABLE,
                                        f"{deps.core.failed}; resume with after_event_id={last}")
                if sub.overflowed:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                        f"watcher fell behind; resume with after_event_id={last}")
                return
            if keep is None:
                for frame, last in _live_frames(batches, last, renormalize):
                    yield frame
                continue
            fresh = [m for batch in batches for m in batch.messages if m.id > last]
            if fresh:
                last = fresh[-1].id
                kept = await keep(_seen_by(fresh, renormalize, shared=True))
                if kept:
                    yield encode_events(kept)
    finally:
        deps.hub.unsubscribe(sub)


def encode_event(event: event_pb2.Event) -> bytes:
    """One event as its `events` field in a frame."""
    data = event.SerializeToString()
    return _EVENTS_TAG + _varint(len(data)) + data


def encode_events(events: Iterable[event_pb2.Event]) -> bytes:
    return b"".join(map(encode_event, events))


def register_with_frames(add_to_server: Callable[[Any, Any], None], servicer: Any,
                         server: grpc.aio.Server) -> None:
    """Register a servicer with a generated `add_*_to_server`, the response serializer of its
    FRAME_METHODS passing bytes (stream_events' frames) through as they are."""
    add_to_server(servicer, _FramesServer(server))


def _live_frames(batches: list[Batch], last: int,
                 renormalize: Renormalize) -> Iterator[tuple[bytes, int]]:
    """The frames to write for these batches, each with the last event id it carries. Events up
    to `last` (sent already, by the replay) are left out."""
    parts: list[bytes] = []
    size = 0
    for batch in batches:
        if batch.last_id <= last:
            continue
        if renormalize is None and batch.first_id > last:
            data = batch.data  # the shared bytes: the hot path
        else:
            data = encode_events(_seen_by([m for m in batch.messages if m.id > last], renormalize,
                                          shared=True))
        if parts and size + len(data) > FRAME_BYTES:
            yield b"".join(parts), last
            parts, size = [], 0
        parts.append(data)
        size += len(data)
        last = batch.last_id
    if parts:
        yield b"".join(parts), last


def _seen_by(events: list, renormalize: Renormalize, shared: bool = False) -> list:
    """The events with the normalized status the caller's own policies give them; messages
    shared with other watchers are copied before they are changed."""
    if renormalize is None:
        return events
    out = []
    for event in events:
        if shared:
            copy = event_pb2.Event()
            copy.CopyFrom(event)
            event = copy
        renormalize(event)
        out.append(event)
    return out


def _replay_page(deps: Deps, after_id: int, job_id: int | None, kind: EventKind | None) -> list:
    """On a reader thread: the next stored events, as messages."""
    return [convert.event_to_proto(e) for e in deps.reads.events_after(after_id, job_id, REPLAY_PAGE, kind)]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _pass_frames(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
    if handler is None:
        return None
    serialize = handler.response_serializer

    def frame_or_message(response: Any) -> bytes:
        return response if isinstance(response, bytes) else serialize(response)

    return handler._replace(response_serializer=frame_or_message)


class _FramesHandler(grpc.GenericRpcHandler):
    """A generic handler whose FRAME_METHODS send frames as they are."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner

    def service(self, handler_call_details):
        handler = self._inner.service(handler_call_details)
        if handler_call_details.method in FRAME_METHODS:
            return _pass_frames(handler)
        return handler


class _FramesServer:
    """The server as a generated `add_*_to_server` sees it, with FRAME_METHODS' handlers
    swapped for ones that send frames as they are."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._server.add_generic_rpc_handlers(tuple(_FramesHandler(h) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self._server.add_registered_method_handlers(service, {
            name: _pass_frames(h) if f"/{service}/{name}" in FRAME_METHODS else h
            for name, h in handlers.items()})
