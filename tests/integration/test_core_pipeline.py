"""The core applies what arrives while the batch before it commits (core.py). Real engine,
real SQLite store; the commit is held back by a real write lock on the database file."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from jobplane.server.config import ServerConfig
from jobplane.server.core import Core
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
