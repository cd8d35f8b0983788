"""Agent-side cost per Python no-op task, end to end: a server and K agents (mutual TLS, as
`jobplane up` runs them) run jobs of N `jobplane.examples.funcs:noop` tasks; prints, per task,
the CPU time of the agents (their own process), of their Python workers and of the server, from
/proc/PID/stat (less swayed by the machine's other load than tasks/s), and the Connect messages
per task each way with how many reports / assignments one message carried (the agents run
under bench/_counted_agent.py, which counts what their stream writes and reads).

    python bench/agent_python.py [--tasks 3000] [--agents 2] [--slots 8] [--rounds 1]

To compare two checkouts, run each one's copy in turn, alternately, in the same period.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import AgentProc, ServerProc, wait_until  # noqa: E402
from throughput import PY_NOOP, cpu_seconds, run_job  # noqa: E402

HERE = Path(__file__).resolve().parent
_TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> float:
    """throughput.cpu_seconds, and 0 for a process that is gone (a worker that exited)."""
    try:
        return cpu_seconds(pid)
    except FileNotFoundError:
        return 0.0


def workers(agent_pid: int) -> list[int]:
    """The agent's Python workers: its children running pyworker."""
    out = []
    for task in Path(f"/proc/{agent_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                if b"pyworker" in Path(f"/proc/{child}/cmdline").read_bytes():
                    out.append(int(child))
            except FileNotFoundError:
                pass
    return out


def threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of `pid`, by thread name (the event loop's thread is the
    process's name; gRPC's are named by gRPC), summed over threads of one name."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:
            continue
        name = "loop" if task.name == str(pid) else stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    return out


def _user_sys(pid: int) -> tuple[float, float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0, 0.0
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def counts(paths: list[Path]) -> dict[str, int]:
    total: dict[str, int] = {}
    for path in paths:
        for key, value in json.loads(path.read_text()).items():
            total[key] = total.get(key, 0) + value
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = ServerProc(work, f"sqlite:///{work / 'bench.db'}")
        files = [work / f"counts-{i}.json" for i in range(args.agents)]
        agents = []
        for i, file in enumerate(files):
            agent = AgentProc(work, server, f"py-{i}", slots=args.slots, env={"JOBPLANE_BENCH_COUNTS": str(file)})
            agents.append(agent)
        for agent in agents:  # the same argv, run through the counting wrapper
            agent.p.kill()
            agent.p.wait()
        agents = [_counted(work, server, agent, file) for agent, file in zip(agents, files)]
        client = server.client()
        try:
            wait_until(lambda: sum(p.state == 1 for p in client.list_providers()) == args.agents, 60, "the agents")
            run_job(client, "py-noop", PY_NOOP, 4 * args.agents * args.slots)  # warm up: the pools start
            print(f"server + {args.agents} agents x {args.slots} slots (mutual TLS), jobs of {args.tasks} "
                  "Python no-op tasks; CPU ms per task", flush=True)
            for _ in range(args.rounds):
                _round(client, server, agents, files, args.tasks, work / "bench.db")
        finally:
            client.close()
            for agent in agents:
                agent.stop()
            server.stop()


def _counted(work: Path, server: ServerProc, agent: AgentProc, file: Path):
    from support import Proc

    argv = [sys.executable, str(HERE / "_counted_agent.py"), *agent.argv[3:]]
    return Proc(argv, work / f"counted-{agent.name}.log", {"JOBPLANE_BENCH_COUNTS": str(file)})


def _events(db: Path) -> int:
    """Events the server has committed (read from its SQLite file, as a reader would)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COUNT(*) FROM event").fetchone()[0]


def _round(client, server, agents, files, n: int, db: Path) -> None:
    pools = [workers(agent.pid) for agent in agents]
    time.sleep(2.5)
    before = counts(files)
    cpu0 = {"agents": sum(cpu(a.pid) for a in agents), "workers": sum(cpu(w) for p in pools for w in p),
            "server": cpu(server.pid)}
    events0 = _events(db)
    threads0 = [threads_cpu(a.pid) for a in agents]
    split0 = [_user_sys(a.pid) for a in agents] + [_user_sys(w) for p in pools for w in p]
    seconds = run_job(client, "py-noop", PY_NOOP, n).seconds
    threads1 = [threads_cpu(a.pid) for a in agents]
    split1 = [_user_sys(a.pid) for a in agents] + [_user_sys(w) for p in pools for w in p]
    k = len(agents)
    au = sum(b[0] - a[0] for a, b in zip(split0[:k], split1[:k])) * 1000 / n
    asy = sum(b[1] - a[1] for a, b in zip(split0[:k], split1[:k])) * 1000 / n
    wu = sum(b[0] - a[0] for a, b in zip(split0[k:], split1[k:])) * 1000 / n
    wsy = sum(b[1] - a[1] for a, b in zip(split0[k:], split1[k:])) * 1000 / n
    print(f"  user/sys ms per task: agent {au:.3f}/{asy:.3f} workers {wu:.3f}/{wsy:.3f}")
    cpu1 = {"agents": sum(cpu(a.pid) for a in agents), "workers": sum(cpu(w) for p in pools for w in p),
            "server": cpu(server.pid)}
    time.sleep(2.5)
    after = counts(files)
    events = (_events(db) - events0) / n
    per = {k: (cpu1[k] - cpu0[k]) * 1000 / n for k in cpu0}
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    sent = sum(v for k, v in diff.items() if k.startswith("sent.") and k.count(".") == 1)
    received = sum(v for k, v in diff.items() if k.startswith("received.") and k.count(".") == 1)
    reports, report_msgs = diff.get("sent.reports.items", 0), diff.get("sent.reports", 0)
    assigns, assign_msgs = diff.get("received.assign.items", 0), diff.get("received.assign", 0)
    print(f"agent {per['agents']:.3f}  workers {per['workers']:.3f}  server {per['server']:.3f}  "
          f"{n / seconds:.0f} tasks/s | messages per task: agent->server {sent / n:.3f}, "
          f"server->agent {received / n:.3f}; reports per message {reports / max(report_msgs, 1):.1f}, "
          f"assignments per message {assigns / max(assign_msgs, 1):.1f}, acks {diff.get('received.ack', 0)}; "
          f"STARTED sent with its FINISHED {diff.get('sent.reports.started_with_end', 0) / max(diff.get('sent.reports.started', 0), 1):.0%}; "
          f"server events per task {events:.2f}; agent loop wake-ups per task {diff.get('loop.iterations', 0) / n:.2f} (sleeps {diff.get('loop.sleeps', 0) / n:.2f})",
          flush=True)
    woke = {k[len("loop.woke."):]: v / n for k, v in diff.items() if k.startswith("loop.woke.") and v}
    print("  agent loop woken per task by: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(woke.items(), key=lambda kv: -kv[1]))
          + f", timers {diff.get('loop.sleeps.timer', 0) / n:.2f}", flush=True)
    by_thread: dict[str, float] = {}
    for t0, t1 in zip(threads0, threads1):
        for name, seconds_ in t1.items():
            by_thread[name] = by_thread.get(name, 0.0) + seconds_ - t0.get(name, 0.0)
    print("  agent CPU ms per task by thread: " + ", ".join(
        f"{name} {1000 * value / n:.3f}" for name, value in sorted(by_thread.items(), key=lambda kv: -kv[1])
        if value > 0), flush=True)


if __name__ == "__main__":
    main()
