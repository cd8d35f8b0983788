"""Server-sent events from a gRPC server stream: one read loop for the console's event stream
and a task's live output. A comment while idle (so a dead client is noticed), and the end of the
call, or why it ended, as `event: end`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc

KEEPALIVE = 15.0  # seconds between comments on an idle stream


async def relay(call: Any, frames: Callable[[Any], Iterable[bytes]], ended: str) -> AsyncIterator[bytes]:
    """Each message of `call` as the SSE frames `frames(message)` makes; `ended`: what the last
    frame says when the call ends by itself. The call is cancelled when the client goes away."""
    reading: asyncio.Future | None = None
    try:
        yield b"retry: 2000\n\n"
        while True:
            reading = asyncio.ensure_future(call.read())
            while not (await asyncio.wait({reading}, timeout=KEEPALIVE))[0]:
                yield b": keepalive\n\n"
            try:
                answer = reading.result()
            except grpc.aio.AioRpcError as exc:
                yield end(exc.details() or exc.code().name)
                return
            reading = None
            if answer is grpc.aio.EOF:
                yield end(ended)
                return
            for frame in frames(answer):
                yield frame
    finally:
        call.cancel()
        if reading is not None:
            reading.cancel()


def frame(event: str, data: Any, event_id: int | str | None = None) -> bytes:
    """One SSE message: `id:` (if given), `event:`, `data:` as compact JSON."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def end(why: str) -> bytes:
    return frame("end", why)
