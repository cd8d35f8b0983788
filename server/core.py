"""The core loop: applies queued operations to the engine in batches, commits each
batch's changes in one transaction on the writer thread, and only then answers callers,
tells providers and publishes events. One batch at a time, so the engine never sees
a half-committed state."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from .domain.engine import Engine
from .domain.changes import ChangeSet
from .errors import Deposed, EngineFailure, JobplaneError, StoreFailure
from .eventlog import log_events
from .events import EventHub
from .metrics import ServerMetrics
from .store.records import ConflictRule, InventoryView, ProviderView
from .store.lease import Term
from .store.repo import Store

log = logging.getLogger(__name__)

Op = Callable[[Engine], Any]


class Core:
    def __init__(self, engine: Engine, store: Store, hub: EventHub, writer: ThreadPoolExecutor,
                 deliver: Callable[[ChangeSet], None], metrics: ServerMetrics | None = None,
                 term: Term | None = None) -> None:
        self.engine = engine
        self.term = term  # a replica's leadership: every commit checks it still holds
        self.metrics = metrics or ServerMetrics()
        self.store = store
        self.hub = hub
        self._writer = writer
        self._deliver = deliver
        self._pending: list[tuple[Op, asyncio.Future]] = []
        self._open = _Batch()  # applied to the engine, to commit once the batch before it has
        self._inflight: _Batch | None = None  # committing on the writer thread
        self._streams: dict[str, int] | None = None  # while a batch is delivered: _Batch.streams
        self._audits: list[dict] = []  # audit rows for the next batch
        # Heartbeats for the next batch, one per provider: (stream id, live facts, arrival). No
        # future, op or commit each: a quiet fleet's heartbeats cost a dict entry until applied.
        self._heard: dict[str, tuple[int, Mapping[str, float], float]] = {}
        self._writing = False  # a batch's commit is in flight (heartbeats need not wait for it)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.failed: JobplaneError | None = None
        self.dead = asyncio.Event()  # set when a database failure (or a bug) stopped the core

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="jobplane-core")

    async def stop(self, reason: JobplaneError | None = None) -> None:
        """Stop applying operations; with a `reason`, every operation not yet committed fails
        with it (a replica stepping down: its callers retry on the new leader)."""
        if reason is not None and self.failed is None:
            self.failed = reason
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if reason is not None:
            _fail(self._pending, reason)
            self._pending = []

    def enqueue(self, op: Op) -> asyncio.Future:
        """Schedule `op(engine)`; the future resolves once its changes are committed."""
        fut = asyncio.get_running_loop().create_future()
        if self.failed is not None:
            fut.set_exception(type(self.failed)(f"the server is stopping: {self.failed}"))
            return fut
        self._pending.append((op, fut))
        self._wake.set()
        return fut

    def audit(self, row: dict) -> None:
        """Record an audit row with the next batch (group commit, like every other write)."""
        self._audits.append(row)
        self._wake.set()

    async def call(self, op: Op) -> Any:
        return await self.enqueue(op)

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                await asyncio.sleep(0)  # let reads that already arrived join this batch
                self._wake.clear()
                self._step()
        except asyncio.CancelledError:  # stopped mid-batch: its callers are told, not left waiting
            self._fail_unanswered(self.failed or Deposed("the server stopped before this change was confirmed; retry"))
            raise
        except (StoreFailure, EngineFailure) as exc:
            self.failed = exc
            self._fail_unanswered(exc)
            _fail(self._pending, exc)
            if isinstance(exc, Deposed):
                log.warning("stepping down: %s", exc)
            else:
                log.critical("stopping: %s", exc)
            self.dead.set()

    def _step(self) -> None:
        """Apply what arrived; once the batch before has committed, commit what was applied
        since (one batch), and answer and announce the one before while it commits. So the
        engine works on the next batch while the writer thread commits the last one, and a
        batch gathers everything that arrived during the commit before it, as before."""
        self._take()
        done = self._inflight
        if done is not None:
            if not done.ended:
                return  # still committing: what arrives meanwhile joins the open batch
            self._writing = False
            _raise_failure(done)  # a failed commit: nothing after it may be written
            self._inflight = None
        try:
            following = self._close()
        finally:
            if done is not None:
                self._finish(done)
        if following.write is None:  # nothing to commit: answered now, after the batch before it
            self._finish(following)

    def _take(self) -> None:
        """Apply the operations (and heartbeats) that arrived to the engine: their changes join
        the open batch; their callers are answered once it commits."""
        batch, self._pending = self._pending, []
        heard, self._heard = self._heard, {}
        if not batch and not heard:
            return
        self.engine.begin(time.time())
        if heard:
            try:
                self._take_heartbeats(heard)
            except Exception as exc:  # a bug, as in an op below
                log.exception("the engine failed taking heartbeats")
                raise _internal(exc) from exc
        outcomes = self._open.outcomes
        for i, (op, fut) in enumerate(batch):
            try:
                outcomes.append((fut, op(self.engine), None))
            except JobplaneError as exc:
                outcomes.append((fut, None, exc))
            except Exception as exc:  # a bug: the engine may be half-changed, so commit nothing
                outcomes += [(f, None, None) for _, f in batch[i:]]  # all told the failure (_fail_unanswered)
                log.exception("the engine failed applying an operation")
                raise _internal(exc) from exc

    def _close(self) -> _Batch:
        """Close the open batch: its changes (after a dispatch) are staged on this thread and
        committed on the writer thread. A failure (StoreFailure) leaves the engine ahead of the
        database: the core stops."""
        batch, self._open = self._open, _Batch()
        self.engine.begin(time.time())
        cs = batch.cs = self.engine.take_changes()
        cs.audits, self._audits = self._audits + cs.audits, []  # the callers', then the engine's own
        # Where what this batch tells providers goes: their streams now. By the time it is
        # delivered the engine may have taken a later batch's reconnect; an assignment made for
        # the old stream must not reach the new one (the engine may have handed its task on).
        batch.streams = {pid: self.stream_of(pid) for pid in itertools.chain(
            cs.assignments, cs.scans, cs.stops, cs.suspends, cs.probes)}
        # Its timings counted before its commit, not after: a scrape that reads the committed rows
        # (a task RUNNING) must find the histograms counting it too, not a loop turn later. So a
        # batch whose staging or commit fails stays counted: a single server then takes no more
        # changes (jobplane_up 0) but still serves /metrics, and a replica deposed mid-commit
        # follows on with these counts while the new leader counts the same tasks again.
        self.metrics.take(cs)
        if cs.persisted():
            try:
                staged = self.store.stage(cs)
            except Exception as exc:  # a bug: applied, yet it can never be written; its callers are told
                log.exception("staging a batch for its commit failed")
                failure = _internal(exc)
                _fail([(None, fut) for fut, _, _ in batch.outcomes], failure)
                raise failure from exc
            batch.started = time.perf_counter()
            # The writer thread's own future, not run_in_executor's asyncio one chained to it: its
            # end wakes the loop once (one call_soon_threadsafe), not through a chain of callbacks.
            batch.write = self._writer.submit(self.store.write, staged, self.term)
            batch.write.add_done_callback(functools.partial(_call_soon, asyncio.get_running_loop(), self._written, batch))
            self._inflight, self._writing = batch, True
        return batch

    def _written(self, batch: _Batch) -> None:
        """On the loop, once the batch's commit ended (committed or failed)."""
        batch.seconds = time.perf_counter() - batch.started
        batch.ended = True
        if self._inflight is batch:
            self._writing = False
        self._wake.set()

    def _finish(self, batch: _Batch) -> None:
        """A batch is committed (or had nothing to commit): answer its callers, tell providers,
        publish its events."""
        cs = batch.cs
        if batch.write is not None:
            self.metrics.commit_seconds.observe(batch.seconds)
            self.metrics.batch_operations.observe(len(batch.outcomes))
        # Callers first: what their futures' callbacks queue for a provider (the ack of its
        # reports) is queued before its stream's writer wakes for the assignments below, so both
        # go as one message (ProviderService's _coalesce), not two.
        for fut, result, exc in batch.outcomes:
            if fut.done():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)
        self._streams = batch.streams
        try:
            self._deliver(cs)
        finally:
            self._streams = None
        self.hub.publish(cs.events)
        log_events(cs.events)
        self.metrics.events.inc(by=len(cs.events))
        loop = asyncio.get_running_loop()
        for timer in cs.timers:
            loop.call_later(timer.delay, self.enqueue, timer.op)
        # The commit's future holds its done callback, which holds the batch: without this the
        # batch, its ChangeSet and everything in it (events, attempts, rows) would wait for the
        # cyclic collector instead of being freed here.
        batch.write = None

    def _fail_unanswered(self, exc: JobplaneError) -> None:
        """Every caller whose change is applied but not known to be committed is told `exc`."""
        for batch in (self._inflight, self._open):
            if batch is not None:
                _fail([(None, fut) for fut, _, _ in batch.outcomes], exc)

    # ----- read-only snapshots of live state ---------------------------------------------
    # Services read the engine only through these (frozen copies, never the engine's objects);
    # every change goes through an op.

    def providers_view(self) -> tuple[ProviderView, ...]:
        """Every provider the engine knows, by id, as it is now."""
        return tuple(_provider_view(self.engine, p) for _, p in sorted(self.engine.providers.items()))

    def provider_view(self, provider_id: str) -> ProviderView | None:
        provider = self.engine.providers.get(provider_id)
        return None if provider is None else _provider_view(self.engine, provider)

    def last_heard(self) -> dict[str, float]:
        """When each connected provider was last heard from, by id (for /metrics: no view of
        each provider is built, so a scrape stays cheap with 20,000 of them)."""
        return {p.id: p.last_seen for p in self.engine.providers.values() if p.conn_id and p.last_seen}

    def stream_of(self, provider_id: str) -> int:
        """The id of the provider's live stream, where what is for it is sent (0: none); while a
        batch is delivered, its stream when that batch closed."""
        if self._streams is not None and provider_id in self._streams:
            return self._streams[provider_id]
        provider = self.engine.providers.get(provider_id)
        return provider.conn_id if provider is not None else 0

    def conflict_rules(self) -> tuple[ConflictRule, ...]:
        """The conflict matrix, by name (the rules are frozen)."""
        return tuple(rule for _, rule in sorted(self.engine.conflict_rules.items()))

    def heartbeat(self, provider_id: str, conn_id: int, facts: Mapping[str, float]) -> None:
        """A provider's heartbeat, taken at the start of the next batch (before that batch's
        ops: it arrived first). It changes nothing that is persisted, so a batch of heartbeats
        commits nothing: the provider was heard from, and new live facts may let work with
        runtime conditions start. Kept as one entry per provider until then (a later one of the
        same stream replaces it), with no future or op of its own."""
        if self.failed is not None:
            return
        if self._writing and provider_id not in self._heard and self._take_now(provider_id, conn_id, facts):
            return
        earlier = self._heard.get(provider_id)
        arrived = earlier[2] if earlier is not None and earlier[0] == conn_id else time.perf_counter()
        self._heard[provider_id] = (conn_id, facts, arrived)
        self._wake.set()

    def _take_now(self, provider_id: str, conn_id: int, facts: Mapping[str, float]) -> bool:
        """While a batch's commit is in flight (an fsync can take a while on a busy disk), a
        heartbeat that changes nothing but the provider's last-seen time is taken at once rather
        than after that commit: it writes nothing and makes no change to announce. False if it
        has to wait for a batch: its new live facts may let queued work start, or suspend a task
        it runs (conditions.live_facts)."""
        engine = self.engine
        provider = engine.providers.get(provider_id)
        if provider is None or provider.conn_id != conn_id:
            return False
        if facts != provider.live and (provider.in_flight or engine.waits_on_facts()):
            return False
        engine.begin(time.time())
        _heard(engine, provider_id, conn_id, facts)
        engine.supervision.pace.taken(1)
        self.metrics.heartbeat_seconds.observe(0.0)
        return True

    def _take_heartbeats(self, heard: dict[str, tuple[int, Mapping[str, float], float]]) -> None:
        engine, observe, now = self.engine, self.metrics.heartbeat_seconds.observe, time.perf_counter()
        for provider_id, (conn_id, facts, arrived) in heard.items():
            observe(now - arrived)
            _heard(engine, provider_id, conn_id, facts)
        engine.supervision.pace.taken(len(heard))


