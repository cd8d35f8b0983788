"""A new user's walk through the README, where it went wrong: `jobplane up` outlives a killed
agent, the job-file example is accepted as written, `jobs get` says who holds a job and why; and
the later findings: an unnamed alert's handle, a finished job's counts, flags named as API fields,
and gRPC's own log lines around a wrong CA."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from jobplane.client import InvalidArgument
from jobplane.client.local import RESTART_AFTER_SECONDS
from support import agent_certificate, agent_channel, jobplane, pid_alive, start_up, submit_running, wait_until

README = Path(__file__).resolve().parents[2] / "README.md"


def _agent_pid(home: Path, name: str) -> int | None:
    """The pid of `jobplane up`'s agent `name` (the process with its state directory), if one runs."""
    state_dir = str(home / "agents" / name)
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"jobplane.agent" in argv and state_dir.encode() in argv and pid_alive(int(entry.name)):
            return int(entry.name)
    return None


def _age(pid: int) -> float:
    """Seconds since process `pid` started, from /proc."""
    start_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def test_up_starts_again_an_agent_killed_with_sigkill_and_its_task_finishes(tmp_path):
    """README: an agent killed and started again on its state directory takes its tasks back, or
    they continue elsewhere. Under `jobplane up`, kill -9 of an agent stopped the whole plane."""
    env = {"JOBPLANE_HOME": str(tmp_path)}
    go, done = tmp_path / "go", tmp_path / "done"
    job_file = tmp_path / "wait.toml"
    job_file.write_text(f'name = "wait"\n[[tasks]]\nname = "t"\n'
                        f'command = ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.1; done; echo ok >> {done}"]\n')
    up = start_up(tmp_path, agents=1)
    try:
        job_id = submit_running(job_file, env)
        first = _agent_pid(tmp_path, "local-1")
        assert first is not None
        # `up` starts again only an agent that ran a while (one that dies at once would again)
        wait_until(lambda: _age(first) > RESTART_AFTER_SECONDS + 0.5, 30, "the agent to have run a while",
                   interval=0.2)
        os.kill(first, signal.SIGKILL)
        second = wait_until(lambda: (pid := _agent_pid(tmp_path, "local-1")) not in (None, first) and pid,
                            30, "`jobplane up` to start the agent again")
        assert up.poll() is None, up.stdout.read()
        go.touch()
        wait_until(lambda: json.loads(jobplane("jobs", "get", job_id, "-o", "json", env=env).stdout)
                   .get("state") == "SUCCEEDED", 60, "the job to succeed")
        assert done.read_text() == "ok\n"  # it ran to its end once, whichever agent process ended it
        assert up.poll() is None and _agent_pid(tmp_path, "local-1") == second
    finally:
        go.touch()
        out = _stop(up)
    assert up.returncode == 0, out
    assert "agent local-1 was killed by SIGKILL; starting it again" in out, out


def _stop(up) -> str:
    """Ctrl-C to `jobplane up`; everything it printed."""
    if up.poll() is None:
        up.send_signal(signal.SIGINT)
    return up.communicate(timeout=60)[0]


