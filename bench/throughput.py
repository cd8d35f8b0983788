"""End-to-end task throughput: a server and K agents on this machine run one job of N
no-op tasks; prints tasks/s from submit to the last result committed (server clock),
for Python-callable no-ops and for `/bin/true` commands, next to this machine's raw
spawn rate of `/bin/true`, the server's CPU time per task (from /proc/PID/stat: less swayed
by the machine's other load than tasks/s) and how busy the machine's cores were meanwhile
(from /proc/stat: well under 100% on an otherwise idle machine means the tasks wait on round
trips, not on CPU). Every state change is committed (SQLite, synchronous=FULL).

    python bench/throughput.py [--tasks 5000] [--agents 2] [--slots 8] [--python-only]
    python bench/throughput.py --server HOST:PORT [--server-pid PID] [--tasks 5000]

With --server, the jobs go to a server already running (with its agents connected; credentials
as for the CLI: $JOBPLANE_TOKEN/$JOBPLANE_CA or $JOBPLANE_INSECURE=1, or the local `jobplane up`),
e.g. one started under a profiler or on another machine; --server-pid (a local server) adds its
CPU time per 1,000 tasks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import AgentProc, ServerProc, wait_until  # noqa: E402

from jobplane.client import Client  # noqa: E402

PY_NOOP = {"python": "jobplane.examples.funcs:noop"}


@dataclass(frozen=True)
class Run:
    """One job of `tasks` no-ops: seconds from submit to its end (server clock), the server's
    CPU seconds meanwhile (0 when its pid is unknown) and the share of the machine's CPU time
    anything used meanwhile (0 to 1, all cores)."""

    tasks: int
    seconds: float
    cpu: float
    busy: float = 0.0

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    @property
    def cpu_ms_per_task(self) -> float:
        return 1000 * self.cpu / self.tasks


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (0 for pid 0)."""
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, all) CPU ticks of every core so far, from /proc/stat (idle and iowait are not busy)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def raw_spawn_rate(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(["/bin/true"], check=True)
    return n / (time.perf_counter() - start)


def run_job(client: Client, name: str, task: dict, n: int, server_pid: int = 0) -> Run:
    """Submit one job of `n` copies of `task`, wait for it; all must succeed."""
    cpu0, (busy0, all0) = cpu_seconds(server_pid), machine_ticks()
    job = client.submit_job({"name": name, "tasks": [dict(task, name=f"t{i}") for i in range(n)]})
    done = client.wait_job(job.id, timeout=3600)
    cpu, (busy1, all1) = cpu_seconds(server_pid) - cpu0, machine_ticks()
    assert done.counts.success == n, done
    elapsed = done.end_time.ToNanoseconds() / 1e9 - done.submit_time.ToNanoseconds() / 1e9
    return Run(n, elapsed, cpu, (busy1 - busy0) / max(1, all1 - all0))


@contextlib.contextmanager
def local_cluster(agents: int, slots: int, extra: list[str] = ()) -> Iterator[tuple[Client, int]]:
    """A server on a fresh SQLite file and `agents` agents of `slots` slots, all ready:
    (a client, the server's pid); everything stops on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = ServerProc(work, f"sqlite:///{work / 'bench.db'}", extra=list(extra))
        procs = [AgentProc(work, server, f"bench-{i}", slots=slots) for i in range(agents)]
        client = server.client()
        try:
            wait_until(lambda: sum(p.state == 1 for p in client.list_providers()) == agents, 30, "agents")
            run_job(client, "warm-up", PY_NOOP, 2 * agents * slots)  # start the agents' Python pools
            yield client, server.pid
        finally:
            client.close()
            for agent in procs:
                agent.stop()
            server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=5000)
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--python-only", action="store_true", help="skip the /bin/true job")
    p.add_argument("--server", default="", help="an existing server (HOST:PORT) instead of one started here")
    p.add_argument("--server-pid", type=int, default=0, help="with --server: its pid, for its CPU time")
    a = p.parse_args()
    if a.server:
        with Client.connect(a.server) as client:
            active = sum(p.state == 1 for p in client.list_providers())
            print(f"server {a.server} with {active} active providers, {a.tasks} tasks per job")
            measure(client, a.tasks, a.server_pid, a.python_only)
        return
    with local_cluster(a.agents, a.slots) as (client, pid):
        print(f"server + {a.agents} agents x {a.slots} slots, {a.tasks} tasks per job, SQLite synchronous=FULL")
        measure(client, a.tasks, pid, a.python_only)


def describe(run: Run) -> str:
    cpu = f", server CPU {run.cpu_ms_per_task:.2f} ms/task" if run.cpu else ""
    return f"{run.rate:8.0f} tasks/s  ({run.seconds:.2f}s{cpu}, cores {100 * run.busy:.0f}% busy)"


def measure(client: Client, tasks: int, server_pid: int = 0, python_only: bool = False) -> None:
    run = run_job(client, "py-noop", PY_NOOP, tasks, server_pid)
    print(f"python no-op tasks : {describe(run)}   target >= 5000 on a core of its own")
    if python_only:
        return
    run = run_job(client, "true", {"command": ["/bin/true"]}, tasks, server_pid)
    spawn = raw_spawn_rate(min(tasks, 2000))
    print(f"/bin/true tasks    : {describe(run)}")
    print(f"raw /bin/true spawn: {spawn:8.0f} /s  -> commands reach {100 * run.rate / spawn:.0f}% (target >= 70%)")


if __name__ == "__main__":
    main()
