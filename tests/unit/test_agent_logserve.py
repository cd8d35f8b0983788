"""The agent answers the server's log requests: in order, within the credit the server grants."""

from __future__ import annotations

import asyncio

from jobplane.agent import logserve, logstore
from jobplane.v1 import provider_pb2, task_pb2

DATA = bytes(range(256)) * 2000  # 512,000 bytes


def stored(tmp_path):
    directory = tmp_path / "logs" / "1.1"
    logstore.begin(directory, 0)
    writer = logstore.SegmentWriter(directory, "out", 0)
    writer.write(DATA)
    writer.close()
    logstore.finish(directory)
    return directory


def test_the_agent_sends_no_more_than_the_server_granted(tmp_path):
    directory = stored(tmp_path)

    async def run():
        server = logserve.LogServer(lambda task, attempt: (directory, lambda: False))
        granted, received, ended = 100_000, bytearray(), asyncio.Event()

        async def send(message):
            chunk = message.log_chunk
            assert len(received) + len(chunk.data) <= granted, "sent past the credit"
            assert chunk.end or chunk.offset == len(received)
            received.extend(chunk.data)
            if chunk.end:
                ended.set()

        server.handle(provider_pb2.LogRequest(request_id=1, task_id="1", attempt=1, credit=granted,
                                              stream=task_pb2.LOG_STREAM_STDOUT), send)
        while len(received) < len(DATA):
            while len(received) < min(granted, len(DATA)):  # what was granted arrives
                await asyncio.sleep(0)
            granted += 100_000
            server.handle(provider_pb2.LogRequest(request_id=1, credit=100_000), send)
        await asyncio.wait_for(ended.wait(), 10)
        return bytes(received)

    assert asyncio.run(asyncio.wait_for(run(), 30)) == DATA


def test_a_request_for_output_that_is_not_kept_ends_with_not_found(tmp_path):
    async def run():
        server = logserve.LogServer(lambda task, attempt: (tmp_path / "logs" / "gone.1", lambda: False))
        answers = []
        done = asyncio.Event()

        async def send(message):
            answers.append(message.log_chunk)
            done.set()

        server.handle(provider_pb2.LogRequest(request_id=3, task_id="9", attempt=1,
                                              stream=task_pb2.LOG_STREAM_STDERR), send)
        await asyncio.wait_for(done.wait(), 10)
        return answers

    (end,) = asyncio.run(run())
    assert (end.end, end.code) == (True, "NOT_FOUND")
    assert "task 9 attempt 1 is not kept" in end.error and "--log-retention" in end.error
