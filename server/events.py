"""Fan-out of committed events to watchers. Each watcher has a bounded queue; one that
falls behind is cut off (told where to resume) so it never slows the server or others."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .domain.model import Event, EventKind

WATCHER_QUEUE_BATCHES = 10_000


@dataclass(eq=False)
class Subscription:
    job_id: int | None
    kind: EventKind | None = None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(WATCHER_QUEUE_BATCHES))
    overflowed: bool = False


class EventHub:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.last_id = 0
        self.oldest_id = 1  # older events were compacted away (--event-retention)

    def subscribe(self, job_id: int | None, kind: EventKind | None = None) -> Subscription:
        sub = Subscription(job_id, kind)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, events: list[Event]) -> None:
        if not events:
            return
        self.last_id = events[-1].id
        for sub in list(self._subs):
            batch = events if sub.job_id is None else [e for e in events if e.job_id == sub.job_id]
            if sub.kind is not None:
                batch = [e for e in batch if e.kind == sub.kind]
            if not batch:
                continue
            try:
                sub.queue.put_nowait(batch)
            except asyncio.QueueFull:
                sub.overflowed = True
                self._subs.discard(sub)
                _wake(sub)

    def close(self) -> None:
        for sub in list(self._subs):
            _wake(sub)
        self._subs.clear()


def _wake(sub: Subscription) -> None:
    """Make a blocked `queue.get()` return so the watcher sees it was cut off or closed."""
    try:
        while True:
            sub.queue.get_nowait()
    except asyncio.QueueEmpty:
        pass
    sub.queue.put_nowait(None)
