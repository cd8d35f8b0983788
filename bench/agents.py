"""Many connected agents on one server: simulated agents (hello, ready, heartbeats, probe
replies; no tasks) ramp up in steps; after each step has run for a while, prints the server's
RSS, the heartbeat handling time (p50/p99 from the server's own histogram over the step), the
providers ACTIVE against those connected, and the false failovers (providers the server took
for SUSPECT or LOST although every simulated agent kept its heartbeats).

    python bench/agents.py [--steps 1000,5000,10000,20000] [--heartbeat 2] [--hold 30]

The simulated agents run in --procs processes of their own (each an asyncio loop holding its
share of the streams over a few HTTP/2 connections), so their cost is not the server's; on a
2-core machine they compete with the server for the cores, which makes the figures
pessimistic. The server is insecure (no TLS: one identity for every agent, so --max-streams is raised), on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sqlite3
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import ServerProc, wait_until  # noqa: E402
from support_http import HTTP, http_address  # noqa: E402

STREAMS_PER_CHANNEL = 100  # HTTP/2 connections carry this many agent streams each


def simulate(address: str, first: int, count: int, heartbeat: float, ramp: float, stop) -> None:
    """A process holding `count` simulated agents (named sim-FIRST..) until `stop` is set."""
    asyncio.run(_simulate(address, first, count, heartbeat, ramp, stop))


async def _simulate(address: str, first: int, count: int, heartbeat: float, ramp: float, stop) -> None:
    import grpc

    from jobplane.v1 import provider_pb2_grpc

    channels = [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range((count + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL)]
    agents = []
    for i in range(count):
        stub = provider_pb2_grpc.ProviderServiceStub(channels[i // STREAMS_PER_CHANNEL])
        agents.append(asyncio.create_task(_agent(stub, f"sim-{first + i}", heartbeat)))
        await asyncio.sleep(ramp / count)
    while not stop.is_set():
        await asyncio.sleep(0.2)
    for a in agents:
        a.cancel()
    for c in channels:
        await c.close()


async def _agent(stub, name: str, heartbeat: float) -> None:
    from jobplane.v1 import provider_pb2

    outgoing: asyncio.Queue = asyncio.Queue()
    hello = provider_pb2.Hello(name=name, slots=1, heartbeat_interval_seconds=heartbeat,
                               facts=provider_pb2.ProviderFacts(hostname=name))
    await outgoing.put(provider_pb2.ConnectRequest(hello=hello))
    await outgoing.put(provider_pb2.ConnectRequest(ready=provider_pb2.Ready(free_slots=1)))

    async def requests():
        while True:
            yield await outgoing.get()

    async def beat():
        await asyncio.sleep(random.uniform(0, heartbeat))
        while True:
            await outgoing.put(provider_pb2.ConnectRequest(heartbeat=provider_pb2.Heartbeat(free_slots=1)))
            await asyncio.sleep(heartbeat)

    beats = asyncio.create_task(beat())
    try:
        async for response in stub.Connect(requests()):
            if response.WhichOneof("message") == "probe":
                await outgoing.put(provider_pb2.ConnectRequest(
                    probe_reply=provider_pb2.ProbeReply(probe_id=response.probe.probe_id)))
    except Exception as exc:  # noqa: BLE001 - a bench: say it and go on
        print(f"  {name}: stream ended: {exc!r:.120}", flush=True)
    finally:
        beats.cancel()


def scrape(url: str) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    body = urllib.request.urlopen(f"{url}/metrics", timeout=60).read().decode()
    samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[(s.name, *sorted(s.labels.items()))] = s.value
    return samples


def quantile(before: dict, after: dict, q: float) -> str:
    """The upper bound of the bucket holding quantile q of the heartbeats handled in between."""
    name = "jobplane_heartbeat_handling_seconds_bucket"
    bounds = sorted((float(k[1][1]) if k[1][1] != "+Inf" else float("inf"), v - before.get(k, 0.0))
                    for k, v in after.items() if k[0] == name)
    total = bounds[-1][1] if bounds else 0
    if not total:
        return "-"
    for bound, cumulative in bounds:
        if cumulative >= q * total:
            return f"<= {bound * 1000:.0f} ms" if bound != float("inf") else "> 5 s"
    return "?"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def false_failovers(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COUNT(*) FROM event WHERE provider != '' AND raw_status IN "
                            "('SUSPECT', 'LOST')").fetchone()[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", default="1000,5000,10000,20000", help="agents connected at each step")
    p.add_argument("--heartbeat", type=float, default=2.0, help="the agents' heartbeat interval, seconds")
    p.add_argument("--hold", type=float, default=30.0, help="seconds each step runs before it is measured")
    p.add_argument("--procs", type=int, default=4, help="processes the simulated agents run in")
    a = p.parse_args()
    steps = [int(s) for s in a.steps.split(",")]
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "bench.db"
        server = ServerProc(work, f"sqlite:///{db}", insecure=True, extra=[*HTTP, "--reconnect-grace", "10",
                                                                     "--max-streams", "100000"])
        url = f"http://{http_address(server)}"
        client = server.client()
        procs, connected = [], 0
        print(f"server {server.pid}, SQLite; heartbeats every {a.heartbeat:g} s; each step held {a.hold:g} s")
        print(f"{'agents':>7} {'ACTIVE':>7} {'RSS MiB':>8} {'heartbeat p50':>14} {'p99':>10} {'false failovers':>16}")
        try:
            for target in steps:
                add = target - connected
                per = [add // a.procs + (1 if i < add % a.procs else 0) for i in range(a.procs)]
                for n in per:
                    if n:
                        proc = ctx.Process(target=simulate, args=(server.agent_address, connected, n, a.heartbeat,
                                                                  max(2.0, n / 500), stop), daemon=True)
                        proc.start()
                        procs.append(proc)
                        connected += n

                def all_active():
                    return sum(pr.state == 1 for pr in client.list_providers()) >= target
                try:
                    wait_until(all_active, 120 + target / 50, f"{target} providers ACTIVE")
                except AssertionError as exc:
                    print(f"  not all ACTIVE: {exc}")
                before = scrape(url)
                time.sleep(a.hold)
                after = scrape(url)
                active = sum(pr.state == 1 for pr in client.list_providers())
                print(f"{target:>7} {active:>7} {rss_mib(server.pid):>8.0f} {quantile(before, after, 0.5):>14} "
                      f"{quantile(before, after, 0.99):>10} {false_failovers(db):>16}", flush=True)
        finally:
            stop.set()
            for proc in procs:
                proc.join(10)
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
