"""Serving an attempt's kept output to the server, as LogChunks on the agent's link.

The server asks with a LogRequest (TaskService.StreamLogs relays it); the answer is the
stream's bytes from the offset asked for, in chunks, and with `follow`, what the attempt
writes next, until it ends. The last chunk has `end` set, with an error if there is nothing
to read.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from jobplane.v1 import provider_pb2, task_pb2

from . import logstore

log = logging.getLogger(__name__)

# Bytes per chunk: well under any message limit, large enough for 1 MB in a few messages.
CHUNK_BYTES = 64 * 1024
# How often a followed attempt's output is looked at for new bytes.
POLL_SECONDS = 0.1
_STREAMS = {task_pb2.LOG_STREAM_STDOUT: "out", task_pb2.LOG_STREAM_STDERR: "err"}


class LogsUnavailable(Exception):
    """The output asked for cannot be read: its gRPC code name and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# Where an attempt's output is kept, and whether the attempt is still held (runs, or waits to).
Locate = Callable[[str, int], tuple[Path, Callable[[], bool]]]
Send = Callable[[provider_pb2.ConnectRequest], Awaitable[None]]


class _Credit:
    """Bytes the server will take now for one request (None: no limit)."""

    def __init__(self, initial: int) -> None:
        self.left: int | None = initial or None
        self._granted = asyncio.Event()

    def grant(self, more: int) -> None:
        if self.left is not None:
            self.left += more
            self._granted.set()

    async def take(self) -> int:
        """How many bytes may be sent next, once any may."""
        while self.left is not None and self.left <= 0:
            self._granted.clear()
            await self._granted.wait()
        return CHUNK_BYTES if self.left is None else min(CHUNK_BYTES, self.left)

    def spent(self, sent: int) -> None:
        if self.left is not None:
            self.left -= sent


class LogServer:
    """The log requests being answered on one link."""

    def __init__(self, locate: Locate) -> None:
        self._locate = locate
        self._serving: dict[int, tuple[asyncio.Task[None], _Credit]] = {}

    def handle(self, request: provider_pb2.LogRequest, send: Send) -> None:
        """Start answering `request`, grant an open one more credit, or stop answering it."""
        serving = self._serving.get(request.request_id)
        if request.cancel:
            if serving is not None:
                serving[0].cancel()
                del self._serving[request.request_id]
            return
        if not request.task_id:  # a grant
            if serving is not None:
                serving[1].grant(request.credit)
            return
        credit = _Credit(request.credit)
        task = asyncio.get_running_loop().create_task(self._answer(request, send, credit))
        self._serving[request.request_id] = task, credit
        task.add_done_callback(lambda _: self._serving.pop(request.request_id, None))

    def close(self) -> None:
        """Stop answering everything (the stream they came on ended)."""
        for task, _ in self._serving.values():
            task.cancel()
        self._serving.clear()

    async def _answer(self, request: provider_pb2.LogRequest, send: Send, credit: _Credit) -> None:
        try:
            await self._send_all(request, send, credit)
        except Exception as exc:  # the stream broke under it: the server ends the request itself
            log.debug("stopped sending the output of task %s attempt %d: %r", request.task_id, request.attempt, exc)

    async def _send_all(self, request: provider_pb2.LogRequest, send: Send, credit: _Credit) -> None:
        rid = request.request_id
        try:
            async for offset, data in self._chunks(request, credit):
                credit.spent(len(data))
                await send(provider_pb2.ConnectRequest(log_chunk=provider_pb2.LogChunk(
                    request_id=rid, data=data, offset=offset)))
            end = provider_pb2.LogChunk(request_id=rid, end=True)
        except LogsUnavailable as exc:
            end = provider_pb2.LogChunk(request_id=rid, end=True, error=str(exc), code=exc.code)
        except OSError as exc:
            log.warning("cannot read the output of task %s attempt %d: %s", request.task_id, request.attempt, exc)
            end = provider_pb2.LogChunk(request_id=rid, end=True, error=f"the agent cannot read it: {exc}",
                                        code="UNAVAILABLE")
        await send(provider_pb2.ConnectRequest(log_chunk=end))

    async def _chunks(self, request: provider_pb2.LogRequest, credit: _Credit) -> AsyncIterator[tuple[int, bytes]]:
        stream = _STREAMS.get(request.stream)
        if stream is None:
            raise LogsUnavailable("INVALID_ARGUMENT", "stream must be LOG_STREAM_STDOUT or LOG_STREAM_STDERR")
        directory, held = self._locate(request.task_id, request.attempt)
        what = f"the output of task {request.task_id} attempt {request.attempt}"
        offset = request.offset
        while True:
            # Whether it had ended is read before the bytes: what it wrote last is then read too.
            ended = not held() or logstore.is_done(directory)
            # Nothing written yet while it runs: no span, nor a look in the EMPTY listing per poll.
            silent = not ended and not os.path.isdir(directory)
            found = None if silent else await asyncio.to_thread(logstore.span, directory, stream)
            if found is None and ended:
                raise LogsUnavailable("NOT_FOUND", f"{what} is not kept on this agent: it was removed "
                                      "(older than the agent's --log-retention), or the task runs in an "
                                      "outside scheduler (external, slurm), whose output stays there")
            if found is not None:
                if offset == 0:  # from the first byte kept
                    offset = found.start
                limit = await credit.take()
                try:
                    data = await asyncio.to_thread(logstore.read, directory, stream, offset, limit)
                except logstore.Rotated as exc:
                    raise LogsUnavailable("OUT_OF_RANGE", f"{what}: {exc}") from None
                if data:
                    yield offset, data
                    offset += len(data)
                    continue
            if ended or not request.follow:
                return
            await asyncio.sleep(POLL_SECONDS)
