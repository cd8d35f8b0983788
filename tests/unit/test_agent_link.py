"""The agent's side of the Connect protocol, against a scripted stand-in for the server.

The stand-in only plays back what the protocol says a server does, so these tests pin the
agent's half (hello, ready, heartbeats, batched reports, acks, cancels, reconnects, refusals,
shutdown; scan requests and reports are in test_agent_prerequisites.py) without depending on
the real server; tests/integration runs both together.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from support import Proc, pid_alive

from jobplane.agent import Agent, AgentConfig, cgroups
from jobplane.agent.errors import HelloRejected, NameInUse
from jobplane.agent.keeper_client import Keeper
from jobplane.agent.keeper_wire import KILL_DEADLINE
from jobplane.agent.link import BACKOFF_CAP
from jobplane.agent.statedir import StateDir
from jobplane.v1 import job_pb2, provider_pb2, provider_pb2_grpc

STARTED = provider_pb2.TASK_REPORT_KIND_STARTED
FINISHED = provider_pb2.TASK_REPORT_KIND_FINISHED
DEADLINE = 30.0
END, BREAK, TAKEN_OVER = "end", "break", "taken over"


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

    async def report(self, task_id: str, kind: int) -> tuple[int, provider_pb2.TaskReport]:
        """The seq and report of `task_id`'s report of this kind."""
        return await self.first(lambda report: (report.task_id, report.kind) == (task_id, kind))

    async def first(
        self, match: Callable[[provider_pb2.TaskReport], bool]
    ) -> tuple[int, provider_pb2.TaskReport]:
        """The seq and report of the first report that matches."""
        while True:
            for seq, report in self.seen:
                if match(report):
                    return seq, report
            await self._next_batch()

    async def reports_until(self, task_id: str, kind: int) -> list[provider_pb2.TaskReport]:
        """`task_id`'s reports, in the order sent, up to and including its first of this kind."""
        while True:
            mine = [report for _, report in self.seen if report.task_id == task_id]
            ends = [i for i, report in enumerate(mine) if report.kind == kind]
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


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    (tmp_path / "link_tasks.py").write_text(textwrap.dedent("""
        def double(x):
            return 2 * x
    """))
    return tmp_path


def test_hello_describes_the_agent_then_ready_then_heartbeats(work_dir):
    async def scenario(service, agent, running):
        stream = await service.next_stream()
        return stream.hello, await stream.signal("ready"), await stream.signal("heartbeat")

    hello, ready, heartbeat = with_agent(work_dir, scenario, labels={"gpu": "true"}, standby=True)
    assert (hello.name, hello.slots, dict(hello.labels)) == ("a1", 2, {"gpu": "true"})
    assert hello.standby
    assert hello.heartbeat_interval_seconds == 0.2 and list(hello.running) == []
    assert hello.containment == cgroups.detect().kind  # what --version says is in force
    assert hello.kill_deadline_seconds == KILL_DEADLINE
    assert hello.reconnect_backoff_max_seconds == BACKOFF_CAP
    assert hello.facts.cpu_count > 0 and hello.facts.memory_bytes > 0 and hello.facts.os
    assert ready.ready.free_slots == 2
    assert (heartbeat.heartbeat.free_slots, heartbeat.heartbeat.running) == (2, 0)


def test_assigned_commands_and_callables_run_and_are_reported(work_dir):
    async def scenario(service, agent, running):
        stream = await service.next_stream()
        await stream.signal("ready")
        stream.assign("1", command=["sh", "-c", 'echo "$JOBPLANE_TASK_NAME $JOBPLANE_ATTEMPT"'])
        stream.assign("2", python="link_tasks:double", args_json="[21]")
        reports = [await stream.report(task, kind)
                   for task in ("1", "2") for kind in (STARTED, FINISHED)]
        stream.send(ack=provider_pb2.Ack(seq=max(seq for seq, _ in reports)))
        return [report for _, report in reports]

    started_1, command, started_2, call = with_agent(work_dir, scenario)
    assert started_1.attempt == 1 and started_2.attempt == 1
    assert command.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert command.exit_code == 0 and command.stdout_tail == "name-1 1\n"
    assert dict(command.raw) == {"state": "exited", "exit_code": "0"}
    assert call.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert call.result_json == "42" and not call.HasField("exit_code")


