"""End-to-end task throughput: a server and K agents on this machine run one job of N
no-op tasks; prints tasks/s from submit to the last result committed (server clock),
for Python-callable no-ops and for `/bin/true` commands, next to this machine's raw
spawn rate of `/bin/true`. Every state change is committed (SQLite, synchronous=FULL).

    python bench/throughput.py [--tasks 5000] [--agents 2] [--slots 8]
    python bench/throughput.py --server HOST:PORT [--tasks 5000]

With --server, the jobs go to a server already running (with its agents connected; credentials
as for the CLI: $JOBPLANE_TOKEN/$JOBPLANE_CA or $JOBPLANE_INSECURE=1, or the local `jobplane up`),
e.g. one started under a profiler or on another machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import AgentProc, ServerProc, wait_until  # noqa: E402

from jobplane.client import Client  # noqa: E402


def raw_spawn_rate(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(["/bin/true"], check=True)
    return n / (time.perf_counter() - start)


def run_job(client: Client, name: str, task: dict, n: int) -> tuple[float, float]:
    job = client.submit_job({"name": name, "tasks": [dict(task, name=f"t{i}") for i in range(n)]})
    done = client.wait_job(job.id, timeout=3600)
    assert done.counts.success == n, done
    elapsed = done.end_time.ToNanoseconds() / 1e9 - done.submit_time.ToNanoseconds() / 1e9
    return elapsed, n / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=5000)
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--server", default="", help="an existing server (HOST:PORT) instead of one started here")
    a = p.parse_args()
    if a.server:
        with Client.connect(a.server) as client:
            active = sum(p.state == 1 for p in client.list_providers())
            print(f"server {a.server} with {active} active providers, {a.tasks} tasks per job")
            measure(client, a.tasks)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = ServerProc(work, f"sqlite:///{work / 'bench.db'}")
        agents = [AgentProc(work, server, f"bench-{i}", slots=a.slots) for i in range(a.agents)]
        client = server.client()
        try:
            wait_until(lambda: sum(p.state == 1 for p in client.list_providers()) == a.agents, 30, "agents")
            print(f"server + {a.agents} agents x {a.slots} slots, {a.tasks} tasks per job, SQLite synchronous=FULL")
            measure(client, a.tasks)
        finally:
            client.close()
            for agent in agents:
                agent.stop()
            server.stop()


def measure(client: Client, tasks: int) -> None:
    secs, rate = run_job(client, "py-noop", {"python": "jobplane.examples.funcs:noop"}, tasks)
    print(f"python no-op tasks : {rate:8.0f} tasks/s  ({secs:.2f}s)   target >= 5000 on a core of its own")
    secs, cmd_rate = run_job(client, "true", {"command": ["/bin/true"]}, tasks)
    spawn = raw_spawn_rate(min(tasks, 2000))
    print(f"/bin/true tasks    : {cmd_rate:8.0f} tasks/s  ({secs:.2f}s)")
    print(f"raw /bin/true spawn: {spawn:8.0f} /s  -> commands reach {100 * cmd_rate / spawn:.0f}% (target >= 70%)")


if __name__ == "__main__":
    main()
