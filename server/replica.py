"""A replica's part in leadership (PostgreSQL only): take the lease when it is free, renew it
every lease/3, and stop leading before it can run out.

The lease's calls run on a thread of their own, so a long commit on the writer never delays a
renewal. A leader whose renewal has not come back within LEAD_FOR of the lease (counted from
when that renewal was sent) steps down at once, before the lease can run out and another take
it; a renewal that finds the lease taken, and a commit whose fence fails, do the same. Taking
over and stepping down are the server's (`lead`, `follow`); this module only decides when.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from peewee import DatabaseError, InterfaceError


from .store.lease import LeaseStore, Me, Term

log = logging.getLogger(__name__)

LEAD_FOR = 0.8  # of the lease: how long after a renewal was sent a leader may go on without the next


class Leadership:
    def __init__(self, store: LeaseStore, me: Me, lease: float, *, lead: Callable[[Term], Awaitable[None]],
                 follow: Callable[[str], Awaitable[None]], seen: Callable[[tuple | None], None]) -> None:
        self.me = me
        self.lease = lease
        self.term: Term | None = None
        self._store = store
        self._lead = lead  # take over at this term (restore the engine from the database)
        self._follow = follow  # stop leading, for this reason
        self._seen = seen  # what the lease says now (LeaseStore.leader), for a follower
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="jobplane-lease")
        self._started = time.time()
        self._task: asyncio.Task | None = None
        self._taking: asyncio.Task | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._stepping: set[asyncio.Task] = set()  # step-downs under way (the loop keeps weak references)
        self._failing = False

    async def first(self) -> None:
        """One round at once, before the server listens: lead now if the lease is free."""
        await self._round()
        if self._taking is not None:
            await asyncio.shield(self._taking)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="jobplane-lease")

    async def stop(self) -> None:
        """Stop taking part; a leader lets the lease go at once, so that another need not wait it out."""
        for task in (self._task, self._taking):
            if task is not None:
                task.cancel()
        term, self.term = self.term, None
        self._disarm()
        if term is not None:
            try:
                await self._call(self._store.resign, term)
            except (DatabaseError, InterfaceError, asyncio.TimeoutError) as exc:
                log.warning("could not let the lease go (another replica takes over when it runs out): %s", exc)
        self._executor.shutdown(wait=False)

    async def lost(self, reason: str, epoch: int | None = None) -> None:
        """Stop leading (a fence failed, the lease could not be renewed in time). With `epoch`:
        only if that is still the term this replica leads at (a failed takeover, or a late
        deadline, of a term already over must not end the next one)."""
        if self.term is None or (epoch is not None and self.term.epoch != epoch):
            return
        self.term = None
        self._disarm()
        if self._taking is not None and not self._taking.done() and self._taking is not asyncio.current_task():
            self._taking.cancel()
        await self._follow(reason)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await self._round()
            await asyncio.sleep(max(0.0, self.lease / 3 - (loop.time() - began)))

    async def _round(self) -> None:
        began = asyncio.get_running_loop().time()
        try:
            if self.term is not None:
                term = await self._call(self._store.renew, self.term, self.lease)
                if term is None:
                    await self.lost("another replica holds the lease", self.term.epoch if self.term else None)
                elif self.term is not None:
                    self.term = term
                    self._arm(began)
            else:
                term = await self._call(self._store.take, self.me, self.lease)
                if term is not None:
                    self.term = term
                    self._arm(began)
                    log.info("took the lease at epoch %d: leading", term.epoch)
                    # Renewals go on while the engine is restored, however long that takes.
                    self._taking = asyncio.get_running_loop().create_task(self._take(term), name="jobplane-takeover")
            await self._call(self._store.heartbeat, self.me, self._started)
            if self.term is None:
                self._seen(await self._call(self._store.leader))
            if self._failing:
                log.info("the database answers the lease's calls again")
            self._failing = False
        except (DatabaseError, InterfaceError, asyncio.TimeoutError) as exc:
            if not self._failing:
                log.warning("lease: the database did not answer (%s); %s", _short(exc),
                            "leading until the lease runs short" if self.term else "retrying")
            self._failing = True

    async def _take(self, term: Term) -> None:
        try:
            await self._lead(term)
        except Exception as exc:  # never hold the lease without leading: let another replica try
            log.warning("taking over failed: %s", _short(exc), exc_info=not isinstance(exc, DatabaseError))
            await self.lost(f"taking over failed: {_short(exc)}", term.epoch)

    async def _call(self, fn, *args):
        loop = asyncio.get_running_loop()
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel (a stop) that
        # comes as the call ends (the tailer's wait was fixed for the same).
        async with asyncio.timeout(self.lease):
            return await loop.run_in_executor(self._executor, fn, *args)

    def _arm(self, began: float) -> None:
        """Step down unless a later renewal succeeds first."""
        self._disarm()
        loop = asyncio.get_running_loop()
        delay = max(0.0, began + LEAD_FOR * self.lease - loop.time())
        epoch = self.term.epoch if self.term is not None else None
        self._deadline = loop.call_later(delay, self._step_down, epoch)

    def _step_down(self, epoch: int | None) -> None:
        task = asyncio.get_running_loop().create_task(
            self.lost(f"could not renew the lease within {LEAD_FOR * self.lease:.1f}s", epoch))
        self._stepping.add(task)
        task.add_done_callback(self._stepping.discard)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
