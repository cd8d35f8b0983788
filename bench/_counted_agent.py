"""jobplane-agent with its Connect stream's messages counted (for bench/agent_python.py): every
half second it writes to $JOBPLANE_BENCH_COUNTS a JSON object of how many messages it wrote and
read, by kind, and how many items (reports, assignments) they carried."""

from __future__ import annotations

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


def _dump(path: str) -> None:
    while True:
        time.sleep(0.5)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(dict(COUNTS), f)
        os.replace(tmp, path)


threading.Thread(target=_dump, args=(os.environ["JOBPLANE_BENCH_COUNTS"],), daemon=True).start()
runpy.run_module("jobplane.agent", run_name="__main__", alter_sys=True)
