"""Failover timing: K agents run N long tasks; one agent is killed with SIGKILL (and, in
a second run, frozen with SIGSTOP). Prints the time from the signal to the first and the
last of its tasks running again on another provider, with default server settings.

A third run kills a provider running --order-tasks one-task jobs with shuffled continuation
priorities, while the two receivers have half as many slots as there are tasks (each
continued task ends at once): it prints the time to the first and the last continuation
dispatched, and whether the dispatch order was exactly the priority order. Its server takes
submits faster than the default --submit-rate (50/s per identity), so that all the jobs go
in at once.

    python bench/failover.py [--agents 3] [--tasks 12] [--order-tasks 200]

Targets (no earlier: the old attempt must certainly be dead first, see fences.py): kill ->
first task running elsewhere <= the reconnect grace + the agent's kill deadline + 0.5 s
(1 s, 1 s: <= 2.5 s); silent agent -> <= 3 x the promised heartbeat + the grace + the kill
deadline + 0.5 s after its last signal (1 s, 1 s, 1 s: <= 5.5 s).
"""

from __future__ import annotations

import argparse
import os
import random
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
        procs = [AgentProc(work, server, f"a{i}", slots=tasks) for i in range(agents)]
        client = server.client()
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
            _kill_groups(pids)


def run_order(tasks: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pids = work / "pids"
        pids.mkdir()
        server = ServerProc(work, f"sqlite:///{work / 'bench.db'}", extra=["--submit-rate", str(max(50, tasks))])
        victim = AgentProc(work, server, "victim", slots=tasks)
        receivers: list[AgentProc] = []
        client = server.client()
        try:
            wait_until(lambda: [p.state for p in client.list_providers()] == [1], 30, "the agent")
            script = f'echo $$ > {pids}/$JOBPLANE_TASK_ID.$JOBPLANE_ATTEMPT; if [ "$JOBPLANE_ATTEMPT" = 1 ]; then sleep 600; fi'
            priorities = random.sample(range(tasks), tasks)
            jobs = {client.submit_job({"name": f"p{p}", "continuation_priority": p, "tasks": [
                {"name": "t", "command": ["sh", "-c", script]}]}).id: p for p in priorities}
            wait_until(lambda: client.get_provider("victim").slots_in_use == tasks, 60, "all tasks running")
            receivers = [AgentProc(work, server, f"r{i}", slots=max(1, tasks // 4)) for i in range(2)]
            wait_until(lambda: sum(p.state == 1 for p in client.list_providers()) == 3, 30, "receivers")
            dispatched: list[tuple[float, int]] = []
            watcher = threading.Thread(target=_watch_continuations, args=(client, jobs, dispatched), daemon=True)
            watcher.start()
            time.sleep(0.5)
            t0 = time.time()
            victim.kill()
            watcher.join(120)
            order = [p for _, p in dispatched]
            in_order = order == sorted(jobs.values())
            if not in_order:
                bad = next(i for i, (a, b) in enumerate(zip(order, sorted(jobs.values()))) if a != b)
                print(len(order), bad, order[max(0, bad - 3):bad + 5])
            print(f"kill -9 with {tasks} tasks, {2 * max(1, tasks // 4)} free slots: first continuation dispatched "
                  f"after {dispatched[0][0] - t0:.2f}s, last after {dispatched[-1][0] - t0:.2f}s; "
                  f"dispatch order {'matched' if in_order else 'DID NOT match'} priority order")
        finally:
            client.close()
            for agent in (victim, *receivers):
                agent.stop()
            server.stop()
            _kill_groups(pids)


def _watch_continuations(client: Client, jobs: dict[str, int], out: list[tuple[float, int]]) -> None:
    for event in client.watch_continuations():
        if event.task_id and event.job_id in jobs:
            out.append((event.time.ToNanoseconds() / 1e9, jobs[event.job_id]))
            if len(out) == len(jobs):
                return


def _kill_groups(pids: Path) -> None:
    """Kill the orphaned first attempts: each task's process group (led by its wrapper)."""
    for f in pids.iterdir():
        try:
            os.killpg(os.getpgid(int(f.read_text())), signal.SIGKILL)
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
    p.add_argument("--order-tasks", type=int, default=200)
    a = p.parse_args()
    run(signal.SIGKILL, a.agents, a.tasks)
    run(signal.SIGSTOP, a.agents, a.tasks)
    run_order(a.order_tasks)


if __name__ == "__main__":
    main()
