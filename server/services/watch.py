"""The event stream behind WatchEvents and WatchContinuations: replay what is stored after
an id, then stream live, with no gap and no duplicate."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from jobplane.v1 import event_pb2

from ..domain.model import EventKind
from . import convert
from ..security.policy import current_caller
from .base import Deps

REPLAY_PAGE = 1000


async def stream_events(deps: Deps, context, after_id: int, *, job_id: int | None = None,
                        kind: EventKind | None = None) -> AsyncIterator[list[event_pb2.Event]]:
    """Batches of events after `after_id` (of one job, or one kind), stored then live.
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
            events = await deps.read(_replay_page, deps, last, job_id, kind)
            if events:
                last = events[-1].id
                yield _seen_by(events, renormalize)
            if len(events) < REPLAY_PAGE:
                break
        while True:
            batch = await sub.queue.get()
            if batch is None:
                if sub.overflowed:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                        f"watcher fell behind; resume with after_event_id={last}")
                return
            fresh = [m for m in batch if m.id > last]  # messages shared with other watchers
            if fresh:
                last = fresh[-1].id
                yield _seen_by(fresh, renormalize, shared=True)
    finally:
        deps.hub.unsubscribe(sub)


def _seen_by(events: list, renormalize, shared: bool = False) -> list:
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
    rows = deps.store.events_after(after_id, job_id, REPLAY_PAGE, kind)
    return [convert.event_to_proto(convert.event_from_row(r)) for r in rows]
