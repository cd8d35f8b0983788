"""The agent's side of the Connect protocol, against a scripted stand-in for the server
(tests/support_standin.py): hello, ready, heartbeats, batched reports, acks, cancels,
reconnects, refusals, shutdown; scan requests and reports are in test_agent_prerequisites.py.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

import grpc
import pytest

from support import Proc, pid_alive
from support_standin import DEADLINE, FINISHED, STARTED, Stream, report_kind, with_agent, with_standin

from jobplane.agent import cgroups
from jobplane.agent.errors import HelloRejected, NameInUse
from jobplane.agent.keeper_client import Keeper
from jobplane.agent.keeper_wire import KILL_DEADLINE
from jobplane.agent.link import BACKOFF_CAP
from jobplane.agent.statedir import StateDir
from jobplane.v1 import job_pb2, provider_pb2


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
    assert hello.queue_ahead == 16, "8 per slot unless --queue-ahead says"
    assert hello.standby
    assert hello.heartbeat_interval_seconds == 0.2 and list(hello.running) == []
    assert hello.containment == cgroups.detect().kind  # what --version says is in force
    assert hello.kill_deadline_seconds == KILL_DEADLINE
    assert hello.reconnect_backoff_max_seconds == BACKOFF_CAP
    assert hello.facts.cpu_count > 0 and hello.facts.memory_bytes > 0 and hello.facts.os
    assert hello.HasField("capacity") and hello.capacity.cpus > 0 and hello.capacity.memory_bytes > 0
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
    assert command.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert command.finished.exit_code == 0 and command.finished.stdout_tail == "name-1 1\n"
    assert dict(command.finished.raw) == {"state": "exited", "exit_code": "0"}
    assert call.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert call.finished.result_json == "42" and not call.finished.HasField("exit_code")


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
    assert report.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_CANCELLED
    assert report.finished.error == "job cancelled"
    assert report.finished.raw["state"] == "cancelled"


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
    assert resent.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert ready.ready.free_slots == 1


def test_an_ack_that_comes_with_assignments_lets_go_of_the_finished_attempts(work_dir):
    async def scenario(service, agent, running):
        first = await service.next_stream()
        first.assign("quick", command=["true"])
        seq, _ = await first.report("quick", FINISHED)
        # The server's next commit took that report and assigned more: one message says both.
        first.send(assign=provider_pb2.Assignments(ack=provider_pb2.Ack(seq=seq), assignments=[
            provider_pb2.Assignment(task_id="long", attempt=1, job_id="j1", task_name="name-long",
                                    spec=job_pb2.TaskSpec(command=["sleep", "300"]))]))
        await first.report("long", STARTED)
        first.break_()
        second = await service.next_stream()
        second.auto_ack = True
        return first.hello, second.hello

    first_hello, hello = with_agent(work_dir, scenario)
    assert first_hello.acks_with_assignments
    # The quick task's FINISHED report was acknowledged: it is not held, so not re-sent or rerun.
    assert {(ref.task_id, ref.attempt) for ref in hello.running} == {("long", 1)}


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
    finished = {r.task_id: r for r in reports if report_kind(r) == FINISHED}
    assert {r.finished.outcome for r in finished.values()} == {provider_pb2.ATTEMPT_OUTCOME_CANCELLED}
    assert finished["1"].finished.error == "provider a1 is stopping"
    assert [report_kind(r) for r in reports if r.task_id == "2"] == [FINISHED], "2 never started"
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
    (finished,) = [r for r in reports if report_kind(r) == FINISHED]
    assert (finished.finished.outcome, finished.finished.stdout_tail) == (provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED, "done\n")


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
    assert [report_kind(r) for r in reports] == [STARTED]
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
    (finished,) = [r for r in reports if report_kind(r) == FINISHED]
    assert finished.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_CANCELLED
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
