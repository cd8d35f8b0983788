"""An attempt's pause: whether the server has it suspended, and how long it has run, not
counting the time it was paused, so that its timeout waits while it is paused; and the
suspends and resumes themselves, which the keeper does (keeper.py: `suspend`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .errors import KeeperUnavailable
from .keeper_client import Keeper

log = logging.getLogger(__name__)
# How long a suspend or resume may wait for the keeper's answer before the agent says so.
_SLOW_ANSWER = 5.0


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


class Pauses:
    """The suspends and resumes the server asks for, done at the keeper beside the link."""

    def __init__(self, keeper: Keeper) -> None:
        self._keeper = keeper
        self._under_way: set[asyncio.Task[None]] = set()

    def change(self, key: tuple[str, int], pid: int, pause: Pause, paused: bool,
               then: Callable[[], None] | None = None) -> None:
        """Pause (or continue) the attempt of command `pid`; `then` once that is done. A pause
        counts from now (a cancel that comes meanwhile continues it first: agent.on_cancel)."""
        if paused:  # its timeout waits from now on
            pause.set(True)
        task = asyncio.create_task(self._change(key, pid, pause, paused, then))
        self._under_way.add(task)
        task.add_done_callback(self._under_way.discard)

    async def _change(self, key: tuple[str, int], pid: int, pause: Pause, paused: bool,
                      then: Callable[[], None] | None) -> None:
        # A suspend the keeper has not answered in a while is told (a test saw one never answered).
        slow = asyncio.get_running_loop().call_later(
            _SLOW_ANSWER, lambda: log.warning("task %s attempt %d: the keeper has not answered the %s "
                                              "request in %gs", *key, "suspend" if paused else "resume",
                                              _SLOW_ANSWER))
        try:
            if not await self._keeper.suspend(pid, resume=not paused):
                log.info("did not %s task %s attempt %d: its keeper has it ended or ending",
                         "suspend" if paused else "resume", *key)
        except KeeperUnavailable as exc:
            log.error("cannot %s task %s attempt %d: %s", "suspend" if paused else "resume", *key, exc)
        finally:
            slow.cancel()
        if not paused:
            pause.set(False)
        if then is not None:
            then()
