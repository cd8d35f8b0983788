"""The server's own ceiling: Python no-op tasks/s when the server has a core to itself and its
agents cost (almost) nothing. Issue 17's goal is >= 5,000/s "on a machine where the server has a
core to itself"; on a 2-core machine shared with real agents and their workers, end to end
(bench/throughput.py) measures the whole machine instead. Here:

- the server runs alone on CPU 0 (its affinity set before it starts: every thread inherits it);
- this process, pinned to the other CPU(s), plays K agents of S slots each over plain gRPC
  (the same Connect stream a jobplane agent speaks: Hello, Ready, heartbeats, TaskReports,
  acknowledgements read from Assignments): each assignment is answered at once with a STARTED
  and a FINISHED report (SUCCEEDED, `null` result, raw state `returned`, as a Python no-op's)
  in one message per Assignments message, as a real agent's outbox sends a fast task's; each
  says it holds 8 tasks per slot queued ahead (`--queue-ahead`'s default), as a jobplane agent
  of this release does (run from a checkout without queue-ahead, none: slots only);
- a job of N no-op tasks is submitted and waited for; the rate is from its submit to its end
  (server clock), everything committed as always (SQLite, synchronous=FULL).

    python bench/server_ceiling.py [--tasks 10000] [--agents 2] [--slots 8] [--rounds 2]

Prints per round tasks/s, the server's CPU per task and how busy its core was (CPU seconds over
elapsed: near 100% means the server is the limit), and this simulator's CPU per task. The
reference in the same run is the server's own: 1 / (CPU per task) is what its core could do if
it were never idle. The server is --insecure (plaintext, one identity for the simulated agents),
where bench/throughput.py's agents use mTLS: TLS costs the server a little per message.
Needs at least 2 CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc  # noqa: E402
from support import ServerProc, wait_until  # noqa: E402
from throughput import PY_NOOP, cpu_seconds, run_job  # noqa: E402

from jobplane.v1 import provider_pb2 as pb  # noqa: E402
from jobplane.v1 import provider_pb2_grpc  # noqa: E402

HEARTBEAT = 2.0
QUEUE_AHEAD_PER_SLOT = 8  # jobplane-agent's default --queue-ahead (a checkout without it: none)


class SimAgent:
    """One simulated agent: finishes every assignment at once, acknowledged reports forgotten."""

    def __init__(self, address: str, name: str, slots: int) -> None:
        self.address, self.name, self.slots = address, name, slots
        self.seq = 0
        self.outgoing: asyncio.Queue[pb.ConnectRequest] = asyncio.Queue()
        self.welcomed = asyncio.Event()

    async def run(self) -> None:
        async with grpc.aio.insecure_channel(self.address) as channel:
            call = provider_pb2_grpc.ProviderServiceStub(channel).Connect(self._requests())
            async for response in call:
                which = response.WhichOneof("message")
                if which == "welcome":
                    self.welcomed.set()
                elif which == "assign" and response.assign.assignments:
                    self._finish(response.assign.assignments)
                elif which == "probe":
                    reply = pb.ProbeReply(probe_id=response.probe.probe_id)
                    self.outgoing.put_nowait(pb.ConnectRequest(probe_reply=reply))

    def _finish(self, assignments) -> None:
        finished = pb.AttemptFinished(outcome=pb.ATTEMPT_OUTCOME_SUCCEEDED, result_json="null",
                                      raw={"state": "returned"})
        reports = []
        for a in assignments:
            reports.append(pb.TaskReport(task_id=a.task_id, attempt=a.attempt, started=pb.AttemptStarted()))
            reports.append(pb.TaskReport(task_id=a.task_id, attempt=a.attempt, finished=finished))
        self.seq += 1
        self.outgoing.put_nowait(pb.ConnectRequest(reports=pb.TaskReports(seq=self.seq, reports=reports)))

    async def _requests(self):
        facts = pb.ProviderFacts(hostname=self.name, os="linux", cpu_count=os.cpu_count() or 1,
                                 python_version="%d.%d.%d" % sys.version_info[:3])
        hello = pb.Hello(name=self.name, slots=self.slots, facts=facts, heartbeat_interval_seconds=HEARTBEAT,
                         acks_with_assignments=True)
        if "queue_ahead" in pb.Hello.DESCRIPTOR.fields_by_name:  # as a jobplane agent of this release
            hello.queue_ahead = QUEUE_AHEAD_PER_SLOT * self.slots
        yield pb.ConnectRequest(hello=hello)
        yield pb.ConnectRequest(ready=pb.Ready(free_slots=self.slots))
        beat = pb.ConnectRequest(heartbeat=pb.Heartbeat(free_slots=self.slots))
        while True:
            try:
                yield await asyncio.wait_for(self.outgoing.get(), HEARTBEAT / 2)
            except asyncio.TimeoutError:
                yield beat


def simulate(address: str, agents: int, slots: int) -> None:
    """Run `agents` simulated agents on this thread's own event loop until the server stops."""
    async def main() -> None:
        sims = [SimAgent(address, f"sim-{i}", slots) for i in range(agents)]
        await asyncio.gather(*(s.run() for s in sims))

    try:
        asyncio.run(main())
    except grpc.aio.AioRpcError:
        pass  # the server stopped: the bench is over


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("server_ceiling.py needs at least 2 CPUs: one for the server, one for the rest")
    server_cpu, rest = {cpus[0]}, set(cpus[1:])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.sched_setaffinity(0, server_cpu)  # the server inherits it, every thread of it
        try:
            server = ServerProc(work, f"sqlite:///{work / 'bench.db'}", insecure=True)
        finally:
            os.sched_setaffinity(0, rest)
        try:
            rounds(server, args, cpus)
        finally:
            server.stop()


def rounds(server: ServerProc, args: argparse.Namespace, cpus: list[int]) -> None:
    import threading

    sim = threading.Thread(target=simulate, args=(server.agent_address, args.agents, args.slots), daemon=True)
    sim.start()
    client = server.client()
    try:
        wait_until(lambda: sum(p.state == 1 for p in client.list_providers()) == args.agents, 30, "agents")
        run_job(client, "warm-up", PY_NOOP, 2 * args.agents * args.slots)
        print(f"server on CPU {cpus[0]} alone, {args.agents} simulated agents x {args.slots} slots on "
              f"CPU(s) {','.join(map(str, cpus[1:]))}; {args.tasks} Python no-ops per round (insecure, SQLite)")
        rates = []
        for i in range(args.rounds):
            me0 = cpu_seconds(os.getpid())
            run = run_job(client, f"ceiling-{i}", PY_NOOP, args.tasks, server.pid)
            me = cpu_seconds(os.getpid()) - me0
            rates.append(run.rate)
            print(f"round {i + 1}: {run.rate:,.0f} tasks/s; server {run.cpu_ms_per_task:.3f} ms CPU per task, "
                  f"its core {100 * run.cpu / run.seconds:.0f}% busy (1/CPU per task: "
                  f"{1000 / run.cpu_ms_per_task:,.0f}/s); simulator and client {1000 * me / run.tasks:.3f} ms "
                  f"per task", flush=True)
        print(f"median {statistics.median(rates):,.0f} tasks/s (goal: >= 5,000/s with a core to the server)")
    finally:
        client.close()


if __name__ == "__main__":
    main()
