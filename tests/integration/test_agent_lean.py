"""A real agent with mutual TLS (enrolled with a join token on a server with its own CA, as
`jobplane up` runs them) keeps the cryptography package out of its process, and starts its Python
workers only at the first Python task: each a lean interpreter (no gRPC), and nothing else beside
them (no resource tracker). Judged from the process table and each process's memory maps."""

from __future__ import annotations

from pathlib import Path

from support import wait_until

CRYPTOGRAPHY = "cryptography/hazmat/bindings"  # its native library, mapped once the package loads
GRPC = "grpc/_cython/cygrpc"


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
