"""Where a wave of Python no-ops spends its time: a server and K agents (as bench/throughput.py
starts them, plaintext) run one job of N no-ops with timestamps taken at each step
(bench/_wave_traced.py wraps their methods; nothing of jobplane changes), and this prints, for
the middle third of the job, the median time of each step of an agent's cycle (assignments read ->
calls sent to the worker -> replies -> report message taken -> read by the server -> its batch
handed to the writer -> committed -> answered -> the next assignments read by the agent), and
how busy the server's writer thread was: commits per second, operations per commit, each
commit's statements and COMMIT (wall and CPU ms on the writer thread: the difference is waiting,
for the disk's fsync or for the GIL), and how often a report message found a commit in flight.

    python bench/wave_trace.py [--tasks 6000] [--agents 2] [--slots 8] [--keep DIR]

The timestamps cost the processes some CPU: compare the steps, not the tasks/s with other benches.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import AgentProc, ServerProc, wait_until  # noqa: E402
from throughput import PY_NOOP, run_job  # noqa: E402

HERE = Path(__file__).resolve().parent

Event = tuple[float, str, list[str]]  # (monotonic seconds, event, fields)


@contextlib.contextmanager
def traced_python(work: Path) -> Iterator[None]:
    """While inside, sys.executable (which ServerProc and AgentProc start) runs _wave_traced.py."""
    shim = work / "python-traced"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} {HERE / "_wave_traced.py"} "$@"\n')
    shim.chmod(0o755)
    real, sys.executable = sys.executable, str(shim)
    try:
        yield
    finally:
        sys.executable = real


def read_traces(directory: Path) -> dict[int, list[Event]]:
    traces = {}
    for path in directory.glob("*.trace"):
        events = []
        for line in path.read_text().splitlines():
            at, what, *fields = line.split()
            events.append((float(at), what, fields))
        traces[int(path.stem)] = sorted(events)
    return traces


def ms(values: list[float]) -> str:
    return f"{1e3 * statistics.median(values):6.2f}" if values else "     -"


def _first(events: list[Event], what: str, since: float, match=lambda fields: True) -> float | None:
    return next((at for at, w, fields in events if w == what and at >= since and match(fields)), None)


def agent_cycles(agent: list[Event], server: list[Event], window: tuple[float, float]) -> dict[str, list[float]]:
    """The steps of each of the agent's cycles that began in `window`, in seconds."""
    start, end = window
    batch = next(((at, f) for at, w, f in agent if w == "ag_batch" and at >= start), None)
    if batch is None:
        return {}
    seq = batch[1][0]
    provider = next(f[0] for at, w, f in server if w == "sv_reports" and f[1] == seq and at >= batch[0])
    assigns = [at for at, w, _ in agent if w == "ag_assign" and start <= at <= end]
    steps: dict[str, list[float]] = defaultdict(list)
    for begin, following in zip(assigns, assigns[1:]):
        inside = [e for e in agent if begin <= e[0] < following]
        sends = [at for at, w, _ in inside if w == "ag_send"]
        replies = [at for at, w, _ in inside if w == "ag_reply"]
        fins = [at for at, w, _ in inside if w == "ag_fin"]
        batches = [(at, f[0]) for at, w, f in inside if w == "ag_batch"]
        if not (sends and replies and fins and batches):
            continue
        taken, seq = batches[-1]
        read = _first(server, "sv_reports", taken - 0.001, lambda f: f[0] == provider and f[1] == seq)
        commit = read and _first(server, "sv_commit", read)
        written = commit and _first(server, "sv_written", commit)
        finish = written and _first(server, "sv_finish", written)
        if not finish or finish > following:
            continue
        for name, value in (("assignments read -> first call sent", sends[0] - begin),
                            ("first call sent -> first reply", replies[0] - sends[0]),
                            ("first reply -> last FINISHED queued", fins[-1] - replies[0]),
                            ("last FINISHED -> report message taken", taken - fins[-1]),
                            ("report taken -> read by the server", read - taken),
                            ("read -> its batch to the writer", commit - read),
                            ("commit (writer thread)", written - commit),
                            ("committed -> answered, delivered", finish - written),
                            ("delivered -> assignments read", following - finish),
                            ("whole cycle", following - begin)):
            steps[name].append(value)
    return steps


def writer(server: list[Event], window: tuple[float, float]) -> list[str]:
    start, end = window
    events = [e for e in server if start <= e[0] <= end]
    commits, begun, ops = [], None, []
    for at, what, fields in events:
        if what == "sv_commit":
            begun = at
            ops.append(int(fields[0]))
        elif what == "sv_written" and begun is not None:
            commits.append((begun, at))
            begun = None
    if not commits:
        return ["no commits traced"]
    seconds = end - start
    busy = sum(b - a for a, b in commits) / seconds
    waits, arrivals = [], 0
    for at, what, _ in events:
        if what == "sv_reports":
            arrivals += 1
            waits += [b - at for a, b in commits if a <= at < b]
    split = [[float(x) for x in f] for _, w, f in events if w == "sv_write"]
    lines = [f"writer thread busy {busy:.0%}: {len(commits) / seconds:.0f} commits/s, "
             f"{statistics.mean(ops):.2f} operations each (a report message is one), "
             f"commit median {ms([b - a for a, b in commits]).strip()} ms",
             f"report messages that found a commit in flight: {len(waits) / max(arrivals, 1):.0%}, "
             f"waiting for its end {ms(waits).strip()} ms (median)"]
    if split:
        med = [statistics.median(column) for column in zip(*split)]
        lines.append(f"on the writer thread, per commit (median ms): statements {med[0]:.2f} wall / {med[1]:.2f} CPU, "
                     f"COMMIT {med[2]:.2f} wall / {med[3]:.2f} CPU")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=6000)
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--keep", default="", metavar="DIR", help="copy the raw traces (PID.trace) to DIR")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        traces = work / "traces"
        traces.mkdir()
        os.environ["JOBPLANE_WAVE_TRACE"] = str(traces)
        with traced_python(work):
            server = ServerProc(work, f"sqlite:///{work / 'bench.db'}")
            agents = [AgentProc(work, server, f"wave-{i}", slots=a.slots) for i in range(a.agents)]
        client = server.client()
        try:
            wait_until(lambda: sum(p.state == 1 for p in client.list_providers()) == a.agents, 30, "agents")
            run_job(client, "warm-up", PY_NOOP, 2 * a.agents * a.slots)
            begun = time.monotonic()
            run = run_job(client, "py-noop", PY_NOOP, a.tasks, server.pid)
            ended = time.monotonic()
        finally:
            client.close()
            for proc in agents:
                proc.stop()
            server.stop()
        by_pid = read_traces(traces)
        if a.keep:
            shutil.copytree(traces, a.keep, dirs_exist_ok=True)
    third = (ended - begun) / 3
    window = (begun + third, ended - third)
    print(f"server + {a.agents} agents x {a.slots} slots, {a.tasks} no-ops: {run.rate:.0f} tasks/s "
          f"(traced), cores {run.busy:.0%} busy; the middle third of the job:")
    server_events = by_pid.pop(server.pid, [])
    for line in writer(server_events, window):
        print("  " + line)
    per_agent = [agent_cycles(by_pid[proc.pid], server_events, window) for proc in agents if proc.pid in by_pid]
    print("  an agent's cycle, median ms per step" + "".join(f"  | {proc.name}" for proc in agents))
    for name in (per_agent[0] if per_agent else {}):
        print(f"    {name:40s}" + "".join(f"  {ms(steps.get(name, []))}" for steps in per_agent))


if __name__ == "__main__":
    main()
