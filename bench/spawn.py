"""CPU per command attempt through a real keeper, next to a raw spawn measured in the same run.

Starts a keeper in a temporary state directory and runs N `/bin/true` attempts through it as
the agent does (commands.run_command), CONCURRENCY at a time, then prints, per attempt, the CPU
time of the keeper with what it reaped (the commands), of its guard, and of this process (the
agent's side), and the CPU of a bare `posix_spawn` + `waitpid` of /bin/true.

    python bench/spawn.py [--attempts 400] [--concurrency 8] [--containment auto|cgroup|subreaper]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path

from jobplane.agent.commands import CommandSpec, run_command
from jobplane.agent.keeper_client import Keeper

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int, first: int = 11, last: int = 15) -> float:
    """Seconds of CPU of a process and of the children it reaped (0 if it is gone); of fields
    [first, last) of its stat after the name: 11-13 its own, 13-15 its reaped children's."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[first:last]) / _TICK


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def raw_spawn_cpu(n: int) -> float:
    """CPU (this process and the command) per bare posix_spawn + waitpid of /bin/true."""
    before = own_cpu() + children_cpu()
    for _ in range(n):
        os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], {}), 0)
    return (own_cpu() + children_cpu() - before) / n


async def through_keeper(n: int, concurrency: int, containment: str) -> tuple[str, dict[str, float], float]:
    base = Path(tempfile.mkdtemp(prefix="jobplane-bench-spawn-"))
    keeper = Keeper(base / "state", containment=containment)
    await keeper.open()
    env = {**os.environ, "JOBPLANE_JOB_ID": "1", "JOBPLANE_ATTEMPT": "1"}  # the agent's, and a task's

    async def one(i: int) -> None:
        spec = CommandSpec(["/bin/true"], env={**env, "JOBPLANE_TASK_ID": f"t{i}"}, cwd=os.getcwd(),
                           attempt_dir=str(base / "state" / f"t{i}.1"))
        result = await run_command(spec, keeper=keeper)
        assert result.exit_code == 0, result

    for i in range(20):  # warm up
        await one(-i - 1)
    gate = asyncio.Semaphore(concurrency)

    async def gated(i: int) -> None:
        async with gate:
            await one(i)

    guard = getattr(keeper, "guard", 0)  # (none before the guard: to compare with a checkout of before)
    def now() -> tuple[float, ...]:
        return (cpu_of(keeper.pid), cpu_of(keeper.pid, 11, 13), cpu_of(guard), own_cpu(), time.perf_counter())

    before = now()
    await asyncio.gather(*(gated(i) for i in range(n)))
    after = now()
    await keeper.close()
    per = {name: (b - a) / n for name, a, b in zip(("keeper", "keeper_self", "guard", "agent"), before, after)}
    return keeper.containment, per, n / (after[-1] - before[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--containment", default="auto", choices=("auto", "cgroup", "subreaper"))
    args = parser.parse_args()
    raw = raw_spawn_cpu(args.attempts)
    kind, per, rate = asyncio.run(through_keeper(args.attempts, args.concurrency, args.containment))
    print(f"{args.attempts} /bin/true attempts, {args.concurrency} at a time, containment {kind}")
    print(f"keeper + commands : {per['keeper'] * 1e3:6.3f} ms CPU per attempt (keeper alone "
          f"{per['keeper_self'] * 1e3:.3f}, commands {(per['keeper'] - per['keeper_self']) * 1e3:.3f})")
    print(f"guard             : {per['guard'] * 1e3:6.2f} ms")
    print(f"agent side        : {per['agent'] * 1e3:6.3f} ms (this process: run_command)")
    print(f"raw posix_spawn   : {raw * 1e3:6.2f} ms (spawn + wait of /bin/true, same run)")
    print(f"attempts/s        : {rate:6.0f}")


if __name__ == "__main__":
    main()
