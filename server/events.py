"""Fan-out of committed events to watchers. Each watcher has a bounded queue; one that
falls behind is cut off (told where to resume) so it never slows the server or others.
Each batch is converted to messages once, however many watchers receive it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .domain.model import Event, EventKind

WATCHER_QUEUE_BATCHES = 10_000


@dataclass(eq=False)
class Subscription:
    job_id: int | None
    kind: EventKind | None = None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(WATCHER_QUEUE_BATCHES))
    overflowed: bool = False


class EventHub:
    def __init__(self, to_message: Callable[[Event], Any] = lambda event: event) -> None:
        self._to_message = to_message
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
        messages: list | None = None  # converted on first need, shared by every watcher
        for sub in list(self._subs):
            if messages is None:
                messages = [self._to_message(e) for e in events]
            batch = [m for e, m in zip(events, messages) if _wants(sub, e)]
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


def _wants(sub: Subscription, event: Event) -> bool:
    return (sub.job_id is None or event.job_id == sub.job_id) and (sub.kind is None or event.kind == sub.kind)


def _wake(sub: Subscription) -> None:
    """Make a blocked `queue.get()` return so the watcher sees it was cut off or closed."""
    try:
        while True:
            sub.queue.get_nowait()
    except asyncio.QueueEmpty:
        pass
    sub.queue.put_nowait(None)