def test_up_leaves_stopped_an_agent_that_dies_at_once_and_goes_on(tmp_path):
    """An agent that dies within RESTART_AFTER_SECONDS of starting would likely die again: `up`
    says which and how, and goes on with the server and its other agents (it used to stop)."""
    env = {"JOBPLANE_HOME": str(tmp_path)}
    up = start_up(tmp_path, agents=2)
    try:
        pid = _agent_pid(tmp_path, "local-2")
        assert pid is not None and _age(pid) < RESTART_AFTER_SECONDS - 2, "the machine is too slow for this test"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 10, "the agent to die")
        r = jobplane("submit", str(README.parent / "examples" / "hello.toml"), "--watch", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert up.poll() is None and _agent_pid(tmp_path, "local-2") is None
    finally:
        out = _stop(up)
    assert up.returncode == 0, out
    assert re.search(r"agent local-2 was killed by SIGKILL [\d.]+s after it started", out), out
    assert "not starting agent local-2 again" in out and "starting it again" not in out, out


def test_the_readmes_revoke_of_an_up_agent_leaves_the_plane_running(tmp_path):
    """README, "Using it", as written under `jobplane up`: `providers revoke local-2` refuses
    that agent for good (it exits), and the server and local-1 go on taking jobs; the next `up`
    starts local-3 in its place."""
    env = {"JOBPLANE_HOME": str(tmp_path)}
    up = start_up(tmp_path, agents=2)
    try:
        pid = _agent_pid(tmp_path, "local-2")
        r = jobplane("providers", "revoke", "local-2", "--reason", "decommissioned", env=env)
        assert r.returncode == 0, r.stderr
        wait_until(lambda: not pid_alive(pid), 30, "the revoked agent to exit")
        r = jobplane("submit", str(README.parent / "examples" / "hello.toml"), "--watch", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "local-1" in r.stdout and up.poll() is None and _agent_pid(tmp_path, "local-2") is None
    finally:
        out = _stop(up)
    assert up.returncode == 0, out
    assert "agent local-2 exited with code 1" in out and "revoked" in out and "not starting agent local-2 again" in out, out
    # revoked for good: the next `up --agents 2` passes over the name (it used to fail to start)
    up = start_up(tmp_path, agents=2)
    try:
        providers = json.loads(jobplane("providers", "list", "-o", "json", env=env).stdout)
        assert {p["id"]: p["state"] for p in providers} == {"local-1": "ACTIVE", "local-2": "REVOKED",
                                                            "local-3": "ACTIVE"}
    finally:
        out = _stop(up)
    assert up.returncode == 0 and "2 agents (local-1, local-3)" in out, out


def _readme_job_file() -> str:
    """The TOML block of the README's "Job files" section, as a user copies it."""
    section = README.read_text().split("\n## Job files\n", 1)[1]
    return re.search(r"```toml\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.server_args("--period-end", "03-31")
def test_the_readme_job_file_example_is_accepted_as_written(sqlite_cluster, tmp_path):
    """Its comments name what the server needs (`--period-end` for end_of_period; an agent with
    the labels its tasks require): given those, the example is valid as it stands."""
    sqlite_cluster.add_agent("a", labels={"gpu": "false"})
    job_file = tmp_path / "nightly.toml"
    job_file.write_text(_readme_job_file())
    r = jobplane("submit", str(job_file), "-o", "json", "--server", sqlite_cluster.server.address,
                 env=sqlite_cluster.server.env())
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["spec"]["name"] == "nightly" and len(job["spec"]["tasks"]) == 4


def test_jobs_get_says_who_holds_a_job_and_why(sqlite_cluster, tmp_path):
    """A job held by hand shows ON_HOLD; `jobs get` names the hold, as the console and JSON do."""
    sqlite_cluster.add_agent("a")
    env = {**sqlite_cluster.server.env(), "JOBPLANE_SERVER": sqlite_cluster.server.address}
    go = tmp_path / "go"
    job_file = tmp_path / "wait.toml"
    job_file.write_text(f'name = "wait"\n[[tasks]]\nname = "t"\n'
                        f'command = ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.1; done"]\n')
    job_id = submit_running(job_file, env)
    try:
        r = jobplane("hold", job_id, "--suspend", "--reason", "disk full", env=env)
        assert r.returncode == 0, r.stderr
        shown = jobplane("jobs", "get", job_id, env=env).stdout
        assert re.search(r"^Status +ON_HOLD", shown, re.MULTILINE), shown
        assert re.search(r"^Hold +disk full \(by admin\)$", shown, re.MULTILINE), shown
        assert jobplane("release", job_id, env=env).returncode == 0
        shown = jobplane("jobs", "get", job_id, env=env).stdout
        assert re.search(r"^Hold +-$", shown, re.MULTILINE), shown
    finally:
        go.touch()


def test_a_list_cut_at_one_says_the_first_job(sqlite_cluster):
    sqlite_cluster.add_agent("a")
    env = {**sqlite_cluster.server.env(), "JOBPLANE_SERVER": sqlite_cluster.server.address}
    for _ in range(2):
        assert jobplane("submit", str(README.parent / "examples" / "hello.toml"), "--watch", env=env).returncode == 0
    lines = jobplane("jobs", "list", "--limit", "1", env=env).stdout.splitlines()
    assert lines[-1] == "(the first job; more match: --limit N for more, --all for every one)", lines


def _env(cluster) -> dict[str, str]:
    return {**cluster.server.env(), "JOBPLANE_SERVER": cluster.server.address}


def test_an_alert_without_a_name_is_listed_as_add_called_it(sqlite_cluster):
    """`alerts add` without --name said "(alert 1)" but `alerts list` showed "-" for its name."""
    env = _env(sqlite_cluster)
    added = jobplane("alerts", "add", "--filter", "status=FAILURE", "--command", "/bin/true", env=env)
    assert added.returncode == 0 and "added alert rule 1 (alert 1):" in added.stdout, added.stdout + added.stderr
    header, row = jobplane("alerts", "list", env=env).stdout.splitlines()
    assert row.split()[:3] == ["1", "alert", "1"], row


def test_a_finished_jobs_task_counts_read_naturally(sqlite_cluster, tmp_path):
    """A finished job with a task failed read "1/2 done, 1 failed" (the walk saw "0/2 done, 1 failed")."""
    sqlite_cluster.add_agent("a")
    env = _env(sqlite_cluster)
    job_file = tmp_path / "two.toml"
    job_file.write_text('name = "two"\n[[tasks]]\nname = "ok"\ncommand = ["true"]\n'
                        '[[tasks]]\nname = "bad"\ncommand = ["false"]\n')
    assert jobplane("submit", str(job_file), "--watch", env=env).returncode == 1
    listed = jobplane("jobs", "list", env=env).stdout
    assert re.search(r"^1 +two +FAILURE +0 +1 of 2 succeeded, 1 failed +", listed, re.MULTILINE), listed


def test_a_refused_flag_is_named_as_the_flag_not_as_the_api_field(sqlite_cluster):
    """`tokens create --role viewer --uses 3` answered with API field names (`ttl_seconds`); the
    CLI says the flags, while an API caller still gets the field's path."""
    env = _env(sqlite_cluster)
    refusals = {
        ("tokens", "create", "--role", "viewer", "--user", "u", "--uses", "3"):
            "jobplane: --uses: only join tokens (role agent) have a use count; an API token works until it "
            "expires (--ttl) or is revoked: leave it out\n",
        ("tokens", "create", "--role", "viewer", "--user", "u", "--ttl", "100000d"): "jobplane: --ttl: must be ",
        ("jobs", "purge", "--before", "2099-01-01"): "jobplane: --before: 2099-01-01 00:00:00 UTC is in the future",
        ("jobs", "list", "--sort", "bogus"): "jobplane: --sort: unknown key 'bogus'",
        ("alerts", "add", "--filter", "status=FAILURE", "--webhook", "ftp://x"): "jobplane: --webhook: 'ftp://x' is not",
    }
    for command, expected in refusals.items():
        r = jobplane(*command, env=env)
        assert r.returncode == 2 and r.stderr.startswith(expected), (command, r.stderr)
    with pytest.raises(InvalidArgument) as caught:
        sqlite_cluster.client.create_token("viewer", user="u", uses=3)
    assert caught.value.message.startswith("uses: ") and "(ttl_seconds)" in caught.value.message


C_CORE_LINE = re.compile(r"^[DIWE]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+\.cc:\d+\]", re.MULTILINE)  # gRPC's own log


def test_a_program_using_the_sdk_keeps_grpcs_own_log_lines(sqlite_cluster, tmp_path, monkeypatch):
    """Only the `jobplane` program quiets gRPC's C core: a program that imports the SDK may run
    gRPC of its own, whose errors only the C core logs, so it keeps gRPC's default."""
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    program = ("import jobplane.client, grpc, sys\n"
               f"channel = grpc.secure_channel({sqlite_cluster.server.address!r}, "
               f"grpc.ssl_channel_credentials(open({str(broken)!r}, 'rb').read()))\n"
               "try:\n    grpc.channel_ready_future(channel).result(timeout=2)\n"
               "except grpc.FutureTimeoutError:\n    pass\n")
    r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert C_CORE_LINE.search(r.stderr), r.stderr


def test_a_wrong_ca_shows_only_jobplanes_message_and_the_server_still_logs_a_bad_certificate(
        sqlite_cluster, tmp_path, monkeypatch):
    """`jobplane --ca OTHER jobs list` printed gRPC's C-core handshake lines before its own
    message, at each reconnect. The CLI (and the agent) now show only theirs unless the user
    sets $GRPC_VERBOSITY; the server keeps the C core's line for an agent's bad certificate."""
    from jobplane.server.security.pki import Authority

    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    server = sqlite_cluster.server
    other = tmp_path / "other-ca.pem"
    other.write_bytes(Authority.load_or_create(tmp_path / "other-ca").trust_bundle())
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    for ca, says in ((other, "not signed by a CA this client trusts"), (broken, f"trusting the CA bundle {broken}")):
        r = jobplane("--ca", str(ca), "jobs", "list", env=_env(sqlite_cluster))
        assert r.returncode == 3 and says in r.stderr, r.stderr
        assert not C_CORE_LINE.search(r.stderr), r.stderr
        assert r.stderr.startswith("jobplane: cannot reach a jobplane server"), r.stderr
    loud = jobplane("--ca", str(other), "jobs", "list", env={**_env(sqlite_cluster), "GRPC_VERBOSITY": "INFO"})
    assert C_CORE_LINE.search(loud.stderr), "the user's own GRPC_VERBOSITY wins"

    agent = sqlite_cluster.add_agent("a1", wait=False, extra=["--ca", str(other)])
    wait_until(lambda: not agent.alive(), 30, "the agent with the wrong CA to give up")
    assert "is not signed by the CA bundle" in agent.output() and not C_CORE_LINE.search(agent.output()), \
        agent.output()

    key, cert = agent_certificate(server, "a2", authority=Authority.load_or_create(tmp_path / "other-ca"))
    with agent_channel(server, key, cert) as channel:
        with pytest.raises(grpc.FutureTimeoutError):
            grpc.channel_ready_future(channel).result(timeout=2)
    wait_until(lambda: "Handshake failed" in server.output(), 10, "the server to log the refused certificate")
