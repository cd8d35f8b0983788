"""Calls queued on a busy Python worker (pyqueue.py): each runs once at most, a withdrawn one
never, and those behind a worker that dies run elsewhere. Judged by a file every call appends
its tag and worker pid to."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from support import wait_until

from jobplane.agent.pyworkers import PyCall, WorkerPool
from jobplane.agent.results import Outcome, StopRequest, request_stop

TASKS = '''
import os, time

def mark(path, tag, crash=False):
    with open(path, "a") as f:
        f.write(f"{tag} {os.getpid()}\\n")
    if crash:
        os._exit(3)
    return os.getpid()

def gate(path, gate, tag):
    """Note the call, then wait (up to a minute) until the file `gate` exists; whether it does."""
    with open(path, "a") as f:
        f.write(f"{tag} {os.getpid()}\\n")
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.005)
    return os.path.exists(gate)

def echo(value):
    return value

def meet(directory, n, nap=0.0):
    """Sleep `nap` seconds, then wait (up to a minute) until n calls run at once; whether they did."""
    time.sleep(nap)
    open(os.path.join(directory, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 60
    while len(os.listdir(directory)) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(os.listdir(directory)) >= n
'''


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    (tmp_path / "queue_tasks.py").write_text(textwrap.dedent(TASKS))
    return tmp_path


def with_pool(work_dir: Path, body: Callable[[WorkerPool], Awaitable[object]], size: int,
              **options: float) -> object:
    """Run `body(pool)` against a pool of `size` workers, all started (and idle) first. Every
    call may wait on a busy worker (any wait is short enough) unless `options` say otherwise."""

    async def main() -> object:
        pool = WorkerPool(size, work_dir=str(work_dir), **{"wait": 600.0, **options})
        pool.start()
        try:
            met = work_dir / "met"
            met.mkdir()
            await asyncio.gather(*(pool.run(call("meet", str(met), size)) for _ in range(size)))
            return await body(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def call(function: str, *args: object, **options: object) -> PyCall:
    return PyCall(f"queue_tasks:{function}", json.dumps(list(args)), **options)  # type: ignore[arg-type]


def runs(log: Path) -> list[tuple[str, int]]:
    """(tag, worker pid) of each call that ran, in order."""
    return [(tag, int(pid)) for tag, pid in (line.split() for line in log.read_text().splitlines())]


def test_quick_calls_at_once_share_the_warmest_worker_and_the_others_sleep(work_dir, tmp_path):
    log = tmp_path / "log"

    async def body(pool):
        await pool.run(call("mark", str(log), "warm"))
        return await asyncio.gather(*(pool.run(call("mark", str(log), f"c{i}")) for i in range(4)))

    results = with_pool(work_dir, body, size=4)
    assert all(r.outcome == Outcome.SUCCEEDED for r in results)
    pids = {pid for _, pid in runs(log)}
    assert len(pids) == 1, "four quick calls went to one worker, the one that ran the last call"


@pytest.mark.parametrize("crashing", [0, 2])
def test_calls_queued_behind_a_worker_that_dies_run_elsewhere_exactly_once(work_dir, tmp_path, crashing):
    log = tmp_path / "log"
    tags = ["a", "b", "c", "d"]

    async def body(pool):
        await pool.run(call("mark", str(log), "warm"))
        return await asyncio.gather(*(pool.run(call("mark", str(log), tag, i == crashing))
                                      for i, tag in enumerate(tags)))

    results = with_pool(work_dir, body, size=4)
    ran = runs(log)
    assert sorted(tag for tag, _ in ran) == sorted(["warm", *tags]), "each call ran exactly once"
    crashed = results[crashing]
    assert crashed.outcome == Outcome.FAILED and crashed.raw == {"state": "crashed"}
    assert crashed.error == "the python worker running queue_tasks:mark exited with code 3"
    assert [r.outcome for i, r in enumerate(results) if i != crashing] == [Outcome.SUCCEEDED] * 3
    dead = dict(ran)[tags[crashing]]
    assert all(pid != dead for tag, pid in ran if tag in tags[crashing + 1:]), \
        "nothing queued behind the call that crashed ran in its worker"


@pytest.mark.parametrize("how", ["stop request", "caller cancelled"])
def test_a_queued_call_cancelled_never_runs_and_its_worker_goes_on(work_dir, tmp_path, how):
    log, opened = tmp_path / "log", tmp_path / "open"

    async def body(pool):
        opened.touch()
        await pool.run(call("gate", str(log), str(opened), "warm"))
        opened.unlink()
        first = asyncio.create_task(pool.run(call("gate", str(log), str(opened), "first")))
        stop = asyncio.get_running_loop().create_future()
        queued = asyncio.create_task(pool.run(call("gate", str(log), str(opened), "queued"), stop=stop,
                                              on_start=lambda _: pytest.fail("the cancelled call started")))
        await asyncio.to_thread(wait_until, lambda: log.read_text().count("\n") == 2, 30,
                                "the first call to start, and no other")
        if how == "stop request":
            request_stop(stop, StopRequest.cancel("not wanted"))
            cancelled = await queued
            assert (cancelled.outcome, cancelled.error) == (Outcome.CANCELLED, "not wanted")
        else:
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
        opened.touch()
        return await first, await pool.run(call("mark", str(log), "after"))

    first, after = with_pool(work_dir, body, size=2, patience=600.0)
    assert first.result_json == "true" and after.outcome == Outcome.SUCCEEDED
    assert [tag for tag, _ in runs(log)] == ["warm", "first", "after"], "the cancelled call never ran"
    assert len({pid for _, pid in runs(log)}) == 1, "its worker was not killed"


def test_calls_of_a_slow_function_at_once_run_in_parallel(work_dir, tmp_path):
    """A function known to take 50 ms: three calls at once would wait 100 ms behind each other
    on one worker, more than the default wait allowed: each gets a worker of its own."""
    (tmp_path / "once").mkdir()
    (tmp_path / "three").mkdir()

    async def body(pool):
        await pool.run(call("meet", str(tmp_path / "once"), 1, 0.05))
        return await asyncio.gather(*(pool.run(call("meet", str(tmp_path / "three"), 3, 0.05))
                                      for _ in range(3)))

    met = with_pool(work_dir, body, size=3, wait=0.002, patience=600.0)
    assert [r.result_json for r in met] == ["true"] * 3


def test_a_call_queued_behind_a_long_one_moves_to_an_idle_worker(work_dir, tmp_path):
    """The first call waits for the file the second one makes: the second must not wait behind it."""
    log, opened = tmp_path / "log", tmp_path / "open"

    async def body(pool):
        await pool.run(call("mark", str(tmp_path / "warm"), "warm"))
        await pool.run(call("gate", str(log), str(tmp_path / "warm"), "warm"))
        return await asyncio.gather(pool.run(call("gate", str(log), str(opened), "waits")),
                                    pool.run(call("mark", str(opened), "opens")))

    waits, opens = with_pool(work_dir, body, size=2)
    assert waits.result_json == "true" and opens.outcome == Outcome.SUCCEEDED


def test_big_arguments_and_results_come_through_whole_among_quick_calls(work_dir):
    big = "x" * 300_000

    async def body(pool):
        await pool.run(call("echo", "warm"))
        return await asyncio.gather(*(pool.run(call("echo", big if i % 2 else str(i))) for i in range(6)))

    results = with_pool(work_dir, body, size=3)
    assert [json.loads(r.result_json) for r in results] == [big if i % 2 else str(i) for i in range(6)]


@pytest.mark.parametrize("request_", [StopRequest.cancel("too late"), StopRequest.timeout(1.0)])
def test_a_stop_of_a_call_its_worker_already_answered_kills_nothing_and_the_next_call_runs_on(
        work_dir, tmp_path, request_):
    """The worker answered `a` and runs `b`, queued behind it, before the pool reads a's reply:
    stopping `a` then must not kill the worker (and `b` with it)."""
    log, opened = tmp_path / "log", tmp_path / "open"

    async def body(pool):
        await pool.run(call("mark", str(log), "warm"))
        stop = asyncio.get_running_loop().create_future()
        first = asyncio.create_task(pool.run(call("mark", str(log), "a"), stop=stop))
        second = asyncio.create_task(pool.run(call("gate", str(log), str(opened), "b")))
        await asyncio.sleep(0)  # both placed: b queued behind a, on the worker that ran "warm"
        # The loop is held (a's reply stays unread) until the worker has started b.
        wait_until(lambda: "b " in log.read_text(), 30, "the queued call to start")
        request_stop(stop, request_)
        first_result = await first
        opened.touch()
        return first_result, await second

    first, second = with_pool(work_dir, body, size=2, patience=600.0)
    assert (second.outcome, second.result_json) == (Outcome.SUCCEEDED, "true"), second
    assert first.outcome == request_.result().outcome, "the stop still says why the call was stopped"
    assert [tag for tag, _ in runs(log)] == ["warm", "a", "b"]
    assert len({pid for _, pid in runs(log)}) == 1, "its worker was not killed"


def test_quick_calls_sent_while_a_normally_quick_call_hangs_never_hold_up_the_pool(work_dir, tmp_path):
    """A worker stuck in a call of a quick function reads nothing: calls sent its way must not
    fill its socket until the pool (the agent's event loop) waits on it. Here the stuck call
    waits for a file the loop makes only once 160 quick calls are done: a loop that waited on
    the stuck worker would leave it stuck (a minute, then False)."""
    log, opened = tmp_path / "log", tmp_path / "open"

    async def body(pool):
        opened.touch()
        for _ in range(5):
            await pool.run(call("gate", str(log), str(opened), "quick"))
        opened.unlink()
        stuck = asyncio.create_task(pool.run(call("gate", str(log), str(opened), "stuck")))
        await asyncio.to_thread(wait_until, lambda: "stuck" in log.read_text(), 30, "the call to start")
        pad = "x" * 7000  # queued frames are up to 8 KiB
        quick = []
        for _ in range(20):
            quick += await asyncio.gather(*(pool.run(call("echo", pad)) for _ in range(8)))
        opened.touch()
        return await stuck, quick

    stuck, quick = with_pool(work_dir, body, size=2)
    assert [r.outcome for r in quick] == [Outcome.SUCCEEDED] * 160
    assert stuck.result_json == "true", "the loop went on while the worker was stuck"


def test_a_function_whose_call_was_timed_out_is_no_longer_queued_behind_itself(work_dir, tmp_path):
    """`gate` is quick until a call of it hangs and times out: after that, a call of it is not
    queued behind another (that waits for a file only the later call's end makes)."""
    log, opened, later = tmp_path / "log", tmp_path / "open", tmp_path / "later"

    async def body(pool):
        opened.touch()
        for _ in range(5):
            await pool.run(call("gate", str(log), str(opened), "quick"))
        hung = await pool.run(call("gate", str(log), str(tmp_path / "never"), "hung", timeout=0.5))
        waits = asyncio.create_task(pool.run(call("gate", str(log), str(later), "waits")))
        await asyncio.sleep(0)  # placed first
        quick = await pool.run(call("gate", str(log), str(opened), "after"))
        later.touch()
        return hung, await waits, quick

    hung, waits, quick = with_pool(work_dir, body, size=3, wait=0.05, patience=600.0)
    assert hung.outcome == Outcome.TIMED_OUT
    assert quick.result_json == "true" and waits.result_json == "true"


def test_calls_withdrawn_from_a_stuck_worker_never_fill_its_socket_until_the_pool_waits(work_dir, tmp_path):
    """Calls queued on a worker stuck in a call, then cancelled, leave their frames unread in its
    socket (with patience too long for the pool to give up on the call): more calls sent its way
    must go elsewhere once its socket is full, not wait on it (the stuck call would wait for a
    file the loop makes at the end: a minute, then False)."""
    log, opened = tmp_path / "log", tmp_path / "open"

    async def body(pool):
        opened.touch()
        pad = "x" * 7000  # queued frames are up to 8 KiB
        for _ in range(5):
            await pool.run(call("gate", str(log), str(opened), "quick"))
            await pool.run(call("echo", pad))  # known to be quick: queued on a busy worker
        opened.unlink()
        stuck = asyncio.create_task(pool.run(call("gate", str(log), str(opened), "stuck")))
        await asyncio.to_thread(wait_until, lambda: "stuck" in log.read_text(), 30, "the call to start")
        outcomes = set()
        for _ in range(10):
            stops = [asyncio.get_running_loop().create_future() for _ in range(7)]
            calls = [asyncio.create_task(pool.run(call("echo", pad), stop=stop)) for stop in stops]
            await asyncio.sleep(0)  # placed
            for stop in stops:
                request_stop(stop, StopRequest.cancel("not wanted"))
            outcomes |= {r.outcome for r in await asyncio.gather(*calls)}
        opened.touch()
        return await stuck, outcomes

    stuck, outcomes = with_pool(work_dir, body, size=2, patience=600.0)
    assert outcomes <= {Outcome.CANCELLED, Outcome.SUCCEEDED}
    assert stuck.result_json == "true", "the loop went on while the worker was stuck"
