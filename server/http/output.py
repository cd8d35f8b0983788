"""A task's output in the console: its page, and the output itself as server-sent events, read
with the signed-in user's token through TaskService.StreamLogs (so its roles and tenancy)."""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator
from html import escape
from urllib.parse import urlencode

import grpc

from jobplane.v1 import task_pb2

from . import pages

KEEPALIVE = 15.0  # seconds between comments on an idle stream, so dead clients are noticed


def request_for(task_id: str, query: dict[str, str], last_event_id: str) -> task_pb2.StreamLogsRequest:
    """What the page's stream asks for: `stream=stderr`, `attempt=N`; a browser that reconnects
    resumes at the byte its Last-Event-ID names."""
    stream = task_pb2.LOG_STREAM_STDERR if query.get("stream") == "stderr" else task_pb2.LOG_STREAM_STDOUT
    attempt = query.get("attempt", "")
    offset = last_event_id if last_event_id.isascii() and last_event_id.isdigit() else "0"
    return task_pb2.StreamLogsRequest(task_id=task_id, stream=stream, follow=True, offset=int(offset),
                                      attempt=int(attempt) if attempt.isascii() and attempt.isdigit() else 0)


async def sse(call) -> AsyncIterator[bytes]:
    """Each chunk as `id: next offset`, `event: output`, `data: JSON text`; the end of the attempt
    (or why there is no more) as `event: end`."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    reading: asyncio.Future | None = None
    try:
        yield b"retry: 2000\n\n"
        while True:
            reading = asyncio.ensure_future(call.read())
            while not (await asyncio.wait({reading}, timeout=KEEPALIVE))[0]:
                yield b": keepalive\n\n"
            try:
                chunk = reading.result()
            except grpc.aio.AioRpcError as exc:
                yield _end(exc.details() or exc.code().name)
                return
            reading = None
            if chunk is grpc.aio.EOF:
                yield _end("the attempt ended")
                return
            text = decoder.decode(chunk.data)
            yield (f"id: {chunk.offset + len(chunk.data)}\nevent: output\n"
                   f"data: {json.dumps(text)}\n\n").encode()
    finally:
        call.cancel()
        if reading is not None:
            reading.cancel()


def _end(why: str) -> bytes:
    return f"event: end\ndata: {json.dumps(why)}\n\n".encode()


def page_body(task: task_pb2.Task, stream: str) -> tuple[str, dict[str, str]]:
    """The task's output page (a <pre> console.js fills) and its live attributes."""
    other = "stdout" if stream == "stderr" else "stderr"
    source = f"/tasks/{task.id}/logs?" + urlencode({"stream": stream})
    body = (f'<p><a href="/jobs/{escape(task.job_id)}">Job {escape(task.job_id)}</a> · task {escape(task.name)} · '
            f'attempt {task.attempt} on {escape(task.provider_id)} · {pages.badge(task.status)} · {stream} · '
            f'<a href="/tasks/{escape(task.id)}/output?stream={other}">{other}</a></p>')
    return body, {"output": source}


AFTER = '<section class="output"><pre id="output"></pre><p id="output-end" class="hint"></p></section>'
