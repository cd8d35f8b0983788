"""Agent memory: the resident set (VmRSS) of a real jobplane-agent on this machine, connected to a
real server, idle and after its first tasks; its keeper and its Python workers counted apart
(they are processes of their own).

    python bench/agent_memory.py [--settle 3] [--script] [--source]

Prints, per stage, the agent's RSS and, apart, its keeper's and each Python worker's:

- idle, plaintext (`--insecure` server and agent);
- after one `/bin/true` command task, then after one Python no-op task (which starts the
  first Python worker);
- idle with mutual TLS on a server with its own CA (as `jobplane up` runs its agents): once
  just after enrolling, once started again on the certificate it stored;
- the reference, measured in the same run: a process that imports only gRPC and the provider
  stubs and holds one Connect stream (hello, heartbeats), plaintext and with the agent's
  certificate. No agent can be smaller; the difference is the agent's own. Like the agent
  (agent/startup.py), it imports asyncio without the `ssl` module (OpenSSL, about 4 MiB).

`--script` runs the agent as the `jobplane-agent` console script instead of
`python -m jobplane.agent`. Target: the agent <= 40 MiB idle.

The jobplane packages are byte-compiled first, as an installed package is: an editable checkout
under PYTHONDONTWRITEBYTECODE=1 compiles every module from source at each start, which leaves
the agent about 1.2 MiB larger (`--source` measures that).
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import AgentProc, Proc, ServerProc, wait_until  # noqa: E402

TARGET_IDLE_MIB = 40.0

# The reference: `python -c STREAM_ONLY TARGET NAME [KEY CERT CA]`.
STREAM_ONLY = """
import sys
from jobplane.agent.startup import import_asyncio_without_ssl
import_asyncio_without_ssl()  # as the agent's entry point does: no OpenSSL for asyncio
import asyncio
import grpc
from jobplane.v1 import provider_pb2, provider_pb2_grpc

async def main(target, name, *tls):
    if tls:
        key, cert, ca = (open(path, "rb").read() for path in tls)
        channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ca, key, cert))
    else:
        channel = grpc.aio.insecure_channel(target)
    call = provider_pb2_grpc.ProviderServiceStub(channel).Connect()
    hello = provider_pb2.Hello(name=name, slots=1, heartbeat_interval_seconds=1.0)
    await call.write(provider_pb2.ConnectRequest(hello=hello))
    await call.read()
    print("welcomed", flush=True)
    while True:
        await asyncio.sleep(1.0)
        await call.write(provider_pb2.ConnectRequest(heartbeat=provider_pb2.Heartbeat()))

asyncio.run(main(*sys.argv[1:]))
"""


def rss_mib(pid: int) -> float:
    """The process's resident set now (VmRSS), in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """The process's children (its Python workers; the keeper runs in a session of its own)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return sorted(set(found))