def test_a_cancel_stops_the_attempt_and_reports_the_reason(work_dir):
    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("1", command=["sleep", "300"])
        await stream.report("1", STARTED)
        stream.send(cancel=provider_pb2.Cancellations(
            attempts=[provider_pb2.AttemptRef(task_id="1", attempt=1),
                      provider_pb2.AttemptRef(task_id="404", attempt=1)],
            reason="job cancelled"))
        return (await stream.report("1", FINISHED))[1]

    report = with_agent(work_dir, scenario)
    assert report.outcome == provider_pb2.ATTEMPT_OUTCOME_CANCELLED
    assert report.error == "job cancelled"
    assert report.raw["state"] == "cancelled"


def test_a_probe_is_answered_with_the_progress_of_running_attempts(work_dir):
    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        await stream.signal("ready")
        stream.assign("1", command=["sh", "-c", "echo working; sleep 300"])
        await stream.report("1", STARTED)
        for probe_id in range(1, 1000):  # until the agent has read the task's output
            stream.send(probe=provider_pb2.Probe(probe_id=probe_id))
            reply = (await stream.signal("probe_reply")).probe_reply
            if reply.running and reply.running[0].progress >= len("working\n"):
                return reply
        raise AssertionError("the task's output never showed as progress")

    reply = with_agent(work_dir, scenario)
    assert reply.probe_id > 0
    (status,) = reply.running
    assert (status.task_id, status.attempt) == ("1", 1)
    assert status.running_seconds >= 0


def test_after_a_reconnect_held_attempts_are_listed_and_unacked_reports_resent(work_dir):
    async def scenario(service, agent, running):
        first = await service.next_stream()
        first.assign("quick", command=["true"])
        first.assign("long", command=["sleep", "300"])
        old_seq, _ = await first.report("quick", FINISHED)
        await first.report("long", STARTED)
        first.break_()  # before acknowledging the quick task's FINISHED report
        second = await service.next_stream()
        new_seq, resent = await second.report("quick", FINISHED)
        ready = await second.signal("ready")
        second.auto_ack = True
        return second.hello, old_seq, new_seq, resent, ready

    hello, old_seq, new_seq, resent, ready = with_agent(work_dir, scenario)
    held = {(ref.task_id, ref.attempt) for ref in hello.running}
    assert held == {("long", 1), ("quick", 1)}  # running, and finished but unacknowledged
    assert new_seq > old_seq
    assert resent.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert ready.ready.free_slots == 1


async def reports_until_closed(stream: Stream) -> list[provider_pb2.TaskReport]:
    """Every report the agent sent on the stream, once it has half-closed it."""
    await asyncio.wait_for(stream.half_closed.wait(), DEADLINE)
    while not stream.batches.empty():
        stream.seen += [(batch.seq, report) for batch in [stream.batches.get_nowait()]
                        for report in batch.reports]
    return [report for _, report in stream.seen]


def cancel(stream: Stream, task_id: str, reason: str) -> None:
    stream.send(cancel=provider_pb2.Cancellations(
        attempts=[provider_pb2.AttemptRef(task_id=task_id, attempt=1)], reason=reason))


def test_stop_says_goodbye_and_reports_what_the_server_cancels_as_cancelled(work_dir):
    pid_file = work_dir / "task.pid"

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        await stream.signal("ready")
        stream.assign("1", command=["sh", "-c", f"echo $$ > {pid_file}; exec sleep 300"])
        await stream.report("1", STARTED)
        stopping = asyncio.create_task(agent.stop())
        goodbye = (await stream.signal("goodbye")).goodbye
        stream.assign("2", command=["sh", "-c", "echo never"])  # crossed the goodbye
        cancel(stream, "1", "provider a1 is stopping")  # as a drain hands attempts on
        cancel(stream, "2", "provider a1 is stopping")
        stream.auto_ack = True
        reports = await reports_until_closed(stream)
        await stopping
        return goodbye, reports, running.done()

    goodbye, reports, run_returned = with_agent(work_dir, scenario)
    assert (goodbye.wait, goodbye.deadline_seconds) == (False, 0)
    finished = {r.task_id: r for r in reports if r.kind == FINISHED}
    assert {r.outcome for r in finished.values()} == {provider_pb2.ATTEMPT_OUTCOME_CANCELLED}
    assert finished["1"].error == "provider a1 is stopping"
    assert [r.kind for r in reports if r.task_id == "2"] == [FINISHED], "2 never started"
    assert not pid_alive(int(pid_file.read_text()))
    assert run_returned


