"""The agent's slots: at most --slots attempts run at once; the others (queued ahead by the
server) wait in the order they came, each until a slot frees, its stop comes, or the time it
may wait has passed.

A freed slot goes straight to the first attempt waiting. Each wait is one future, with a done
callback on the attempt's stop and at most one timer: no task and no asyncio.wait, as every
queued-ahead command attempt waits here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Slots:
    """`n` slots; `on_left` is called each time an attempt stops waiting (a slot came, or it
    gave up)."""

    def __init__(self, n: int, on_left: Callable[[], None] = lambda: None) -> None:
        self._free = n
        # Attempts waiting, first come first: a future set True when given a slot, False when
        # its stop came or its time passed. There are waiters only while no slot is free
        # (_free is below 0 while adopted attempts hold more slots than there are).
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._on_left = on_left

    @property
    def waiting(self) -> int:
        """How many attempts wait for a slot."""
        return len(self._waiters)

    def locked(self) -> bool:
        """Whether no slot is free (a new attempt would wait)."""
        return self._free <= 0

    async def take(self, stop: asyncio.Future, within: float | None = None) -> bool:
        """Take a slot (True), unless `stop` is done first or none frees within `within`
        seconds (False, and no slot taken)."""
        if stop.done():
            return False
        if self._free > 0:
            self._free -= 1
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()

        def give_up(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(False)

        self._waiters.append(waiter)
        stop.add_done_callback(give_up)
        timer = None if within is None else loop.call_later(within, give_up)
        try:
            granted = await waiter
        except BaseException:  # cancelled: a slot given meanwhile goes to the next
            if _granted(waiter):
                self.release()
            raise
        finally:
            stop.remove_done_callback(give_up)
            if timer is not None:
                timer.cancel()
            if not _granted(waiter) and waiter in self._waiters:  # it gave up (rare: a scan)
                self._waiters.remove(waiter)  # (one given a slot left the queue then)
            self._on_left()
        if granted and stop.done():  # the slot and the stop came together: the slot goes on
            self.release()
            return False
        return granted

    def hold(self) -> None:
        """Take a slot at once, free or not: for an attempt that runs already (adopted from an
        earlier process of the agent, which may have had more slots). Until as many are
        released, a slot released is not free."""
        self._free -= 1

    def release(self) -> None:
        """A slot is free: it goes to the first attempt still waiting, else it is free (after
        any taken by hold beyond the slots there are)."""
        if self._free < 0:
            self._free += 1
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # (one done gave up, and has not run yet to leave)
                waiter.set_result(True)
                return
        self._free += 1


def _granted(waiter: asyncio.Future[bool]) -> bool:
    return waiter.done() and not waiter.cancelled() and waiter.result()
