"""The server's CPU per task against how long tasks run: jobs of Python no-ops, of Python
sleeps of 3 and 6 ms (time:sleep, what /bin/true's spawn takes on a loaded machine) and of
`/bin/true` commands, in turn on one cluster (a server and K agents), so that what a command
costs the server more than a no-op can be told apart from what any slower task costs it.

    python bench/server_pace.py [--tasks 2000] [--agents 1] [--slots 8] [--rounds 2]

Prints, per kind, the server's CPU ms per task (all its threads, from /proc) and tasks/s. A
sleeping Python task reports exactly what a no-op does (the same raw properties, events and
messages), so a sleep's cost above a no-op's is the pace alone; a command's above a sleep's of
the same rate is what being a command costs the server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import PY_NOOP, local_cluster, run_job  # noqa: E402

KINDS = {"noop": PY_NOOP,
         "sleep 3ms": {"python": "time:sleep", "args": [0.003]},
         "sleep 6ms": {"python": "time:sleep", "args": [0.006]},
         "/bin/true": {"command": ["/bin/true"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=1)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    a = parser.parse_args()
    seen: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    print(f"{a.agents} agents x {a.slots} slots, jobs of {a.tasks} tasks; server CPU ms per task, tasks/s")
    with local_cluster(a.agents, a.slots) as (client, pid):
        for _ in range(a.rounds):
            line = []
            for kind, task in KINDS.items():
                run = run_job(client, kind, task, a.tasks, pid)
                seen[kind].append((run.cpu_ms_per_task, run.rate))
                line.append(f"{kind}: {run.cpu_ms_per_task:.3f} ms {run.rate:5.0f}/s")
            print("  ".join(line), flush=True)
    print("median: " + "  ".join(f"{kind}: {statistics.median(c for c, _ in runs):.3f} ms "
                                 f"{statistics.median(r for _, r in runs):5.0f}/s" for kind, runs in seen.items()))


if __name__ == "__main__":
    main()
