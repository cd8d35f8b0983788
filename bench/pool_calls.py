"""The Python worker pool alone (no server, no agent): C calls at a time, N in all, of a no-op,
of a 1 ms and a 5 ms sleep and of 1 ms of CPU; prints, for each, calls/s and the workers' CPU
time per call (from /proc/PID/stat), and how many workers ran calls. Shows what queueing calls
on warm workers saves (no-ops) and that calls which would wait long still run in parallel.

    python bench/pool_calls.py [--calls 4000] [--concurrency 8]

To compare two checkouts, run each one's copy in turn, alternately, in the same period.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import cpu_seconds  # noqa: E402

from jobplane.agent.pyworkers import PyCall, WorkerPool  # noqa: E402

TASKS = '''
import os, time

def noop():
    return os.getpid()

def nap(seconds):
    time.sleep(seconds)
    return os.getpid()

def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return os.getpid()
'''

KINDS = [("no-op", "bench_pool_tasks:noop", ""), ("sleep 1 ms", "bench_pool_tasks:nap", "[0.001]"),
         ("sleep 5 ms", "bench_pool_tasks:nap", "[0.005]"), ("1 ms of CPU", "bench_pool_tasks:spin", "[0.001]")]


async def _measure(pool: WorkerPool, call: PyCall, calls: int, concurrency: int) -> tuple[float, float, int]:
    """calls/s, workers' CPU ms per call, workers that ran calls."""
    await asyncio.gather(*(pool.run(call) for _ in range(4 * concurrency)))  # warm: the functions are known
    pids: set[int] = set()
    todo = iter(range(calls))

    async def lane() -> None:
        for _ in todo:
            result = await pool.run(call)
            pids.add(json.loads(result.result_json))

    workers = [w.process.pid for w in pool._workers]  # noqa: SLF001 (a bench reads the pool's pids)
    cpu0 = sum(cpu_seconds(pid) for pid in workers)
    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    seconds = time.perf_counter() - began
    cpu = sum(cpu_seconds(pid) for pid in workers) - cpu0
    return calls / seconds, cpu * 1000 / calls, len(pids)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench_pool_tasks.py").write_text(TASKS)
        pool = WorkerPool(args.concurrency, work_dir=tmp)
        pool.start()
        try:
            for name, target, arguments in KINDS:
                call = PyCall(target, arguments)
                n = args.calls if name == "no-op" else args.calls // 4
                rate, cpu, used = await _measure(pool, call, n, args.concurrency)
                print(f"{name:12} {rate:7.0f} calls/s  workers {cpu:.3f} ms CPU per call, {used} ran calls",
                      flush=True)
        finally:
            await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
