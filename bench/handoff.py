"""The CPU one hand-off to a one-thread executor and back costs the event loop: a no-op run on
the thread, N times in a row, (a) through run_in_executor (an asyncio future chained to the
thread's future) and (b) through executor.submit with one call_soon_threadsafe as it ends (what
server/core.py does for each batch's commit). Alternating, in one run.

    python bench/handoff.py [--n 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor


def work() -> None:
    return None


async def via_run_in_executor(ex: ThreadPoolExecutor, n: int) -> None:
    loop, woken = asyncio.get_running_loop(), asyncio.Event()
    for _ in range(n):
        loop.run_in_executor(ex, work).add_done_callback(lambda _: woken.set())
        await woken.wait()
        woken.clear()


async def via_submit(ex: ThreadPoolExecutor, n: int) -> None:
    loop, woken = asyncio.get_running_loop(), asyncio.Event()
    for _ in range(n):
        ex.submit(work).add_done_callback(lambda _: loop.call_soon_threadsafe(woken.set))
        await woken.wait()
        woken.clear()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    with ThreadPoolExecutor(1) as ex:
        for _ in range(a.rounds):
            for way in (via_run_in_executor, via_submit):
                cpu, wall = time.process_time(), time.perf_counter()
                asyncio.run(way(ex, a.n))
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                print(f"{way.__name__:20s} {1e6 * cpu / a.n:6.1f} us CPU, {1e6 * wall / a.n:6.1f} us wall per hand-off")


if __name__ == "__main__":
    main()
