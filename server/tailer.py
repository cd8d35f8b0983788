"""On a follower replica: the events the leader commits, published to this replica's own
watchers. PostgreSQL wakes it (LISTEN jobplane_events; the leader's commit notifies), and it
reads what is new by id, so a lost notification (a dropped connection, a PostgreSQL restart)
is only a delay until the next poll, never a gap: event ids are committed in order, one
leader at a time, so `id > last` never skips one that commits later."""

from __future__ import annotations

import asyncio
import logging
import select
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from peewee import Database

from .domain.model import EventKind
from .events import EventHub
from .store.failures import reading
from .store.lease import NOTIFY_CHANNEL
from .store.reads import Reads

log = logging.getLogger(__name__)

PAGE = 1000
POLL = 1.0  # seconds between catch-up reads when no notification comes


class Tailer:
    def __init__(self, reads: Reads, hub: EventHub, readers: ThreadPoolExecutor,
                 on_policy: Callable[[], Awaitable[None]] | None = None, poll: float = POLL) -> None:
        self._reads = reads
        self._hub = hub
        self._readers = readers
        self._on_policy = on_policy  # the policies changed: reload them
        self._poll = poll
        self._wake = asyncio.Event()
        self._listener: _Listener | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._listener = _Listener(self._reads.db, lambda: loop.call_soon_threadsafe(self._wake.set))
        self._listener.start()
        self._task = loop.create_task(self._run(), name="jobplane-tailer")

    async def stop(self) -> None:
        """Stop following; what was committed before is published first (`catch_up`)."""
        if self._listener is not None:
            self._listener.stop()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def catch_up(self) -> None:
        """Publish every event committed after the last one published."""
        while True:
            events = await asyncio.get_running_loop().run_in_executor(
                self._readers, reading, self._reads.db, self._reads.events_after, self._hub.last_id, None, PAGE)
            self._hub.publish(events)
            if self._on_policy is not None and any(e.kind == EventKind.POLICY for e in events):
                await self._on_policy()
            if len(events) < PAGE:
                return

    async def _run(self) -> None:
        failing = False
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that comes
            # as the wake-up does, and `stop` (a takeover) would then wait for this loop forever.
            try:
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.catch_up()
                failing = False
            except Exception as exc:  # StoreFailure, or reloading the policies failed: never stop following
                if not failing:
                    log.warning("following the leader's events: %s (retrying)", exc)
                failing = True


class _Listener:
    """A thread holding a PostgreSQL connection of its own that LISTENs on the leader's channel
    and calls `wake` on each notification (and after reconnecting, when some may be lost)."""

    def __init__(self, db: Database, wake: Callable[[], None]) -> None:
        self._db = db
        self._wake = wake
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobplane-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        import psycopg2

        while not self._stopped.is_set():
            conn = None
            try:
                conn = psycopg2.connect(dbname=self._db.database, **self._db.connect_params)
                conn.autocommit = True
                conn.cursor().execute(f"LISTEN {NOTIFY_CHANNEL}")
                self._wake()  # notifications may have been missed while (re)connecting
                while not self._stopped.is_set():
                    if select.select([conn], [], [], 0.5)[0]:
                        conn.poll()
                        if conn.notifies:
                            conn.notifies.clear()
                            self._wake()
            except psycopg2.Error:
                self._stopped.wait(0.5)  # PostgreSQL is away; the poll carries on meanwhile
            finally:
                if conn is not None:
                    conn.close()
