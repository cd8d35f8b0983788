"""jobplane-agent with its Connect stream's messages counted (for bench/agent_python.py): every
two seconds it writes to $JOBPLANE_BENCH_COUNTS a JSON object of how many messages it wrote and
read, by kind, how many items (reports, assignments) they carried, and how many times its event
loop woke (each wake-up costs about 0.1 ms of CPU on a loaded machine)."""

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


def _dump(path: str) -> None:
    while True:
        time.sleep(2.0)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(dict(COUNTS), f)
        os.replace(tmp, path)


threading.Thread(target=_dump, args=(os.environ["JOBPLANE_BENCH_COUNTS"],), daemon=True).start()
runpy.run_module("jobplane.agent", run_name="__main__", alter_sys=True)