def test_with_a_stop_wait_running_attempts_finish_first(work_dir):
    go = work_dir / "go"

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        await stream.signal("ready")
        stream.assign("1", command=["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done; echo done"])
        await stream.report("1", STARTED)
        stopping = asyncio.create_task(agent.stop())
        goodbye = (await stream.signal("goodbye")).goodbye
        go.touch()
        reports = await reports_until_closed(stream)
        await stopping
        return goodbye, reports

    goodbye, reports = with_agent(work_dir, scenario, stop_wait=30.0)
    assert (goodbye.wait, goodbye.deadline_seconds) == (True, 30.0)
    (finished,) = [r for r in reports if r.kind == FINISHED]
    assert (finished.outcome, finished.stdout_tail) == (provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED, "done\n")


def test_a_stop_the_server_does_not_answer_kills_its_attempts_and_reports_nothing(work_dir):
    # A server that ignores the goodbye (one from before it existed), or that cannot be
    # reached: the agent kills its attempts itself and leaves no FAILED report behind, here or
    # in its state directory for a later agent process; the server hands them on once it has
    # lost the agent.
    pid_file = work_dir / "task.pid"

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        await stream.signal("ready")
        stream.assign("1", command=["sh", "-c", f"echo $$ > {pid_file}; exec sleep 300"])
        await stream.report("1", STARTED)
        stopping = asyncio.create_task(agent.stop())
        await stream.signal("goodbye")
        reports = await reports_until_closed(stream)
        await stopping
        return reports

    reports = with_agent(work_dir, scenario, kill_grace=0.2)
    assert [r.kind for r in reports] == [STARTED]
    assert not pid_alive(int(pid_file.read_text()))
    state = work_dir / ".jobplane-agent" / "a1"
    assert StateDir(str(state)).leftovers() == {}


def test_sigterm_hands_the_attempts_on_and_the_agent_exits_cleanly(work_dir):
    async def scenario(service, address):
        agent = Proc([sys.executable, "-m", "jobplane.agent", "--server", address, "--name", "a1",
                      "--insecure", "--work-dir", str(work_dir), "--heartbeat", "0.2"],
                     work_dir / "agent.log")
        try:
            stream = await service.next_stream()
            await stream.signal("ready")
            stream.assign("1", command=["sleep", "300"])
            await stream.report("1", STARTED)
            agent.signal(signal.SIGTERM)
            await stream.signal("goodbye")
            cancel(stream, "1", "provider a1 is stopping")
            stream.auto_ack = True
            reports = await reports_until_closed(stream)
            return reports, await asyncio.to_thread(agent.p.wait, DEADLINE)
        finally:
            agent.kill()
            agent.stop()

    reports, code = with_standin(scenario)
    (finished,) = [r for r in reports if r.kind == FINISHED]
    assert finished.outcome == provider_pb2.ATTEMPT_OUTCOME_CANCELLED
    assert code == 0


def test_the_servers_reconnect_grace_is_what_the_keeper_waits_for_a_new_agent_process(work_dir):
    async def scenario(service, agent, running):
        service.reconnect_grace = 7.5
        stream = await service.next_stream()
        await stream.signal("ready")
        # Another holder of the same keeper hears the grace in force.
        other = Keeper(work_dir / ".jobplane-agent" / "a1")
        await other.open(spawn=False)
        try:
            return other.grace
        finally:
            await other.close()

    assert with_agent(work_dir, scenario) == 7.5


def test_an_invalid_hello_ends_the_agent(work_dir):
    async def scenario(service, agent, running):
        service.refusals = [grpc.StatusCode.INVALID_ARGUMENT]
        with pytest.raises(HelloRejected, match="refused by the test"):
            await running

    with_agent(work_dir, scenario)


def test_a_name_in_use_is_retried_briefly_then_ends_the_agent(work_dir):
    async def scenario(service, agent, running):
        service.refusals = [grpc.StatusCode.ALREADY_EXISTS] * 1000
        with pytest.raises(NameInUse, match="--name"):
            await running
        return len(service.refusals)

    refusals_left = with_agent(work_dir, scenario)
    assert 1000 - refusals_left > 1  # it tried again before giving up


def test_a_name_in_use_that_frees_up_soon_is_not_an_error(work_dir):
    async def scenario(service, agent, running):
        service.refusals = [grpc.StatusCode.ALREADY_EXISTS] * 2
        stream = await service.next_stream()
        return stream.hello.name, running.done()

    name, ended = with_agent(work_dir, scenario)
    assert (name, ended) == ("a1", False)
