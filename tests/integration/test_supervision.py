"""Provider supervision with real agents and real signals: kill -9, SIGSTOP/SIGCONT, a
cut connection, overdue and timed-out tasks, admission, standby activation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from jobplane.client import FailedPrecondition
from support import AgentProc, RunLog, TcpProxy, pid_alive, recorded_command, wait_until

ACTIVE, SUSPECT, LOST, STANDBY, CONNECTING, REVOKED = 1, 2, 3, 4, 7, 8
SUCCEEDED, FAILED = 3, 4
TASK_RUNNING = 4
STATUS_UNKNOWN = 11  # NORMALIZED_STATUS_UNKNOWN


def provider_state(cluster, name):
    """The provider's state, or None before it first connected."""
    return next((p.state for p in cluster.client.list_providers() if p.id == name), None)


def running_on(cluster, job_id, name):
    return [t for t in cluster.client.list_tasks(job_id) if t.state == TASK_RUNNING and t.provider_id == name]


def pid_script(pids, body):
    """A task that records its shell's pid (per attempt) before running `body`."""
    return ["sh", "-c", f"echo $$ > {pids}/$JOBPLANE_TASK_ID.$JOBPLANE_ATTEMPT; {body}"]


def test_killed_agent_is_lost_and_its_tasks_finish_elsewhere_once(cluster, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    cluster.add_agent("a", slots=2)
    job = cluster.client.submit_job({"name": "k", "tasks": [
        {"name": f"t{i}", "command": pid_script(pids, 'if [ "$JOBPLANE_ATTEMPT" = 1 ]; then sleep 120; fi')}
        for i in range(2)]})
    wait_until(lambda: len(running_on(cluster, job.id, "a")) == 2, 30, "two tasks running on a")
    cluster.add_agent("b", slots=2)
    try:
        cluster.agents["a"].kill()
        wait_until(lambda: provider_state(cluster, "a") == LOST, 30, "a to be LOST")
        done = cluster.client.wait_job(job.id, timeout=60)
        assert done.state == SUCCEEDED
        for task in cluster.client.list_tasks(job.id):
            assert task.provider_id == "b"
            ended = [a for a in task.attempts if a.provider_id == "b"]
            assert len(ended) == 1 and task.attempts[0].provider_id == "a" and "lost" in task.attempts[0].reason
            # The lost attempt shows ended, how unknown: not RUNNING, as its last report said.
            assert task.attempts[0].HasField("end_time") and task.attempts[0].raw["state"] in ("lost", "LOST")
            assert task.attempts[0].status == STATUS_UNKNOWN
        (cont,) = list(cluster.client.list_continuations())
        assert cont.provider_id == "a" and {t.to_provider_id for t in cont.tasks} == {"b"}
    finally:  # the killed agent's first attempts must not have outlived it (its keeper kills them)
        stranded = [int(f.read_text()) for f in pids.glob("*.1") if pid_alive(int(f.read_text()))]
        for pid in stranded:
            _kill_group(pid)
    assert stranded == []


def test_stopped_agent_is_probed_lost_and_told_to_kill_its_attempt_on_resume(cluster, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    body = 'if [ "$JOBPLANE_ATTEMPT" = 1 ]; then sleep 120; fi'
    cluster.add_agent("a", slots=1, extra=["--heartbeat", "0.5"])
    job = cluster.client.submit_job({"name": "s", "tasks": [{"name": "t", "command": pid_script(pids, body)}]})
    wait_until(lambda: running_on(cluster, job.id, "a"), 30, "the task running on a")
    cluster.add_agent("b", slots=1)
    agent = cluster.agents["a"]
    agent.signal(signal.SIGSTOP)
    try:
        # SUSPECT lasts only the probe's deadline (1 s), which a test polling on a loaded machine can
        # miss: the event log says what a went through, in order.
        states = []
        for event in cluster.client.watch(filter="type=PROVIDER provider=a", timeout=60):
            states.append(event.raw_status)
            if event.raw_status == "LOST":
                break
        # suspected after 2 x 0.5 s of silence, then LOST when the probe went unanswered
        assert states[-2:] == ["SUSPECT", "LOST"], states
        done = cluster.client.wait_job(job.id, timeout=30)
        assert done.state == SUCCEEDED
    finally:
        agent.signal(signal.SIGCONT)
    (task,) = list(cluster.client.list_tasks(job.id))
    assert task.provider_id == "b" and task.attempt == 2
    first = int((pids / f"{task.id}.1").read_text())
    wait_until(lambda: not pid_alive(first), 30, "the superseded attempt's process to be killed after SIGCONT")


def test_agent_whose_connection_breaks_reconnects_and_keeps_its_tasks(tmp_path, db_url):
    from conftest import Cluster

    cluster = Cluster(tmp_path, db_url)
    # The proxy carries plaintext: with TLS the agent's stream would go to its own mTLS port.
    cluster.start_server(grace=5.0, insecure=True)  # 5 s keeps a loaded machine within the grace
    proxy = TcpProxy(cluster.server.address)
    try:
        agent = AgentProc(tmp_path, cluster.server, "a", slots=1, address=proxy.address)
        cluster.agents["a"] = agent
        cluster.wait_active("a")
        log = tmp_path / "runs.log"
        job = cluster.client.submit_job({"name": "c", "tasks": [{"name": "t", "command": recorded_command(log, 1.5)}]})
        wait_until(lambda: running_on(cluster, job.id, "a"), 30, "the task running on a")
        proxy.cut()
        done = cluster.client.wait_job(job.id, timeout=30)
        assert done.state == SUCCEEDED
        assert "lost the connection" in agent.output(), "the cut broke the agent's stream (it reconnected)"
        runs = RunLog(log)
        assert (runs.started("t"), runs.runs("t")) == (1, 1), "the task ran once, to its end: nothing was rerun"
        (task,) = list(cluster.client.list_tasks(job.id))
        assert task.attempt == 1 and len(task.attempts) == 1, "nothing was reassigned"
        assert list(cluster.client.list_continuations()) == []
    finally:
        proxy.close()
        cluster.close()


def test_agent_restarted_within_the_grace_adopts_its_tasks(tmp_path, db_url):
    from conftest import Cluster

    cluster = Cluster(tmp_path, db_url)
    cluster.start_server(grace=5.0)  # a new agent process must start within it on a loaded machine
    go = tmp_path / "go"
    body = f"echo started $JOBPLANE_TASK_NAME; while [ ! -e {go} ]; do sleep 0.05; done; echo finished"
    try:
        cluster.add_agent("a", slots=2)
        job = cluster.client.submit_job({"name": "r", "tasks": [
            {"name": f"t{i}", "command": ["sh", "-c", body]} for i in range(2)]})
        wait_until(lambda: len(running_on(cluster, job.id, "a")) == 2, 30, "two tasks running on a")
        crashed = cluster.agents["a"]
        crashed.kill()
        crashed.stop()
        cluster.add_agent("a", slots=2)  # the same name and state directory
        go.touch()
        done = cluster.client.wait_job(job.id, timeout=30)
        assert done.state == SUCCEEDED
        for task in cluster.client.list_tasks(job.id):
            assert task.attempt == 1 and len(task.attempts) == 1, "nothing was reassigned"
            assert task.stdout_tail == f"started {task.name}\nfinished\n", "the same process ran it to the end"
        assert list(cluster.client.list_continuations()) == []
    finally:
        go.touch()
        cluster.close()


def test_an_agent_back_after_the_grace_keeps_the_commands_it_adopted_from_running_on(tmp_path, db_url):
    """A new agent process adopts the commands its killed predecessor left (its keeper holds
    them paused) but reaches the server only after the reconnect grace, when the server has
    given them up and will run them again. They stay paused until the server's welcome says
    which it kept (none) and are stopped: the task runs to its end once. Before, adopting them
    let them run on, a command finished, its report was rejected and the task ran again."""
    from conftest import Cluster

    cluster = Cluster(tmp_path, db_url)
    cluster.start_server(grace=3.0, insecure=True)  # the new process adopts well within it
    proxy = TcpProxy(cluster.server.address)
    go, done = tmp_path / "go", tmp_path / "done"
    body = f"while [ ! -e {go} ]; do sleep 0.05; done; echo ok >> {done}"
    try:
        first = cluster.agents["a"] = AgentProc(tmp_path, cluster.server, "a", slots=1, address=proxy.address)
        cluster.wait_active("a")
        job = cluster.client.submit_job({"name": "g", "tasks": [{"name": "t", "command": ["sh", "-c", body]}]})
        wait_until(lambda: running_on(cluster, job.id, "a"), 30, "the task running on a")
        first.kill()
        first.stop()
        proxy.hold_requests()  # the new process's stream reaches the server only when let through
        again = cluster.agents["a"] = AgentProc(tmp_path, cluster.server, "a", slots=1, address=proxy.address)
        wait_until(lambda: "adopting task" in again.output(), 30, "the new agent process to adopt the command")
        go.touch()  # the command would end now, if it ran
        wait_until(lambda: provider_state(cluster, "a") == LOST, 30, "the server to give the agent up")
        proxy.let_requests_through()
        finished = cluster.client.wait_job(job.id, timeout=60)
        assert finished.state == SUCCEEDED
        assert done.read_text() == "ok\n", "the command ran to its end once"
        (task,) = list(cluster.client.list_tasks(job.id))
        assert task.attempt == 2, "the attempt the server gave up was stopped; the next one ran it"
    finally:
        go.touch()
        proxy.close()
        cluster.close()


@pytest.mark.parametrize("containment", ["auto", "subreaper"])  # auto: a cgroup where the machine allows
def test_a_command_adopted_after_the_grace_is_killed_not_thawed_by_its_stop(tmp_path, db_url, containment):
    """As above, with a command that carries on when it gets SIGTERM (it finishes what it
    does first, as many do). The server gave its attempt up; the stop must not let it run
    another instruction: thawed with its SIGTERM, it finished, its report was rejected and
    the task ran twice (and its handler ran alongside the attempt that continued it)."""
    from conftest import Cluster

    cluster = Cluster(tmp_path, db_url)
    cluster.start_server(grace=3.0, insecure=True)
    proxy = TcpProxy(cluster.server.address)
    go, done, term = tmp_path / "go", tmp_path / "done", tmp_path / "term"
    body = (f"trap 'echo $JOBPLANE_ATTEMPT >> {term}' TERM; "
            f"while [ ! -e {go} ]; do sleep 0.05; done; echo ok >> {done}")
    try:
        extra = ["--containment", containment]
        first = cluster.agents["a"] = AgentProc(tmp_path, cluster.server, "a", slots=1, address=proxy.address,
                                                extra=extra)
        cluster.wait_active("a")
        job = cluster.client.submit_job({"name": "g", "tasks": [{"name": "t", "command": ["sh", "-c", body]}]})
        wait_until(lambda: running_on(cluster, job.id, "a"), 30, "the task running on a")
        first.kill()
        first.stop()
        proxy.hold_requests()
        again = cluster.agents["a"] = AgentProc(tmp_path, cluster.server, "a", slots=1, address=proxy.address,
                                                extra=extra)
        wait_until(lambda: "adopting task" in again.output(), 30, "the new agent process to adopt the command")
        go.touch()
        wait_until(lambda: provider_state(cluster, "a") == LOST, 30, "the server to give the agent up")
        proxy.let_requests_through()
        finished = cluster.client.wait_job(job.id, timeout=60)
        assert finished.state == SUCCEEDED
        assert done.read_text() == "ok\n", "the command ran to its end once"
        assert not term.exists(), "the attempt given up ran its SIGTERM handler"
        (task,) = list(cluster.client.list_tasks(job.id))
        assert task.attempt == 2
    finally:
        go.touch()
        proxy.close()
        cluster.close()


# An outside scheduler in a shell script: each submit appends a line to `submits`; polls say
# EXECUTING until the test creates `go`.
EXTERNAL = """#!/bin/sh
case "$1" in
  submit) echo submitted >> {state}/submits; echo '{{"id": "J1"}}' ;;
  poll) touch {state}/polled
        if [ -e {state}/go ]; then echo '{{"status": "ENDED", "done": true, "exit_code": 0}}'
        else echo '{{"status": "EXECUTING"}}'; fi ;;
  cancel) echo '{{}}' ;;
esac
"""


def test_agent_restarted_within_the_grace_adopts_its_external_tasks_without_resubmitting(tmp_path, db_url):
    from conftest import Cluster

    state = tmp_path / "sched"
    state.mkdir()
    script = tmp_path / "sched.sh"
    script.write_text(EXTERNAL.format(state=state))
    script.chmod(0o755)
    cluster = Cluster(tmp_path, db_url)
    cluster.start_server(grace=5.0)  # a new agent process must start within it on a loaded machine
    try:
        cluster.add_agent("a", slots=1)
        job = cluster.client.submit_job({"name": "x", "tasks": [{"name": "t", "external": {
            "submit": [str(script), "submit"], "poll": [str(script), "poll"],
            "cancel": [str(script), "cancel"], "poll_interval": 0.05}}]})
        wait_until(lambda: running_on(cluster, job.id, "a") and (state / "polled").exists(), 30,
                   "the external job submitted and polled on a")
        crashed = cluster.agents["a"]
        crashed.kill()
        crashed.stop()
        (state / "polled").unlink()
        cluster.add_agent("a", slots=1)  # the same name and state directory
        wait_until(lambda: (state / "polled").exists(), 30, "the restarted agent to poll the job")
        (state / "go").touch()
        done = cluster.client.wait_job(job.id, timeout=30)
        assert done.state == SUCCEEDED
        (task,) = list(cluster.client.list_tasks(job.id))
        assert task.attempt == 1 and len(task.attempts) == 1, "nothing was reassigned"
        assert (state / "submits").read_text().splitlines() == ["submitted"], "submitted once"
        assert list(cluster.client.list_continuations()) == []
    finally:
        cluster.close()


def test_a_provider_is_connecting_from_its_hello_until_it_signals_ready(cluster):
    import queue

    from jobplane.v1 import provider_pb2, provider_pb2_grpc
    from support import agent_certificate, agent_channel

    outgoing: queue.Queue = queue.Queue()
    hello = provider_pb2.Hello(name="raw", slots=1, heartbeat_interval_seconds=5)
    outgoing.put(provider_pb2.ConnectRequest(hello=hello))
    with agent_channel(cluster.server, *agent_certificate(cluster.server, "raw")) as channel:
        stream = provider_pb2_grpc.ProviderServiceStub(channel).Connect(iter(outgoing.get, None), timeout=60)
        try:
            assert next(stream).WhichOneof("message") == "welcome"
            assert provider_state(cluster, "raw") == CONNECTING
            outgoing.put(provider_pb2.ConnectRequest(ready=provider_pb2.Ready()))
            wait_until(lambda: provider_state(cluster, "raw") == ACTIVE, 30, "raw to be ACTIVE once ready")
        finally:
            outgoing.put(None)
            stream.cancel()


def test_a_heartbeat_is_seen_its_provider_last_seen_time_moves_on(cluster):
    """Heartbeats go through the core like every change: each one moves the provider's last-seen
    time on (with a 5 s interval nothing else would until the provider is suspected)."""
    import queue

    from jobplane.v1 import provider_pb2, provider_pb2_grpc
    from support import agent_certificate, agent_channel

    def last_seen():
        return cluster.client.get_provider("raw").last_seen_time.ToNanoseconds()

    outgoing: queue.Queue = queue.Queue()
    outgoing.put(provider_pb2.ConnectRequest(hello=provider_pb2.Hello(name="raw", slots=1,
                                                                      heartbeat_interval_seconds=5)))
    outgoing.put(provider_pb2.ConnectRequest(ready=provider_pb2.Ready()))
    with agent_channel(cluster.server, *agent_certificate(cluster.server, "raw")) as channel:
        stream = provider_pb2_grpc.ProviderServiceStub(channel).Connect(iter(outgoing.get, None), timeout=60)
        try:
            assert next(stream).WhichOneof("message") == "welcome"
            wait_until(lambda: provider_state(cluster, "raw") == ACTIVE, 30, "raw to be ACTIVE once ready")
            for _ in range(2):
                before = last_seen()
                outgoing.put(provider_pb2.ConnectRequest(heartbeat=provider_pb2.Heartbeat(free_slots=1)))
                wait_until(lambda: last_seen() > before, 8, "the heartbeat to move last_seen_time on")  # < 2 x 5 s
            assert provider_state(cluster, "raw") == ACTIVE
        finally:
            outgoing.put(None)
            stream.cancel()


def test_revoked_agent_is_cut_off_its_task_moves_and_it_may_not_return(cluster, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    cluster.add_agent("a", slots=1)
    job = cluster.client.submit_job({"name": "v", "tasks": [
        {"name": "t", "command": pid_script(pids, 'if [ "$JOBPLANE_ATTEMPT" = 1 ]; then sleep 120; fi')}]})
    wait_until(lambda: running_on(cluster, job.id, "a"), 30, "the task running on a")
    cluster.add_agent("b", slots=1)
    revoke = subprocess.run([sys.executable, "-m", "jobplane.client.cli", "providers", "revoke", "a",
                             "--reason", "key leaked", "--server", cluster.server.address],
                            capture_output=True, text=True, timeout=60, env={**os.environ, **cluster.server.env()})
    assert revoke.returncode == 0 and "REVOKED" in revoke.stdout, revoke.stderr
    agent = cluster.agents["a"]
    wait_until(lambda: not agent.alive(), 30, "the revoked agent to be cut off and refused")
    assert agent.p.returncode == 1 and "was revoked" in agent.output()
    first = int((pids / f"{next(iter(cluster.client.list_tasks(job.id))).id}.1").read_text())
    wait_until(lambda: not pid_alive(first), 30, "the revoked agent's attempt to be killed")
    assert cluster.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    (task,) = list(cluster.client.list_tasks(job.id))
    assert task.provider_id == "b" and "revoked: key leaked" in task.attempts[0].reason
    again = cluster.add_agent("a", wait=False)
    wait_until(lambda: not again.alive(), 20, "a new agent under the revoked name to be refused")
    assert again.p.returncode == 1 and provider_state(cluster, "a") == REVOKED


def decisions(cluster, job_id):
    return [(e.raw.get("decision"), e.message) for e in _events(cluster, job_id) if e.raw.get("decision")]


def _events(cluster, job_id):
    """The job's stored events, once it has ended (the deadline is in wait_job)."""
    cluster.client.wait_job(job_id, timeout=30)
    out = []
    for e in cluster.client.watch(job_id):
        out.append(e)
        if e.kind == 1 and e.raw_status in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return out


def test_overdue_task_that_progresses_is_waited_on(cluster):
    cluster.add_agent("a", slots=1)
    job = cluster.client.submit_job({"name": "o", "tasks": [{"name": "t", "expected": 0.5,
        "command": ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.2; done"]}]})
    found = decisions(cluster, job.id)
    assert found and found[0][0] == "wait" and "progressing" in found[0][1]
    assert cluster.client.get_job(job.id).state == SUCCEEDED


def test_overdue_silent_task_is_reassigned(cluster):
    cluster.add_agent("a", slots=1)
    cluster.add_agent("b", slots=1)
    job = cluster.client.submit_job({"name": "o", "tasks": [{"name": "t", "expected": 0.5,
        "command": ["sh", "-c", 'if [ "$JOBPLANE_ATTEMPT" = 1 ]; then sleep 60; fi']}]})
    found = decisions(cluster, job.id)
    # A first "wait" is fair if starting the shell registered CPU time; then it stalls.
    reassigned = [why for decision, why in found if decision == "reassign"]
    assert reassigned and "no progress" in reassigned[0]
    (task,) = list(cluster.client.list_tasks(job.id))
    assert task.state == 5 and task.attempt == 2


def test_task_past_its_hard_timeout_is_terminated(cluster):
    cluster.add_agent("a", slots=1)
    job = cluster.client.submit_job({"name": "h", "tasks": [{"name": "t", "timeout": 0.5, "command": ["sleep", "60"]}]})
    done = cluster.client.wait_job(job.id, timeout=30)
    assert done.state == FAILED and "timed out" in done.reason


def test_unmeetable_requirement_is_refused_or_waits_for_a_matching_agent(cluster):
    cluster.add_agent("cpu", labels={"gpu": "false"})
    spec = {"name": "g", "tasks": [{"name": "t", "command": ["true"], "requires": {"gpu": "true"}}]}
    with pytest.raises(FailedPrecondition, match=r"spec.tasks\[0\].requires: no connected or standby provider has gpu=true"):
        cluster.client.submit_job(spec)
    job = cluster.client.submit_job({**spec, "wait_for_providers": True})
    (task,) = list(cluster.client.list_tasks(job.id))
    assert task.status == 3 and "gpu=true" in task.reason  # WAITING, saying why
    cluster.add_agent("gpu", labels={"gpu": "true"})
    assert cluster.client.wait_job(job.id, timeout=30).state == SUCCEEDED


def test_standby_agent_takes_overflow_work_then_stands_by_again(tmp_path, db_url):
    from conftest import Cluster

    cluster = Cluster(tmp_path, db_url)
    try:
        cluster.start_server(extra=["--standby-idle", "0.5"])
        cluster.add_agent("a", slots=1)
        cluster.add_agent("s", slots=1, extra=["--standby"], wait=False)
        wait_until(lambda: provider_state(cluster, "s") == STANDBY, 20, "s to be STANDBY")
        job = cluster.client.submit_job({"name": "sb", "tasks": [
            {"name": f"t{i}", "command": ["sleep", "0.5"]} for i in range(2)]})
        assert cluster.client.wait_job(job.id, timeout=30).state == SUCCEEDED
        assert {t.provider_id for t in cluster.client.list_tasks(job.id)} == {"a", "s"}
        wait_until(lambda: provider_state(cluster, "s") == STANDBY, 30, "s to stand by again when idle")
    finally:
        cluster.close()


def _kill_group(pid: int) -> None:
    """Kill the process group `pid` runs in (the task's, led by the agent's wrapper)."""
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def test_scale_out_hook_runs_with_the_unmet_demand(tmp_path, sqlite_url):
    from conftest import Cluster

    marker = tmp_path / "scaled"
    cluster = Cluster(tmp_path, sqlite_url)
    try:
        cluster.start_server(extra=["--scale-out-hook", f'echo "$JOBPLANE_UNMET_TASKS" > {marker}'])
        cluster.add_agent("a", slots=1)
        job = cluster.client.submit_job({"name": "many", "tasks": [
            {"name": f"t{i}", "command": ["sleep", "0.3"]} for i in range(4)]})
        unmet = int(wait_until(lambda: marker.exists() and marker.read_text().strip(), 15, "the scale-out hook"))
        assert 1 <= unmet <= 4  # the agent may not have signalled its free slot yet
        assert cluster.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    finally:
        cluster.close()


def test_scale_out_hook_hears_of_work_no_free_slot_can_take_for_want_of_labels(tmp_path, sqlite_url):
    from conftest import Cluster

    marker = tmp_path / "scaled"
    cluster = Cluster(tmp_path, sqlite_url)
    try:
        cluster.start_server(extra=["--scale-out-hook", f'echo "$JOBPLANE_UNMET" > {marker}', "--scale-interval", "1"])
        cluster.add_agent("a", slots=4)  # free slots, but no gpu label
        job = cluster.client.submit_job({"name": "gpu", "wait_for_providers": True, "tasks": [
            {"name": f"t{i}", "command": ["true"], "requires": {"gpu": "a100"}} for i in range(2)]})
        unmet = json.loads(wait_until(lambda: marker.exists() and marker.read_text().strip(), 15,
                                      "the scale-out hook"))
        assert unmet == [{"labels": {"gpu": "a100"}, "prerequisites": [], "conditions": [], "resources": {},
                          "tasks": 2}]
        cluster.add_agent("g", slots=1, labels={"gpu": "a100"})  # what the hook would have started
        assert cluster.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    finally:
        cluster.close()


def test_scale_in_hook_names_providers_that_idle(tmp_path, sqlite_url):
    from conftest import Cluster

    marker = tmp_path / "idle"
    cluster = Cluster(tmp_path, sqlite_url)
    try:
        cluster.start_server(extra=["--scale-in-hook", f'echo "$JOBPLANE_IDLE_PROVIDERS" >> {marker}',
                                    "--scale-in-after", "1", "--scale-interval", "0.5"])
        cluster.add_agent("a", slots=1)
        release = tmp_path / "go"
        job = cluster.client.submit_job({"name": "busy", "tasks": [
            {"name": "t", "command": ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.05; done"]}]})
        wait_until(lambda: running_on(cluster, job.id, "a"), 30, "the task running on a")
        cluster.add_agent("b", slots=1)
        wait_until(lambda: marker.exists() and "b" in marker.read_text().split(), 30, "b offered to scale in")
        assert "a" not in marker.read_text().split()  # busy: never offered
        release.touch()
        assert cluster.client.wait_job(job.id, timeout=30).state == SUCCEEDED
        wait_until(lambda: "a" in marker.read_text().split(), 30, "a offered once idle")
    finally:
        cluster.close()


DRAINING, DRAINED = 5, 6


def test_drain_moves_running_tasks_off_and_kills_them_there(cluster, tmp_path):
    import subprocess
    import sys

    pids = tmp_path / "pids"
    pids.mkdir()
    cluster.add_agent("a", slots=1)
    job = cluster.client.submit_job({"name": "d", "tasks": [{"name": "t", "command": pid_script(
        pids, 'if [ "$JOBPLANE_ATTEMPT" = 1 ]; then sleep 120; fi')}]})
    wait_until(lambda: running_on(cluster, job.id, "a"), 30, "the task running on a")
    cluster.add_agent("b", slots=1)
    r = subprocess.run([sys.executable, "-m", "jobplane.client.cli", "providers", "drain", "a",
                        "--server", cluster.server.address], capture_output=True, text=True, timeout=30,
                       env={**os.environ, **cluster.server.env()})
    assert r.returncode == 0, r.stderr
    assert cluster.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    (task,) = list(cluster.client.list_tasks(job.id))
    assert task.provider_id == "b" and task.attempt == 2
    assert provider_state(cluster, "a") == DRAINED
    first = int((pids / f"{task.id}.1").read_text())
    wait_until(lambda: not pid_alive(first), 30, "the drained attempt's process to be killed")


def test_drain_with_wait_lets_the_task_finish_and_sends_new_work_elsewhere(cluster):
    cluster.add_agent("a", slots=1, labels={"node": "a"})
    cluster.add_agent("b", slots=1)
    first = cluster.client.submit_job({"name": "w", "tasks": [
        {"name": "t", "command": ["sleep", "1"], "requires": {"node": "a"}}]})
    wait_until(lambda: running_on(cluster, first.id, "a"), 30, "the task running on a")
    assert cluster.client.drain_provider("a", wait=True).state == DRAINING
    later = cluster.client.submit_job({"name": "later", "tasks": [{"name": "t", "command": ["true"]}]})
    assert cluster.client.wait_job(first.id, timeout=30).state == SUCCEEDED
    assert [t.provider_id for t in cluster.client.list_tasks(first.id)] == ["a"]
    assert cluster.client.wait_job(later.id, timeout=30).state == SUCCEEDED
    assert [t.provider_id for t in cluster.client.list_tasks(later.id)] == ["b"]
    wait_until(lambda: provider_state(cluster, "a") == DRAINED, 30, "a to be DRAINED")


def test_a_cancel_made_while_the_agent_was_away_stops_the_command_it_comes_back_with(tmp_path, db_url):
    """A job cancelled while its agent's stream is down (its process killed, a new one on the
    way): the stop went nowhere. The new process adopts the command and comes back within the
    grace, the server keeps the attempt with it (still the task's until its report) and must
    tell it again to stop. Before, nothing did, and the cancelled command ran to its end."""
    from conftest import Cluster

    cluster = Cluster(tmp_path, db_url)
    cluster.start_server(grace=5.0, insecure=True)
    done = tmp_path / "done"
    try:
        first = cluster.agents["a"] = AgentProc(tmp_path, cluster.server, "a", slots=1)
        cluster.wait_active("a")
        job = cluster.client.submit_job({"name": "c", "tasks": [
            {"name": "t", "command": ["sh", "-c", f"sleep 6; echo ran-on >> {done}"]}]})
        wait_until(lambda: running_on(cluster, job.id, "a"), 30, "the task running on a")
        first.kill()
        first.stop()
        wait_until(lambda: provider_state(cluster, "a") == SUSPECT, 30, "the server to miss the agent")
        cluster.client.cancel_job(job.id)
        cluster.agents["a"] = AgentProc(tmp_path, cluster.server, "a", slots=1)
        cluster.wait_active("a")

        def ended():
            (task,) = list(cluster.client.list_tasks(job.id))
            return task.attempts[-1].HasField("end_time") and task.attempts[-1]
        attempt = wait_until(ended, 30, "the cancelled attempt to be reported ended")
        assert not done.exists(), "the cancelled command ran to its end"
        assert attempt.raw.get("state") == "cancelled", attempt.raw
    finally:
        cluster.close()
