"""A real agent with mutual TLS (enrolled with a join token on a server with its own CA, as
`jobplane up` runs them) keeps the cryptography package out of its process, and starts its Python
workers only at the first Python task: each a lean interpreter (no gRPC), and nothing else beside
them (no resource tracker); and that agents as users start them (`jobplane-agent`, `python -m
jobplane.agent`, `jobplane up`) keep OpenSSL out of their process: their TLS is gRPC's own.
Judged from the process table and each process's memory maps."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from support import Proc, start_up, wait_until

CRYPTOGRAPHY = "cryptography/hazmat/bindings"  # its native library, mapped once the package loads
GRPC = "grpc/_cython/cygrpc"
# Python's ssl module and the OpenSSL it maps (about 4 MiB of an agent's resident set), which
# asyncio would load: the agent's TLS is BoringSSL, inside cygrpc (agent/startup.py).
OPENSSL = ("/_ssl.", "/libssl.so", "/libcrypto.so")


def children(pid: int) -> dict[int, str]:
    """The process's live children and their command lines, but for a key being made for its
    next certificate (`python -m jobplane.agent.keygen`, a moment after each new certificate)."""
    found: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that just ended
            continue
        for child in pids:
            try:  # empty for a child that has exited, not yet reaped
                found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except FileNotFoundError:
                continue
    return {child: argv for child, argv in found.items() if argv and "jobplane.agent.keygen" not in argv}


def maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def openssl_in(pid: int) -> list[str]:
    """The files of Python's ssl module and OpenSSL that the process has mapped."""
    return sorted({line.split()[-1] for line in maps(pid).splitlines() if any(lib in line for lib in OPENSSL)})


def run(client, task: dict) -> None:
    job = client.submit_job({"name": "lean", "tasks": [dict(task, name="t")]})
    assert client.wait_job(job.id, timeout=60).counts.success == 1


def test_a_tls_agent_runs_without_cryptography_and_starts_lean_workers_at_its_first_python_task(sqlite_cluster):
    agent = sqlite_cluster.add_agent("lean-1")  # enrolls: a key made, a certificate stored
    client = sqlite_cluster.client

    run(client, {"command": ["/bin/true"]})
    assert children(agent.pid) == {}  # no pool yet: commands run under the keeper
    assert CRYPTOGRAPHY not in maps(agent.pid)
    assert GRPC in maps(agent.pid)

    run(client, {"python": "jobplane.examples.funcs:noop"})
    workers = wait_until(lambda: children(agent.pid), 30, "the Python worker")
    (worker, argv), = workers.items()  # the worker, and no other process beside it
    assert "jobplane.agent.pyworker" in argv
    assert GRPC not in maps(worker) and CRYPTOGRAPHY not in maps(worker)
    assert CRYPTOGRAPHY not in maps(agent.pid)


def test_agents_started_as_users_start_them_connect_with_mutual_tls_without_openssl(sqlite_cluster):
    server = sqlite_cluster.server
    script = [str(Path(sys.executable).with_name("jobplane-agent")), "--server", server.address,
              "--name", "script-1", "--state-dir", str(sqlite_cluster.workdir / "agent-script-1.state"),
              *server.agent_args()]
    sqlite_cluster.agents["script-1"] = Proc(script, sqlite_cluster.workdir / "agent-script-1.log")
    main = [sys.executable, "-m", "jobplane.agent.main", *script[1:]]
    main[main.index("script-1")] = "main-1"
    main[-len(server.agent_args()) - 1] = str(sqlite_cluster.workdir / "agent-main-1.state")
    sqlite_cluster.agents["main-1"] = Proc(main, sqlite_cluster.workdir / "agent-main-1.log")
    module = sqlite_cluster.add_agent("module-1")  # python -m jobplane.agent
    for name in ("script-1", "main-1"):  # all enrolled, and stream with their certificates
        sqlite_cluster.wait_active(name)

    run(sqlite_cluster.client, {"command": ["/bin/true"]})
    for agent in (sqlite_cluster.agents["script-1"], sqlite_cluster.agents["main-1"], module):
        assert GRPC in maps(agent.pid)
        assert openssl_in(agent.pid) == []


def test_the_agents_jobplane_up_starts_run_without_openssl(tmp_path):
    up = start_up(tmp_path, agents=1)  # up.json is written once its agents are ACTIVE
    try:
        agents = [pid for pid, argv in children(up.pid).items() if "jobplane.agent" in argv]
        assert len(agents) == 1, children(up.pid)
        assert GRPC in maps(agents[0])
        assert openssl_in(agents[0]) == []
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0, up.stdout.read()
