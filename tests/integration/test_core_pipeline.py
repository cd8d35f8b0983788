"""The core applies what arrives while the batch before it commits (core.py). Real engine,
real SQLite store; the commit is held back by a real write lock on the database file."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from jobplane.server.config import ServerConfig
from jobplane.server.core import Core
from jobplane.server.errors import EngineFailure
from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.model import Hello
from jobplane.server.events import EventHub
from jobplane.server.services.jobs import prepare_submit
from jobplane.server.store.db import open_database
from jobplane.server.store.repo import Store
from jobplane.v1 import job_pb2


async def _until(check) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting")


def _hello(name: str) -> Hello:
    return Hello(name, {}, {}, 2, 1.0, ())


def test_an_assignment_goes_to_the_stream_it_was_made_for_though_a_reconnect_was_applied_meanwhile(tmp_path):
    """Batch 1 assigns a task to provider a on stream 1; while it commits, a's reconnect on
    stream 2 (without the task) is applied. The assignment must not go down stream 2: the
    engine there has handed the task on, and the agent would run it a second time."""
    path = tmp_path / "jobplane.db"
    store = Store(open_database(f"sqlite:///{path}"))
    store.create_schema()
    sent: list[tuple[str, int, list]] = []  # (provider, stream, [(task, attempt)]) as delivered

    async def scenario() -> None:
        writer = ThreadPoolExecutor(1)
        core = None

        def deliver(cs) -> None:
            for provider, items in cs.assignments.items():
                sent.append((provider, core.stream_of(provider), [(a.task.id, a.attempt) for a in items]))

        hub = EventHub()
        core = Core(Engine(EngineConfig(reconnect_grace=30.0)), store, hub, writer, deliver)
        core.start()
        await core.call(lambda e: (e.connect(_hello("a"), conn_id=1), e.ready_signal("a", 1)))
        spec, drafts, _ = prepare_submit(job_pb2.JobSpec(name="j", tasks=[job_pb2.TaskSpec(name="t", command=["true"])]),
                                         "", ServerConfig())
        lock = sqlite3.connect(path, timeout=10)
        lock.execute("BEGIN IMMEDIATE")  # the next commit waits for this lock
        submitted = core.enqueue(lambda e: e.submit(spec, drafts))
        await _until(lambda: core._writing)  # the submit's batch (with its assignment) commits, held by the lock
        reconnected = core.enqueue(lambda e: (e.disconnect("a", 1), e.connect(_hello("a"), conn_id=2),
                                              e.ready_signal("a", 2)))
        await _until(lambda: core.stream_of("a") == 2)  # applied while the batch before it commits
        assert sent == [] and not submitted.done(), "nothing is acknowledged or delivered before its commit"
        lock.rollback()
        await submitted
        await reconnected
        await core.stop()
        writer.shutdown()

    asyncio.run(scenario())
    first = [s for s in sent if s[2] and s[2][0][1] == 1]
    assert first and all(stream == 1 for _, stream, _ in first), sent


def test_a_batch_that_cannot_be_staged_fails_its_callers_and_stops_the_core(tmp_path):
    """A bug turning a batch into rows (staging) must not leave its callers waiting for good:
    they are told, the core stops, and nothing of that batch reaches the database."""
    store = Store(open_database(f"sqlite:///{tmp_path / 'jobplane.db'}"))
    store.create_schema()
    spec, drafts, _ = prepare_submit(job_pb2.JobSpec(name="j", tasks=[job_pb2.TaskSpec(name="t", command=["true"])]),
                                     "", ServerConfig())

    async def scenario() -> tuple[BaseException | None, bool, BaseException | None]:
        writer = ThreadPoolExecutor(1)
        core = Core(Engine(EngineConfig()), store, EventHub(), writer, lambda cs: None)
        core.start()
        await core.call(lambda e: e.connect(_hello("a"), conn_id=1))  # staged and committed as usual

        def broken(cs):
            raise TypeError("a row the staging cannot encode")

        store.stage = broken  # the bug, injected
        submitted = core.enqueue(lambda e: e.submit(spec, drafts))
        await asyncio.wait([submitted], timeout=10)  # before the fix: never answered
        later = core.enqueue(lambda e: None)  # a stopped core refuses at once
        result = (submitted.exception() if submitted.done() else None, core.dead.is_set(),
                  later.exception() if later.done() else None)
        await core.stop()
        writer.shutdown()
        return result

    told, dead, refused = asyncio.run(scenario())
    assert isinstance(told, EngineFailure) and "internal error" in str(told), told
    assert dead and isinstance(refused, EngineFailure), (dead, refused)
    assert store.reads.get_job(1) is None, "nothing of the failed batch was written"


def test_a_committed_batch_is_freed_at_once_not_left_to_the_cyclic_collector(tmp_path):
    """Once a batch is committed and delivered nothing holds it: its ChangeSet (every event,
    attempt and row of the batch) is freed by reference counting. Held in a cycle (its commit's
    future -> that future's callback -> the batch), every batch waited for the cyclic collector,
    whose passes grew with the garbage: server CPU on every busy run."""
    import gc
    import weakref

    store = Store(open_database(f"sqlite:///{tmp_path / 'jobplane.db'}"))
    store.create_schema()
    delivered: list[weakref.ref] = []

    async def scenario() -> None:
        writer = ThreadPoolExecutor(1)
        core = Core(Engine(EngineConfig(reconnect_grace=30.0)), store, EventHub(), writer,
                    lambda cs: delivered.append(weakref.ref(cs)))
        core.start()
        await core.call(lambda e: (e.connect(_hello("a"), conn_id=1), e.ready_signal("a", 1)))
        spec, drafts, _ = prepare_submit(job_pb2.JobSpec(name="j", tasks=[job_pb2.TaskSpec(name="t", command=["true"])]),
                                         "", ServerConfig())
        await core.call(lambda e: e.submit(spec, drafts))
        await core.call(lambda e: None)  # a batch after it: the submit's is finished and let go
        await core.stop()
        writer.shutdown()

    gc.collect()
    gc.disable()
    try:
        asyncio.run(scenario())
        assert len(delivered) >= 3
        alive = [ref for ref in delivered[:-1] if ref() is not None]
        assert not alive, f"{len(alive)} of {len(delivered) - 1} finished batches still held without the collector"
    finally:
        gc.enable()
