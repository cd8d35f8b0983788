"""A task's output in the console: its page, and the output itself as server-sent events, read
with the signed-in user's token through TaskService.StreamLogs (so its roles and tenancy)."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from html import escape
from urllib.parse import urlencode

from jobplane.v1 import task_pb2

from . import pages
from .sse import frame, relay


def request_for(task_id: str, query: dict[str, str], last_event_id: str) -> task_pb2.StreamLogsRequest:
    """What the page's stream asks for: `stream=stderr`, `attempt=N`; a browser that reconnects
    resumes at the byte its Last-Event-ID names."""
    stream = task_pb2.LOG_STREAM_STDERR if query.get("stream") == "stderr" else task_pb2.LOG_STREAM_STDOUT
    attempt = query.get("attempt", "")
    offset = last_event_id if last_event_id.isascii() and last_event_id.isdigit() else "0"
    return task_pb2.StreamLogsRequest(task_id=task_id, stream=stream, follow=True, offset=int(offset),
                                      attempt=int(attempt) if attempt.isascii() and attempt.isdigit() else 0)


def sse(call) -> AsyncIterator[bytes]:
    """Each chunk as `id: next offset`, `event: output`, `data: JSON text`; the end of the attempt
    (or why there is no more) as `event: end`."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return relay(call, lambda chunk: [frame("output", decoder.decode(chunk.data), chunk.offset + len(chunk.data))],
                 "the attempt ended")


def page_body(task: task_pb2.Task, stream: str, attempt: str = "") -> tuple[str, dict[str, str]]:
    """The task's output page (a <pre> console.js fills) and its live attributes; `attempt`: a
    number, else the latest attempt."""
    number = int(attempt) if attempt.isascii() and attempt.isdigit() and int(attempt) > 0 else 0
    other = "stdout" if stream == "stderr" else "stderr"
    asked = {"stream": stream, **({"attempt": str(number)} if number else {})}
    source = f"/tasks/{task.id}/logs?" + urlencode(asked)
    switch = f"/tasks/{task.id}/output?" + urlencode({**asked, "stream": other})
    body = (f'<p><a href="/jobs/{escape(task.job_id)}">Job {escape(task.job_id)}</a> · '
            f'<a href="/tasks/{escape(task.id)}">task {escape(task.name)}</a> · '
            f'attempt {number or task.attempt} on {escape(task.provider_id)} · {pages.badge(task.status)} · '
            f'{stream} · <a href="{escape(switch)}">{other}</a></p>')
    return body, {"output": source}


AFTER = '<section class="output"><pre id="output"></pre><p id="output-end" class="hint"></p></section>'
