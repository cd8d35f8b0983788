"""A scripted stand-in for the server's end of ProviderService.Connect, and an agent connected
to it: the agent's side of the protocol is tested against it (test_agent_link.py and the agent
tests that need a server: checkpoints, security, facts, prerequisites, external tasks).

The stand-in only plays back what the protocol says a server does, so those tests pin the
agent's half without depending on the real server; tests/integration runs both together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc
from google.protobuf import struct_pb2

from jobplane.agent import Agent, AgentConfig
from jobplane.v1 import job_pb2, provider_pb2, provider_pb2_grpc

# Which report a TaskReport is: the name of its `report` oneof field.
STARTED = "started"
FINISHED = "finished"
DEADLINE = 30.0
END, BREAK, TAKEN_OVER = "end", "break", "taken over"


def report_kind(report: provider_pb2.TaskReport) -> str | None:
    """"started", "finished", "checkpoint" or "status": which report the agent sent."""
    return report.WhichOneof("report")


class Stream:
    """One Connect stream as the stand-in server sees it."""

    def __init__(self, hello: provider_pb2.Hello) -> None:
        self.hello = hello
        self.signals: asyncio.Queue[provider_pb2.ConnectRequest] = asyncio.Queue()
        self.batches: asyncio.Queue[provider_pb2.TaskReports] = asyncio.Queue()
        self.scan_reports: asyncio.Queue[provider_pb2.ScanReport] = asyncio.Queue()
        self.seen: list[tuple[int, provider_pb2.TaskReport]] = []
        self.outgoing: asyncio.Queue[provider_pb2.ConnectResponse | str] = asyncio.Queue()
        self.half_closed = asyncio.Event()
        # Acknowledge every batch as it arrives, as a server does once it has committed it.
        self.auto_ack = False
        # The reconnect grace the welcome announces (0: not said, as before the field existed).
        self.reconnect_grace = 0.0

    def send(self, **message) -> None:
        self.outgoing.put_nowait(provider_pb2.ConnectResponse(**message))

    def assign(self, task_id: str, *, checkpoint_json: str = "",
               scan: dict[str, dict] | None = None, prerequisites: Sequence[dict] = (),
               **spec) -> None:
        """Assign attempt 1 of `task_id`, with `scan` ({signature_id: signature}) on the side."""
        task_spec = job_pb2.TaskSpec(prerequisites=[struct(p) for p in prerequisites], **spec)
        self.send(assign=provider_pb2.Assignments(assignments=[provider_pb2.Assignment(
            task_id=task_id, attempt=1, job_id="j1", task_name=f"name-{task_id}",
            spec=task_spec, checkpoint_json=checkpoint_json)], scan=to_scan(scan or {})))

    def scan(self, signatures: dict[str, dict]) -> None:
        """Ask for a scan of {signature_id: signature}."""
        self.send(scan=provider_pb2.ScanRequest(signatures=to_scan(signatures)))

    async def scan_report(self) -> provider_pb2.ScanReport:
        """The next scan report the agent sends."""
        return await asyncio.wait_for(self.scan_reports.get(), DEADLINE)

    def break_(self) -> None:
        """End the stream with UNAVAILABLE, as a server going away does."""
        self.outgoing.put_nowait(BREAK)

    async def signal(self, kind: str) -> provider_pb2.ConnectRequest:
        """The next ready or heartbeat (heartbeats are skipped unless asked for)."""
        while True:
            message = await asyncio.wait_for(self.signals.get(), DEADLINE)
            if message.WhichOneof("message") == kind:
                return message
            assert message.WhichOneof("message") == "heartbeat", message

    async def report(self, task_id: str, kind: str) -> tuple[int, provider_pb2.TaskReport]:
        """The seq and report of `task_id`'s report of this kind."""
        return await self.first(lambda report: (report.task_id, report_kind(report)) == (task_id, kind))

    async def first(
        self, match: Callable[[provider_pb2.TaskReport], bool]
    ) -> tuple[int, provider_pb2.TaskReport]:
        """The seq and report of the first report that matches."""
        while True:
            for seq, report in self.seen:
                if match(report):
                    return seq, report
            await self._next_batch()

    async def reports_until(self, task_id: str, kind: str) -> list[provider_pb2.TaskReport]:
        """`task_id`'s reports, in the order sent, up to and including its first of this kind."""
        while True:
            mine = [report for _, report in self.seen if report.task_id == task_id]
            ends = [i for i, report in enumerate(mine) if report_kind(report) == kind]
            if ends:
                return mine[:ends[0] + 1]
            await self._next_batch()

    async def _next_batch(self) -> None:
        batch = await asyncio.wait_for(self.batches.get(), DEADLINE)
        self.seen += [(batch.seq, report) for report in batch.reports]