def keeper_of(state_dir: Path) -> int | None:
    """The pid of the keeper that holds `state_dir` (`python -m jobplane.agent.keeper ... DIR`)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if b"jobplane.agent.keeper" in argv and os.fsencode(state_dir) in argv:
            return int(entry.name)
    return None


def report(stage: str, agent: Proc, state_dir: Path) -> float:
    """Print one stage's figures; the agent's RSS."""
    mine = rss_mib(agent.pid)
    keeper = keeper_of(state_dir)
    workers = ", ".join(f"{rss_mib(pid):.1f}" for pid in children(agent.pid)) or "none"
    keeper_text = f"{rss_mib(keeper):5.1f} MiB" if keeper else "  none   "
    print(f"{stage:<38} agent {mine:5.1f} MiB   keeper {keeper_text}   python workers (MiB): {workers}",
          flush=True)
    return mine


def settled(seconds: float) -> None:
    """Let the agent reach its steady state (heartbeats, gRPC's threads and buffers) before a reading."""
    time.sleep(seconds)


def run_task(client, task: dict) -> None:
    job = client.submit_job({"name": "memory", "tasks": [dict(task, name="t")]})
    done = client.wait_job(job.id, timeout=120)
    assert done.counts.success == 1, done


def stream_only(work: Path, target: str, name: str, settle: float, identity: Path | None = None) -> float:
    """The reference's RSS (see above); with `identity`, mutual TLS with that agent's files."""
    tls = [str(identity / f) for f in ("agent.key", "agent.crt", "ca.crt")] if identity else []
    proc = Proc([sys.executable, "-c", STREAM_ONLY, target, name, *tls], work / f"reference-{name}.log")
    try:
        wait_until(lambda: "welcomed" in proc.output() or not proc.alive(), 30, "the reference to connect")
        assert proc.alive(), proc.output()
        settled(settle)
        return rss_mib(proc.pid)
    finally:
        proc.stop()


def active(client, count: int) -> Callable[[], bool]:
    return lambda: sum(p.state == 1 for p in client.list_providers()) == count


def plaintext(work: Path, settle: float, script: bool) -> tuple[float, float]:
    server = ServerProc(work, f"sqlite:///{work / 'plain.db'}", insecure=True)
    agent = start_agent(work, server, "plain", script)
    client = server.client()
    try:
        wait_until(active(client, 1), 30, "the agent to connect")
        settled(settle)
        idle = report("idle, plaintext", agent, work / "agent-plain.state")
        run_task(client, {"command": ["/bin/true"]})
        settled(settle)
        report("after one command task", agent, work / "agent-plain.state")
        run_task(client, {"python": "jobplane.examples.funcs:noop"})
        settled(settle)
        report("after one Python task", agent, work / "agent-plain.state")
        return idle, stream_only(work, server.address, "reference", settle)
    finally:
        client.close()
        agent.stop()
        server.stop()


def mutual_tls(work: Path, settle: float, script: bool) -> tuple[float, float]:
    server = ServerProc(work, f"sqlite:///{work / 'tls.db'}")
    client = server.client()
    try:
        agent = start_agent(work, server, "tls", script)
        try:
            wait_until(active(client, 1), 30, "the agent to enroll and connect")
            settled(settle)
            report("idle, mutual TLS, just enrolled", agent, work / "agent-tls.state")
        finally:
            agent.stop()
        wait_until(lambda: keeper_of(work / "agent-tls.state") is None, 30, "the first keeper to exit")
        wait_until(active(client, 0), 30, "the server to lose the agent")
        agent = start_agent(work, server, "tls", script)
        try:
            wait_until(active(client, 1), 30, "the agent to connect again")
            settled(settle)
            idle = report("idle, mutual TLS, stored certificate", agent, work / "agent-tls.state")
        finally:
            agent.stop()
        wait_until(active(client, 0), 30, "the server to lose the agent")
        return idle, stream_only(work, server.agent_address, "tls", settle, work / "agent-tls.state" / "identity")
    finally:
        client.close()
        server.stop()


def start_agent(work: Path, server: ServerProc, name: str, script: bool) -> Proc:
    """An agent with 2 slots, as tests start one (support.AgentProc), or through the console script."""
    if not script:
        return AgentProc(work, server, name, slots=2)
    argv = [str(Path(sys.executable).with_name("jobplane-agent")), "--server", server.address, "--name", name,
            "--slots", "2", "--state-dir", str(work / f"agent-{name}.state"), *server.agent_args()]
    return Proc(argv, work / f"agent-{name}.log")


def byte_compile() -> None:
    """Write the .pyc files of every jobplane package, as installing it does."""
    for package in ("jobplane", "jobplane.v1", "jobplane.agent", "jobplane.client", "jobplane.server"):
        compileall.compile_dir(Path(importlib.import_module(package).__file__).parent, quiet=1, maxlevels=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settle", type=float, default=3.0, metavar="SECONDS",
                        help="wait this long at each stage before reading (default: %(default)s)")
    parser.add_argument("--script", action="store_true",
                        help="run the agent as the jobplane-agent console script")
    parser.add_argument("--source", action="store_true",
                        help="do not byte-compile jobplane first (see above)")
    args = parser.parse_args()
    if not args.source:
        byte_compile()
    how = "jobplane-agent" if args.script else "python -m jobplane.agent"
    compiled = "from source" if args.source else "byte-compiled"
    print(f"{how} ({compiled}), 2 slots; VmRSS after {args.settle:g}s at each stage", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        idle, reference = plaintext(work, args.settle, args.script)
        tls, tls_reference = mutual_tls(work, args.settle, args.script)
    print(f"reference (gRPC, provider stubs, one Connect stream): {reference:.1f} MiB plaintext, "
          f"{tls_reference:.1f} MiB with TLS")
    verdict = "meets" if max(idle, tls) <= TARGET_IDLE_MIB else "misses"
    print(f"idle agent: {idle:.1f} MiB plaintext (+{idle - reference:.1f} over the reference), {tls:.1f} MiB "
          f"with TLS (+{tls - tls_reference:.1f}); {verdict} the target of <= {TARGET_IDLE_MIB:.0f} MiB "
          "(keeper and workers apart)")


if __name__ == "__main__":
    main()
