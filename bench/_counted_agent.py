"""jobplane-agent with its Connect stream's messages counted (for bench/agent_python.py): every
two seconds it writes to $JOBPLANE_BENCH_COUNTS a JSON object of how many messages it wrote and
read, by kind, how many items (reports, assignments) they carried, and how many times its event
loop woke (each wake-up costs about 0.1 ms of CPU on a loaded machine), how many of those were
sleeps (a select with a timeout) and what ended each sleep (a worker's reply, gRPC, a timer), and
how many STARTED reports went in the same message as their attempt's FINISHED one.

With $JOBPLANE_BENCH_PROFILE=PATH, the event loop's thread is also profiled (cProfile, CPU time:
time.thread_time) and the stats written to PATH.PID as the agent exits."""

from __future__ import annotations

import asyncio.base_events
import collections
import json
import os
import runpy
import threading
import time

from grpc.aio import _call

COUNTS: collections.Counter[str] = collections.Counter()


def _count(prefix: str, message: object) -> None:
    which = message.WhichOneof("message") if hasattr(message, "WhichOneof") else None
    if which is None:
        return
    COUNTS[f"{prefix}.{which}"] += 1
    inner = getattr(message, which)
    if which == "reports":  # a STARTED and the FINISHED of the same attempt in one message
        started = {(r.task_id, r.attempt) for r in inner.reports if r.HasField("started")}
        COUNTS[f"{prefix}.reports.started"] += len(started)
        COUNTS[f"{prefix}.reports.started_with_end"] += sum(
            1 for r in inner.reports if r.HasField("finished") and (r.task_id, r.attempt) in started)
    for items in ("reports", "assignments"):
        if which in ("reports", "assign") and hasattr(inner, items):
            COUNTS[f"{prefix}.{which}.items"] += len(getattr(inner, items))


_write = _call._StreamRequestMixin._write
_read = _call._StreamResponseMixin._read


async def _counted_write(self, request):
    _count("sent", request)
    return await _write(self, request)


async def _counted_read(self):
    response = await _read(self)
    _count("received", response)
    return response


_call._StreamRequestMixin._write = _counted_write
_call._StreamResponseMixin._read = _counted_read

_run_once = asyncio.base_events.BaseEventLoop._run_once


def _counted_run_once(self):
    COUNTS["loop.iterations"] += 1
    return _run_once(self)


asyncio.base_events.BaseEventLoop._run_once = _counted_run_once

import selectors  # noqa: E402

_select = selectors.EpollSelector.select


def _counted_select(self, timeout=None):
    ready = _select(self, timeout)
    if timeout is None or timeout > 0:
        COUNTS["loop.sleeps"] += 1
        if not ready:
            COUNTS["loop.sleeps.timer"] += 1
        for key, _ in ready:
            cb = key.data[0] if key.data and key.data[0] is not None else None
            name = getattr(getattr(cb, "_callback", None), "__qualname__", "?")
            COUNTS[f"loop.woke.{name}"] += 1
    return ready


selectors.EpollSelector.select = _counted_select


def _dump(path: str) -> None:
    while True:
        time.sleep(2.0)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(dict(COUNTS), f)
        os.replace(tmp, path)


threading.Thread(target=_dump, args=(os.environ["JOBPLANE_BENCH_COUNTS"],), daemon=True).start()
if os.environ.get("JOBPLANE_BENCH_PROFILE"):
    import atexit
    import cProfile
    import time as _time
    _profile = cProfile.Profile(_time.thread_time)
    atexit.register(lambda: _profile.dump_stats(os.environ["JOBPLANE_BENCH_PROFILE"] + f".{os.getpid()}"))
    _profile.enable()
runpy.run_module("jobplane.agent", run_name="__main__", alter_sys=True)
