"""An attempt's pause: whether the server has it suspended, and how long it has run, not
counting the time it was paused, so that its timeout waits while it is paused."""

from __future__ import annotations

import asyncio
import time


class Pause:
    """Suspended or not; `ran(start)` is the time since `start` (monotonic) minus pauses."""

    def __init__(self) -> None:
        self._since: float | None = None
        self._paused_total = 0.0
        self._changed = asyncio.Event()

    @property
    def paused(self) -> bool:
        return self._since is not None

    def set(self, paused: bool) -> None:
        """Pause (or go on); the waiter of `changed()` wakes."""
        now = time.monotonic()
        if paused and self._since is None:
            self._since = now
        elif not paused and self._since is not None:
            self._paused_total += now - self._since
            self._since = None
        else:
            return
        self._changed.set()

    def ran(self, start: float) -> float:
        """Seconds since `start` that the attempt was not paused."""
        now = time.monotonic()
        current = now - self._since if self._since is not None else 0.0
        return now - start - self._paused_total - current

    async def changed(self) -> None:
        """Until the next pause or resume."""
        self._changed.clear()
        await self._changed.wait()
