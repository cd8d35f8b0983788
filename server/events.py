"""Fan-out of committed events to watchers. Each watcher has a bounded list of pending batches;
one that falls behind is cut off (told where to resume) so it never slows the server or others.

The work of a commit is done once per distinct filter, not once per watcher: each event is
converted to a message and encoded once, and the watchers that share a filter (all events, one
job's, one kind's) share one batch, whose bytes a watcher that sees events as they are writes
unchanged (services/watch.py). Per watcher, a publish is one append to a deque.

Under load, fewer and larger messages: gRPC's cost is per message per stream, on both sides,
so a watcher takes what is pending at most once per `spacing` seconds, and what arrives in
between joins its next frame. The spacing grows with the number of watchers, so that together
they write about FRAMES_PER_SECOND frames at most; a watcher that has not written for that long
(light load, an idle stream) gets its next event at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .domain.model import Event, EventKind

WATCHER_QUEUE_BATCHES = 10_000
# All watchers together take pending batches about this often at most (see `spacing`) ...
FRAMES_PER_SECOND = 4_000
# ... and none waits longer than this for the batches that arrived since its last frame.
MAX_SPACING = 0.05

FilterKey = tuple[int | None, EventKind | None]


@dataclass(frozen=True)
class Batch:
    """The events of one commit that one filter selects: messages and their encoded bytes."""

    first_id: int
    last_id: int
    # Shared by every watcher of the filter: copy one before changing it.
    messages: list[Any]
    # The messages encoded one after the other (see EventHub's `encode`).
    data: bytes


class Subscription:
    """One watcher: the batches published for it and not yet taken."""

    def __init__(self, job_id: int | None, kind: EventKind | None,
                 limit: int = WATCHER_QUEUE_BATCHES, *,
                 spacing: Callable[[], float] = lambda: 0.0) -> None:
        self.job_id = job_id
        self.kind = kind
        self.overflowed = False
        self._limit = limit
        self._pending: deque[Batch] = deque()
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._spacing = spacing
        self._last_take = float("-inf")

    @property
    def key(self) -> FilterKey:
        return self.job_id, self.kind

    def push(self, batch: Batch) -> bool:
        """Queue a batch; False (and nothing queued) if the watcher has `limit` pending."""
        if len(self._pending) >= self._limit:
            return False
        self._pending.append(batch)
        self._wake()
        return True

    def close(self, *, overflowed: bool = False) -> None:
        """End the subscription: what is pending is dropped and `take` returns None."""
        self._closed = True
        self.overflowed = self.overflowed or overflowed
        self._pending.clear()
        self._wake()

    async def take(self) -> list[Batch] | None:
        """Every pending batch, oldest first, waiting for one if there is none, and no sooner
        than `spacing` seconds after the last take (batches that arrive meanwhile come along);
        None once the subscription is closed (cut off for falling behind, or the server is
        stopping)."""
        loop = asyncio.get_running_loop()
        while not self._pending and not self._closed:
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        delay = self._last_take + self._spacing() - loop.time()
        if delay > 0 and not self._closed:
            await asyncio.sleep(delay)
        if self._closed:
            return None
        self._last_take = loop.time()
        batches = list(self._pending)
        self._pending.clear()
        return batches

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class EventHub:
    """Hands each commit's events to the watchers whose filter selects them."""

    def __init__(self, to_message: Callable[[Event], Any] = lambda event: event,
                 encode: Callable[[Any], bytes] = lambda message: b"", *,
                 watcher_queue: int = WATCHER_QUEUE_BATCHES) -> None:
        self._to_message = to_message
        self._encode = encode
        self._watcher_queue = watcher_queue  # batches a watcher may fall behind before it is cut off
        self._groups: dict[FilterKey, set[Subscription]] = {}
        self._watchers = 0
        self.last_id = 0
        self.oldest_id = 1  # older events were compacted away (--event-retention)

    def subscribe(self, job_id: int | None, kind: EventKind | None = None) -> Subscription:
        sub = Subscription(job_id, kind, self._watcher_queue, spacing=self.spacing)
        self._groups.setdefault(sub.key, set()).add(sub)
        self._watchers += 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        group = self._groups.get(sub.key)
        if group is not None and sub in group:
            group.remove(sub)
            self._watchers -= 1
            if not group:
                del self._groups[sub.key]

    @property
    def watchers(self) -> int:
        """How many watchers are subscribed now."""
        return self._watchers

    def spacing(self) -> float:
        """The least time between two takes of one watcher: the more watchers, the longer."""
        return min(MAX_SPACING, self._watchers / FRAMES_PER_SECOND)

    def publish(self, events: list[Event]) -> None:
        if not events:
            return
        self.last_id = events[-1].id
        if not self._groups:
            return
        by_job: dict[int | None, list[Event]] = {}
        if any(job_id is not None for job_id, _ in self._groups):
            for event in events:
                by_job.setdefault(event.job_id, []).append(event)
        # Each event is converted and encoded once, and only if some watcher's filter selects it
        # (a job's waiter watches its job events only: its tasks' events cost it nothing).
        items: dict[int, tuple[Event, Any, bytes]] = {}
        for (job_id, kind), group in list(self._groups.items()):
            chosen = events if job_id is None else by_job.get(job_id, ())
            if kind is not None:
                chosen = [event for event in chosen if event.kind == kind]
            if chosen:
                self._deliver(group, _batch([self._item(event, items) for event in chosen]))

    def _item(self, event: Event, items: dict[int, tuple[Event, Any, bytes]]) -> tuple[Event, Any, bytes]:
        item = items.get(event.id)
        if item is None:
            message = self._to_message(event)
            item = items[event.id] = (event, message, self._encode(message))
        return item

    def close(self) -> None:
        for group in self._groups.values():
            for sub in group:
                sub.close()
        self._groups.clear()
        self._watchers = 0

    def _deliver(self, group: set[Subscription], batch: Batch) -> None:
        behind = [sub for sub in group if not sub.push(batch)]
        for sub in behind:
            sub.close(overflowed=True)
            self.unsubscribe(sub)


def _batch(items: list[tuple[Event, Any, bytes]]) -> Batch:
    return Batch(items[0][0].id, items[-1][0].id, [message for _, message, _ in items],
                 b"".join(data for _, _, data in items))
