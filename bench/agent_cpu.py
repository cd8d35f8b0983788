"""Agent-side CPU per `/bin/true` command task, end to end: a server and one agent (mutual TLS,
as `jobplane up` runs them) run jobs of N `/bin/true` tasks; prints, per task, the CPU time of
the agent, of its keeper (which spawns the commands), of the commands themselves (what the
keeper reaped), of the keeper's guard, and of the server, from /proc/PID/stat (less swayed by
the machine's other load than tasks/s).

    python bench/agent_cpu.py [--tasks 1500] [--agents 1] [--slots 8] [--rounds 1]

Each round also prints the ceiling this CPU per task sets on a machine of this many cores:
the /bin/true tasks/s they can run if the stack's every process (server, agent, keeper,
commands) shares them with nothing else, as a share of the raw spawn rate measured in the same
round (bench/throughput.py's: subprocess.run of /bin/true, one after the other), and what the
ceiling would be with an agent and a keeper that cost nothing.

To compare two checkouts, run each one's copy in turn, alternately, in the same period.
bench/spawn.py measures the keeper alone (no server, no agent loop).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_memory import keeper_of  # noqa: E402
from throughput import machine_ticks, raw_spawn_rate  # noqa: E402
from support import AgentProc, ServerProc, wait_until  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process, of the children it reaped)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK, (int(fields[13]) + int(fields[14])) / _TICK


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def keeper_and_guard(state_dir: Path) -> tuple[int, int]:
    """The keeper of `state_dir` and its guard: both run `python -m jobplane.agent.keeper ...
    DIR` (the guard forked the keeper), so the keeper is the one whose parent is the other."""
    found = keeper_of(state_dir)
    assert found is not None, "no keeper runs for the agent"
    children = Path(f"/proc/{found}/task/{found}/children").read_text().split()
    for child in map(int, children):
        if b"jobplane.agent.keeper" in Path(f"/proc/{child}/cmdline").read_bytes():
            return child, found
    return found, parent(found)


def raw_spawn(n: int) -> tuple[float, float]:
    """bench/throughput.py's raw spawn rate of /bin/true (spawns/s), and the CPU (ms) per spawn
    of this process and of the commands."""
    times = os.times()
    rate = raw_spawn_rate(n)
    after = os.times()
    return rate, (sum(after[:4]) - sum(times[:4])) * 1000 / n


def ceiling(per: dict[str, float], commands: float, raw_rate: float) -> str:
    """What the CPU per task allows on this machine's cores, against the raw spawn rate."""
    cores = os.cpu_count() or 1
    total = sum(per.values()) + commands
    bare = per["server"] + commands
    return (f"ceiling on {cores} cores: {cores * 1000 / total:.0f} tasks/s = {100 * cores * 1000 / total / raw_rate:.0f}% "
            f"of the raw spawn rate ({raw_rate:.0f}/s, this round); with agent and keeper free "
            f"{100 * cores * 1000 / bare / raw_rate:.0f}%")


def run_job(client, n: int) -> float:
    """Seconds from submit to the end of a job of `n` /bin/true tasks (server clock)."""
    job = client.submit_job({"name": "true", "tasks": [{"name": f"t{i}", "command": ["/bin/true"]}
                                                       for i in range(n)]})
    done = client.wait_job(job.id, timeout=3600)
    assert done.counts.success == n, done
    return done.end_time.ToNanoseconds() / 1e9 - done.submit_time.ToNanoseconds() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--agents", type=int, default=1)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    names = ["cpu"] if args.agents == 1 else [f"cpu-{i}" for i in range(args.agents)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = ServerProc(work, f"sqlite:///{work / 'bench.db'}")
        agents = [AgentProc(work, server, name, slots=args.slots) for name in names]
        client = server.client()
        try:
            wait_until(lambda: sum(p.state == 1 for p in client.list_providers()) == len(agents), 60, "the agents")
            run_job(client, 100 * len(agents))  # warm up
            pids: dict[str, list[int]] = {"agent": [a.pid for a in agents], "keeper": [], "guard": [],
                                          "server": [server.pid]}
            for name in names:
                keeper, guard = keeper_and_guard(work / f"agent-{name}.state")
                pids["keeper"].append(keeper)
                pids["guard"].append(guard)
            print(f"server + {len(agents)} agent(s) x {args.slots} slots (mutual TLS), jobs of {args.tasks} "
                  "/bin/true tasks; CPU ms per task", flush=True)
            for _ in range(args.rounds):
                round_cpu(client, pids, args.tasks)
        finally:
            client.close()
            for agent in agents:
                agent.stop()
            server.stop()


def round_cpu(client, pids: dict[str, list[int]], tasks: int) -> None:
    """One job of `tasks` commands: print each kind of process's CPU per task (agents and
    keepers summed), how busy the machine's cores were, and the ceiling that CPU sets."""
    def sample() -> dict[str, tuple[float, float]]:
        return {name: tuple(map(sum, zip(*(cpu(pid) for pid in group)))) for name, group in pids.items()}

    before, ticks = sample(), machine_ticks()
    seconds = run_job(client, tasks)
    after, (busy, whole) = sample(), machine_ticks()
    per = {name: (after[name][0] - before[name][0]) * 1000 / tasks for name in pids}
    commands = (after["keeper"][1] - before["keeper"][1]) * 1000 / tasks
    print(f"agent {per['agent']:.3f}  keeper {per['keeper']:.3f}  agent+keeper "
          f"{per['agent'] + per['keeper']:.3f}  (commands {commands:.3f}, guard {per['guard']:.3f}, "
          f"server {per['server']:.3f})  {tasks / seconds:.0f} tasks/s, cores "
          f"{100 * (busy - ticks[0]) / max(1, whole - ticks[1]):.0f}% busy", flush=True)
    raw_rate, raw_cpu = raw_spawn(min(tasks, 2000))
    print(f"  {ceiling(per, commands, raw_rate)}; raw spawn CPU {raw_cpu:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
