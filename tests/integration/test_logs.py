"""Task output: kept whole by the agent, streamed live through the server (`jobplane logs`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support import jobplane, wait_until

from jobplane.client import Client, NotFound, OutOfRange, Retry, Unavailable

RUNNING, SUCCEEDED, CANCELLED = 4, 5, 7  # TaskState
# Deterministic bytes of every value, newlines included: a little over 1 MiB.
MEGABYTE = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 4100); sys.stderr.buffer.write(b'e' * 3000)"
EXPECTED = bytes(range(256)) * 4100


def logs_cli(server, *args: str) -> subprocess.CompletedProcess:
    """`jobplane logs ...` as a user runs it, its output as bytes."""
    return subprocess.run([sys.executable, "-m", "jobplane.client.cli", "logs", "--server", server.address, *args],
                          capture_output=True, timeout=60, env={**os.environ, **server.env()})


def one_task(cluster, command: list[str], name: str = "j") -> tuple[str, str]:
    job = cluster.client.submit_job({"name": name, "tasks": [{"name": "t", "command": command}]})
    (task,) = cluster.client.list_tasks(job.id)
    return job.id, task.id


def state_of(cluster, task_id: str) -> int:
    return cluster.client.get_task(task_id).state


def test_logs_follow_prints_lines_while_the_task_runs_and_ends_with_the_attempt(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    cluster.add_agent("a")
    gate = tmp_path / "gate"
    # One line, then nothing until the test has seen it; then a line every 0.2 s.
    script = (f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; "
              "for i in 1 2 3 4 5; do echo line-$i; sleep 0.2; done")
    _, task_id = one_task(cluster, ["sh", "-c", script])
    wait_until(lambda: state_of(cluster, task_id) == RUNNING, 30, "the task to run")
    follower = subprocess.Popen([sys.executable, "-m", "jobplane.client.cli", "logs", "-f", task_id,
                                 "--server", cluster.server.address], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**os.environ, **cluster.server.env()})
    try:
        assert follower.stdout.readline() == b"first\n"
        # The task cannot have ended: it waits for the gate, which only now opens.
        assert state_of(cluster, task_id) == RUNNING
        gate.touch()
        rest = follower.stdout.read()
        assert follower.wait(30) == 0, follower.stderr.read()
    finally:
        follower.kill()
    assert rest == b"".join(f"line-{i}\n".encode() for i in range(1, 6))
    assert state_of(cluster, task_id) == SUCCEEDED  # it ended with the attempt, not before


def test_logs_of_a_finished_attempt_are_complete_byte_for_byte(sqlite_cluster):
    cluster = sqlite_cluster
    cluster.add_agent("a")
    job_id, task_id = one_task(cluster, [sys.executable, "-c", MEGABYTE])
    assert cluster.client.wait_job(job_id, timeout=60).state == 3  # JOB_STATE_SUCCEEDED
    out = logs_cli(cluster.server, task_id)
    assert out.returncode == 0, out.stderr
    assert out.stdout == EXPECTED
    err = logs_cli(cluster.server, task_id, "--stderr", "--attempt", "1")
    assert (err.returncode, err.stdout) == (0, b"e" * 3000)
    # The SDK: the same bytes, chunk by chunk, each saying where it begins.
    chunks = list(cluster.client.logs(task_id))
    assert b"".join(c.data for c in chunks) == EXPECTED
    assert [c.offset for c in chunks] == [sum(len(c.data) for c in chunks[:i]) for i in range(len(chunks))]
    assert {(c.attempt, c.provider_id) for c in chunks} == {(1, "a")}


def test_a_cancelled_task_keeps_its_output(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    cluster.add_agent("a")
    marker = tmp_path / "printed"
    script = f"echo before-cancel; echo on-stderr >&2; touch {marker}; sleep 300"
    job_id, task_id = one_task(cluster, ["sh", "-c", script])
    wait_until(marker.exists, 30, "the task to print its lines")
    cluster.client.cancel_job(job_id)

    def tails():
        t = cluster.client.get_task(task_id)
        return t if t.state == CANCELLED and t.stdout_tail else None

    cancelled = wait_until(tails, 30, "the cancelled task's output tails")
    assert (cancelled.stdout_tail, cancelled.stderr_tail) == ("before-cancel\n", "on-stderr\n")
    out = logs_cli(cluster.server, task_id)
    assert (out.returncode, out.stdout) == (0, b"before-cancel\n")


def test_logs_of_a_task_that_printed_nothing_is_empty_output(sqlite_cluster):
    cluster = sqlite_cluster
    cluster.add_agent("a")
    job_id, task_id = one_task(cluster, ["true"])
    cluster.client.wait_job(job_id, timeout=60)
    for stream in ([], ["--stderr"]):
        out = logs_cli(cluster.server, task_id, *stream)
        assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")


def test_logs_of_a_python_call_that_printed_nothing_is_empty_output_and_of_one_that_did_is_its_text(sqlite_cluster):
    cluster = sqlite_cluster
    cluster.add_agent("a")
    job = cluster.client.submit_job({"name": "py", "tasks": [
        {"name": "quiet", "python": "jobplane.examples.funcs:noop"},
        {"name": "loud", "python": "builtins:print", "args": ["hello", "there"]}]})
    cluster.client.wait_job(job.id, timeout=60)
    quiet, loud = sorted(cluster.client.list_tasks(job.id), key=lambda t: t.name != "quiet")
    for stream in ([], ["--stderr"]):
        out = logs_cli(cluster.server, quiet.id, *stream)
        assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")
    out = logs_cli(cluster.server, loud.id)
    assert (out.returncode, out.stdout) == (0, b"hello there\n")


def test_retention_removes_old_output(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    cluster.add_agent("a", extra=["--log-retention", "1"])
    job_id, task_id = one_task(cluster, ["echo", "soon gone"])
    cluster.client.wait_job(job_id, timeout=60)
    logs = tmp_path / "agent-a.state" / "logs"
    wait_until(lambda: logs.is_dir() and not any(logs.iterdir()), 30, "the agent to remove the old output")
    out = logs_cli(cluster.server, task_id)
    assert out.returncode == 3
    assert b"is not kept on this agent" in out.stderr and b"--log-retention" in out.stderr


def test_output_past_the_cap_is_rotated_away_and_logs_says_so(sqlite_cluster):
    cluster = sqlite_cluster
    cluster.add_agent("a", extra=["--log-max-bytes", "16384"])
    job_id, task_id = one_task(cluster, [sys.executable, "-c", MEGABYTE])
    cluster.client.wait_job(job_id, timeout=60)
    out = logs_cli(cluster.server, task_id)
    assert out.returncode == 0, out.stderr
    assert 0 < len(out.stdout) <= 16384 and EXPECTED.endswith(out.stdout)
    skipped = len(EXPECTED) - len(out.stdout)
    assert f"the first {skipped} bytes of this output were rotated away on a".encode() in out.stderr
    with pytest.raises(OutOfRange, match="rotated away.*--log-max-bytes"):
        list(cluster.client.logs(task_id, offset=1))


def test_logs_errors_say_what_is_wrong(sqlite_cluster):
    cluster = sqlite_cluster
    agent = cluster.add_agent("a")
    job_id, task_id = one_task(cluster, ["echo", "hi"])
    cluster.client.wait_job(job_id, timeout=60)
    with pytest.raises(NotFound, match="task 999 not found"):
        list(cluster.client.logs("999"))
    with pytest.raises(NotFound, match="has no attempt 7"):
        list(cluster.client.logs(task_id, attempt=7))
    missing = jobplane("logs", "999", "--server", cluster.server.address, env=cluster.server.env())
    assert missing.returncode == 3 and "task 999 not found" in missing.stderr
    agent.stop()
    wait_until(lambda: cluster.client.get_provider("a").state != 1, 30, "the agent to be gone")
    with Client.connect(cluster.server.address, token=cluster.server.token, ca=cluster.server.ca,
                        retry=Retry(attempts=1)) as client:
        with pytest.raises(Unavailable, match="provider 'a'.* is not connected"):
            list(client.logs(task_id))


def test_logs_are_read_as_the_task_is_a_submitter_sees_only_their_own(sqlite_cluster):
    cluster = sqlite_cluster
    cluster.add_agent("a")
    job_id, task_id = one_task(cluster, ["echo", "admins"])
    cluster.client.wait_job(job_id, timeout=60)
    alice = cluster.client.create_token("submitter", user="alice").secret
    viewer = cluster.client.create_token("viewer", user="val").secret
    server = cluster.server
    with Client.connect(server.address, token=alice, ca=server.ca, timeout=10) as client:
        with pytest.raises(NotFound, match=f"task {task_id} not found"):
            list(client.logs(task_id))
        mine = client.submit_job({"name": "alices", "tasks": [{"name": "t", "command": ["echo", "alices"]}]})
        client.wait_job(mine.id, timeout=60)
        (own,) = client.list_tasks(mine.id)
        assert b"".join(c.data for c in client.logs(own.id)) == b"alices\n"
    with Client.connect(server.address, token=viewer, ca=server.ca, timeout=10) as client:
        assert b"".join(c.data for c in client.logs(task_id)) == b"admins\n"


@pytest.mark.postgres
def test_logs_follow_through_a_follower_replica(tmp_path, pg_url):
    from test_replica_verbs import replica

    from support import AgentProc

    a = replica(tmp_path / "a", pg_url)
    b = replica(tmp_path / "b", pg_url, token=a.token)  # follows: a leads and holds the agent's link
    agent = AgentProc(tmp_path, a, "w1")
    gate = tmp_path / "gate"
    try:
        with b.client(timeout=10) as client:
            wait_until(lambda: list(client.list_providers(filter="state=ACTIVE")), 20, "the agent to join")
            script = f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo last"
            job = client.submit_job({"name": "j", "tasks": [{"name": "t", "command": ["sh", "-c", script]}]})
            (task,) = client.list_tasks(job.id)
            wait_until(lambda: client.get_task(task.id).state == RUNNING, 30, "the task to run")
            chunks = client.logs(task.id, follow=True)
            assert next(chunks).data == b"first\n"
            assert client.get_task(task.id).state == RUNNING
            gate.touch()
            assert b"".join(c.data for c in chunks) == b"last\n"
            assert client.get_task(task.id).state == SUCCEEDED
            out = logs_cli(b, task.id)
            assert (out.returncode, out.stdout) == (0, b"first\nlast\n")
    finally:
        agent.stop()
        for server in (a, b):
            server.stop()