class StandIn(provider_pb2_grpc.ProviderServiceServicer):
    """Accepts every hello (or refuses with the queued codes) and lets the test drive the stream."""

    def __init__(self) -> None:
        self.streams: asyncio.Queue[Stream] = asyncio.Queue()
        self.refusals: list[grpc.StatusCode] = []
        self.reconnect_grace = 0.0
        # As the real server does: a new stream of a provider ends its older one.
        self.take_over = False
        self._live: dict[str, Stream] = {}

    async def next_stream(self) -> Stream:
        return await asyncio.wait_for(self.streams.get(), DEADLINE)

    async def Connect(self, request_iterator, context):
        first = await context.read()
        if self.refusals:
            await context.abort(self.refusals.pop(0), "refused by the test")
        stream = Stream(first.hello)
        stream.reconnect_grace = self.reconnect_grace
        if self.take_over and (older := self._live.get(first.hello.name)) is not None:
            older.outgoing.put_nowait(TAKEN_OVER)
        self._live[first.hello.name] = stream
        self.streams.put_nowait(stream)
        pump = asyncio.ensure_future(self._pump(context, stream))
        try:
            yield provider_pb2.ConnectResponse(welcome=provider_pb2.Welcome(
                provider_id=first.hello.name, heartbeat_interval_seconds=1.0,
                reconnect_grace_seconds=self.reconnect_grace))
            while not isinstance(message := await stream.outgoing.get(), str):
                yield message
            if message == BREAK:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the test broke the stream")
            if message == TAKEN_OVER:
                await context.abort(grpc.StatusCode.ABORTED, "a newer stream of this provider took over")
        finally:
            pump.cancel()

    @staticmethod
    async def _pump(context, stream: Stream) -> None:
        while (message := await context.read()) is not grpc.aio.EOF:
            if message.WhichOneof("message") == "reports":
                stream.batches.put_nowait(message.reports)
                if stream.auto_ack:
                    stream.send(ack=provider_pb2.Ack(seq=message.reports.seq))
            elif message.WhichOneof("message") == "scan_report":
                stream.scan_reports.put_nowait(message.scan_report)
            else:
                stream.signals.put_nowait(message)
        stream.half_closed.set()
        stream.outgoing.put_nowait(END)  # the agent said goodbye: end the stream cleanly


def struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def to_scan(signatures: dict[str, dict]) -> list[provider_pb2.SignatureToScan]:
    return [provider_pb2.SignatureToScan(signature_id=signature_id, signature=struct(signature))
            for signature_id, signature in signatures.items()]


Scenario = Callable[[StandIn, Agent, "asyncio.Task[None]"], Awaitable[object]]


def with_agent(work_dir: Path, scenario: Scenario, **config) -> object:
    """Run the scenario against an agent connected to a fresh stand-in server."""

    async def with_address(service: StandIn, address: str) -> object:
        options = dict(name="a1", slots=2, heartbeat_interval=0.2, kill_grace=1.0, insecure=True)
        agent = Agent(AgentConfig(server=address, work_dir=str(work_dir), **{**options, **config}))
        running = asyncio.create_task(agent.run())
        try:
            return await scenario(service, agent, running)
        finally:
            await agent.stop()

    return with_standin(with_address)


def with_standin(scenario: Callable[[StandIn, str], Awaitable[object]]) -> object:
    """Run the scenario with a fresh stand-in server and its address."""

    async def main() -> object:
        service = StandIn()
        server = grpc.aio.server()
        provider_pb2_grpc.add_ProviderServiceServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            return await asyncio.wait_for(scenario(service, f"127.0.0.1:{port}"), 2 * DEADLINE)
        finally:
            await server.stop(None)

    return asyncio.run(main())
