"""Failover timing: K agents run N long tasks; one agent is killed with SIGKILL (and, in
a second run, frozen with SIGSTOP). Prints the time from the signal to the first and the
last of its tasks running again on another provider, with default server settings.

    python bench/failover.py [--agents 3] [--tasks 12]

Targets: kill -> first task running elsewhere <= 1.5 s; silent agent -> <= 2 x the
promised heartbeat + the probe deadline + 0.5 s (1 s, 1 s: <= 3.5 s).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import AgentProc, ServerProc, wait_until  # noqa: E402

from jobplane.client import Client  # noqa: E402


def run(sig: int, agents: int, tasks: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pids = work / "pids"
        pids.mkdir()
        server = ServerProc(work, f"sqlite:///{work / 'bench.db'}")
        procs = [AgentProc(work, server.address, f"a{i}", slots=tasks) for i in range(agents)]
        client = Client.connect(server.address)
        try:
            wait_until(lambda: sum(p.state == 1 for p in client.list_providers()) == agents, 30, "agents")
            script = f'echo $$ > {pids}/$JOBPLANE_TASK_ID.$JOBPLANE_ATTEMPT; if [ "$JOBPLANE_ATTEMPT" = 1 ]; then sleep 600; fi'
            job = client.submit_job({"name": "failover", "tasks": [
                {"name": f"t{i}", "command": ["sh", "-c", script]} for i in range(tasks)]})
            wait_until(lambda: client.get_job(job.id).counts.running == tasks, 60, "all tasks running")
            victim = max(procs, key=lambda a: sum(t.provider_id == a.name for t in client.list_tasks(job.id)))
            moved = {t.id for t in client.list_tasks(job.id) if t.provider_id == victim.name}
            count = len(moved)
            restarts: list[float] = []
            watcher = threading.Thread(target=_watch, args=(client, job.id, moved, restarts), daemon=True)
            watcher.start()
            time.sleep(0.5)  # let the watcher reach the live tail before the failure
            t0 = time.time()
            os.kill(victim.pid, sig)
            watcher.join(120)
            name = {signal.SIGKILL: "kill -9", signal.SIGSTOP: "SIGSTOP"}[sig]
            print(f"{name:8} {victim.name} ({count} tasks): first running elsewhere after "
                  f"{restarts[0] - t0:.2f}s, last after {restarts[-1] - t0:.2f}s")
        finally:
            if sig == signal.SIGSTOP:
                victim.signal(signal.SIGCONT)
            client.close()
            for agent in procs:
                agent.stop()
            server.stop()
            for f in pids.iterdir():
                try:
                    os.killpg(int(f.read_text()), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass


def _watch(client: Client, job_id: str, moved: set[str], restarts: list[float]) -> None:
    for event in client.watch(job_id):
        if event.task_id in moved and event.raw_status == "RUNNING" and event.attempt > 1:
            restarts.append(event.time.ToNanoseconds() / 1e9)
            moved.discard(event.task_id)
            if not moved:
                return


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--tasks", type=int, default=12)
    a = p.parse_args()
    run(signal.SIGKILL, a.agents, a.tasks)
    run(signal.SIGSTOP, a.agents, a.tasks)


if __name__ == "__main__":
    main()