@dataclass
class _Batch:
    """Operations applied to the engine whose changes commit together, in one transaction."""

    outcomes: list[tuple[asyncio.Future, Any, JobplaneError | None]] = field(default_factory=list)
    cs: ChangeSet | None = None
    write: Future | None = None  # its commit on the writer thread; None: nothing to write
    ended: bool = False  # its commit ended, and the loop was told (_written)
    started: float = 0.0  # when its commit began (perf_counter)
    seconds: float = 0.0  # how long its commit took
    streams: dict[str, int] = field(default_factory=dict)  # provider -> its stream when the batch closed


def _raise_failure(batch: _Batch) -> None:
    """Raise what the batch's commit raised (StoreFailure or Deposed), if it failed."""
    exc = batch.write.exception()
    if exc is not None:
        raise exc if isinstance(exc, JobplaneError) else StoreFailure(f"the commit failed: {exc!r}")


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable, batch: _Batch, _: Future) -> None:
    """On the writer thread, as a commit ends: run `fn(batch)` on the loop (unless it closed:
    the server stopped meanwhile, and no one waits for the batch any more)."""
    try:
        loop.call_soon_threadsafe(fn, batch)
    except RuntimeError:
        pass


def _internal(exc: Exception) -> EngineFailure:
    return EngineFailure(f"internal error: {exc!r}; restart jobplane-server: it resumes from "
                         "its database, where every acknowledged change is")


def _fail(batch: list[tuple[Op, asyncio.Future]], exc: JobplaneError) -> None:
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(exc)


def _heard(engine: Engine, provider_id: str, conn_id: int, facts: Mapping[str, float]) -> None:
    engine.report(provider_id, conn_id, [])  # no reports: only its last-seen time
    provider = engine.providers.get(provider_id)
    if provider is not None and facts != provider.live:
        engine.live_facts(provider_id, conn_id, facts)


def _provider_view(engine: Engine, p) -> ProviderView:
    inventory = tuple(InventoryView(p.id, sid, e.description, e.present, dict(e.details), e.reason, e.scan_time,
                                    e.expires, e.source) for sid, e in sorted(p.inventory.items()))
    out = len(p.in_flight)
    return ProviderView(p.id, p.state, dict(p.facts), dict(p.labels), p.slots, min(out, p.slots), p.heartbeat,
                        p.connect_time, p.last_seen, bool(p.conn_id), p.containment, p.kill_deadline,
                        p.grace_until, p.backoff_cap, inventory, p.drained, p.capacity, engine.capacity.used(p),
                        max(0, out - p.slots))
