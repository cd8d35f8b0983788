"""The server's own cost per task: its CPU time per task, its group commits and events per task
(from its /metrics), and tasks/s, for one job of N Python no-ops and one of N `/bin/true`
commands, on a local server (SQLite, synchronous=FULL) with K agents.

    python bench/server_cpu.py [--tasks 3000] [--agents 2] [--slots 8] [--rounds 1]
    python bench/server_cpu.py --tree /work/main --tree . --rounds 3

With --tree (repeated), each round runs once with each tree's code (its .venv's Python), in
turn, so trees are compared in the same run, alternating: the machine's other load then sways
all of them alike. Prints one line per tree per round, and each tree's median at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import PY_NOOP, local_cluster, run_job  # noqa: E402

HERE = Path(__file__).resolve().parent.parent
KINDS = {"noop": PY_NOOP, "true": {"command": ["/bin/true"]}}


def counters(url: str) -> dict[str, float]:
    """The commit count and events from the server's /metrics."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    found = {}
    for line in text.splitlines():
        for name, key in (("jobplane_commit_seconds_count", "commits"), ("jobplane_events_total", "events")):
            if line.startswith(name + " ") or line.startswith(name + "{"):
                found[key] = float(line.rsplit(" ", 1)[1])
    return found


def loop_cpu(pid: int) -> float:
    """CPU seconds of process `pid`'s main thread (the server's event loop) so far."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(tasks: int, agents: int, slots: int) -> dict[str, dict[str, float]]:
    """One round with this interpreter's code: per kind, server CPU ms/task, tasks/s, commits and
    events per task."""
    out = {}
    with local_cluster(agents, slots, ["--http", "127.0.0.1:0"]) as (client, pid):
        url = "http://" + next(Path(p).read_text().strip() for p in _http_addr_files(pid))
        for kind, task in KINDS.items():
            before, loop0 = counters(url), loop_cpu(pid)
            run = run_job(client, kind, task, tasks, pid)
            after, loop1 = counters(url), loop_cpu(pid)
            out[kind] = {"cpu_ms": run.cpu_ms_per_task, "rate": run.rate,
                         "commits": (after["commits"] - before["commits"]) / tasks,
                         "events": (after["events"] - before["events"]) / tasks,
                         "loop_ms": 1000 * (loop1 - loop0) / tasks}
    return out


def _http_addr_files(pid: int) -> list[Path]:
    """The server's http.addr (its --data-dir is under the cluster's temporary directory)."""
    cwd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    data = Path(cwd[cwd.index(b"--data-dir") + 1].decode())
    return [data / "http.addr"]


def line(name: str, r: dict[str, dict[str, float]]) -> str:
    return "  ".join(f"{k}: {v['cpu_ms']:.3f} ms/task (loop {v['loop_ms']:.3f}) {v['rate']:6.0f}/s {v['commits']:.3f} commits "
                     f"{v['events']:.2f} events" for k, v in r.items()) + f"  [{name}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=3000)
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--tree", action="append", default=[], help="a worktree with a .venv (repeat to alternate)")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one round, as JSON (for --tree)
    a = p.parse_args()
    if a.json:
        print(json.dumps(one(a.tasks, a.agents, a.slots)))
        return
    trees = a.tree or [str(HERE)]
    print(f"{a.agents} agents x {a.slots} slots, {a.tasks} tasks per job, {a.rounds} rounds, trees: {trees}")
    results: dict[str, list] = {t: [] for t in trees}
    for _ in range(a.rounds):
        for tree in trees:
            python = Path(tree) / ".venv" / "bin" / "python"
            got = subprocess.run([str(python), __file__, "--json", "--tasks", str(a.tasks), "--agents",
                                  str(a.agents), "--slots", str(a.slots)], check=True, capture_output=True,
                                 text=True, cwd=tree)
            r = json.loads(got.stdout.strip().splitlines()[-1])
            results[tree].append(r)
            print(line(tree, r), flush=True)
    print("median:")
    for tree, rs in results.items():
        print(line(tree, {k: {m: statistics.median(r[k][m] for r in rs) for m in rs[0][k]} for k in KINDS}))


if __name__ == "__main__":
    main()
