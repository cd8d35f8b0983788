"""TaskService.StreamLogs: an attempt's output, asked of the agent that keeps it and relayed.

The agent that ran (or runs) the attempt keeps its stdout and stderr (agent/logstore.py). The
server asks it over its link (a LogRequest on ProviderService.Connect) and passes the LogChunks
it answers with on to the caller, in order; the request ends when the agent says so, when the
caller goes away (the agent is told to stop), or when the link breaks (UNAVAILABLE). Only the
leader holds agent links: a follower forwards the call (forward.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from jobplane.v1 import provider_pb2, task_pb2

from ..errors import InvalidArgument, JobplaneError, NotFound, OutOfRange, Unavailable
from ..store.records import TaskView
from . import convert
from .base import Deps, visible_owner

# Bytes of output a request may have on its way from the agent, not yet taken by its caller.
WINDOW_BYTES = 1024 * 1024
_CODES: dict[str, type[JobplaneError]] = {"NOT_FOUND": NotFound, "OUT_OF_RANGE": OutOfRange,
                                          "UNAVAILABLE": Unavailable}


@dataclass(eq=False)
class _Request:
    conn_id: int
    chunks: asyncio.Queue = field(default_factory=asyncio.Queue)  # LogChunk, or None: the link broke


class LogRelay:
    """The log requests out to agents, by request id, each with the link it went on."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._open: dict[int, _Request] = {}

    def open(self, conn_id: int) -> tuple[int, asyncio.Queue]:
        request_id = next(self._ids)
        self._open[request_id] = request = _Request(conn_id)
        return request_id, request.chunks

    def close(self, request_id: int) -> None:
        self._open.pop(request_id, None)

    def chunk(self, conn_id: int, chunk: provider_pb2.LogChunk) -> None:
        """A chunk an agent sent; one for a request that is over (or not its own) is dropped."""
        request = self._open.get(chunk.request_id)
        if request is not None and request.conn_id == conn_id:
            request.chunks.put_nowait(chunk)

    def broken(self, conn_id: int) -> None:
        """An agent's link ended: its requests end with it."""
        for request in self._open.values():
            if request.conn_id == conn_id:
                request.chunks.put_nowait(None)


# The agent link of a provider now, and a way to send it a message; None if not connected.
Link = Callable[[str], "tuple[int, Callable[[provider_pb2.ConnectResponse], None]] | None"]


async def stream_logs(deps: Deps, relay: LogRelay, link: Link,
                      request: task_pb2.StreamLogsRequest) -> AsyncIterator[task_pb2.StreamLogsResponse]:
    """The attempt's output, chunk by chunk, as StreamLogsRequest asks (see the proto)."""
    task_id = convert.parse_id("task_id", request.task_id, "task")
    _check(request)
    view = await deps.read(deps.reads.get_task, task_id, visible_owner())
    if view is None:
        raise NotFound(f"task {task_id} not found; `jobplane tasks list JOB` shows a job's tasks")
    number, provider = _attempt(view, request.attempt)
    connected = link(provider)
    if connected is None:
        raise Unavailable(f"provider {provider!r}, which ran task {task_id} attempt {number} and keeps its "
                          "output, is not connected; try again once it is (`jobplane providers get "
                          f"{provider}`)")
    conn_id, send = connected
    request_id, chunks = relay.open(conn_id)
    ended = False
    send(provider_pb2.ConnectResponse(logs=provider_pb2.LogRequest(
        request_id=request_id, task_id=str(task_id), attempt=number, stream=request.stream,
        offset=request.offset, follow=request.follow, credit=WINDOW_BYTES)))
    try:
        while True:
            chunk = await chunks.get()
            if chunk is None:
                ended = True
                raise Unavailable(f"the link to provider {provider!r} broke while it sent the output; "
                                  f"try again (from offset, to resume)")
            if chunk.end:
                ended = True
                if chunk.error:
                    raise _CODES.get(chunk.code, Unavailable)(f"provider {provider!r}: {chunk.error}")
                return
            yield task_pb2.StreamLogsResponse(data=chunk.data, offset=chunk.offset, attempt=number,
                                              provider_id=provider)
            # The caller took it: the agent may send as much more.
            send(provider_pb2.ConnectResponse(logs=provider_pb2.LogRequest(request_id=request_id,
                                                                           credit=len(chunk.data))))
    finally:
        relay.close(request_id)
        if not ended:  # the caller went away: the agent stops sending
            send(provider_pb2.ConnectResponse(logs=provider_pb2.LogRequest(request_id=request_id, cancel=True)))


def _check(request: task_pb2.StreamLogsRequest) -> None:
    if request.stream not in (task_pb2.LOG_STREAM_STDOUT, task_pb2.LOG_STREAM_STDERR):
        raise InvalidArgument("stream", "must be LOG_STREAM_STDOUT or LOG_STREAM_STDERR")
    if request.attempt < 0:
        raise InvalidArgument("attempt", f"must be 1 or more (0: the latest), got {request.attempt}")
    if request.offset < 0:
        raise InvalidArgument("offset", f"must be 0 or more (0: the first byte kept), got {request.offset}")


def _attempt(view: TaskView, wanted: int) -> tuple[int, str]:
    """The attempt asked for (0: the latest) and the provider that ran it."""
    if not view.attempts:
        raise NotFound(f"task {view.id} has not run yet: it has no attempt, so no output")
    if wanted == 0:
        latest = max(view.attempts, key=lambda a: a.number)
        return latest.number, latest.provider
    for attempt in view.attempts:
        if attempt.number == wanted:
            return attempt.number, attempt.provider
    numbers = ", ".join(str(a.number) for a in sorted(view.attempts, key=lambda a: a.number))
    raise NotFound(f"attempt: task {view.id} has no attempt {wanted} (it has {numbers})")
