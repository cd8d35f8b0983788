"""The keeper's own CPU per `/bin/true` attempt, in this process: its start and end handling
(keeper.Keeper._op_start, then its loop's reaction to the command's exit) driven directly, as
the agent's requests would, with no agent, socket or server in the way, so that a change to the
keeper's hot path shows in microseconds, little swayed by the machine's other load.

    python bench/keeper_loop.py [--attempts 3000] [--concurrency 8] [--containment auto|cgroup|subreaper]
    python bench/keeper_loop.py --tree /work/main --tree . --rounds 3

Prints the keeper's CPU per attempt (this process, counted only inside the keeper's code) and
the commands' (what it reaped); an attempt's directory is emptied and kept as a spare between
attempts, as the agent does (statedir.py), outside the count. With --tree (repeated), each round
runs once with each tree's code (its .venv's Python), alternately, and the medians close.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Holder:
    """An agent connection as the keeper sees it (keeper_holders.Holder): what the keeper sends
    is queued as bytes, as there, and read back outside the count (`take`)."""

    def __init__(self, env: dict[str, str], containment: str) -> None:
        self.env, self.containment, self.ended = env, containment, 0
        self.outbox = bytearray()
        self.pids: dict[int, int] = {}  # request id by the pid it started
        self.done: list[int] = []  # request ids of the attempts that ended, to recycle

    def send(self, message: dict) -> None:
        from jobplane.agent import keeper_wire

        self.outbox += keeper_wire.encode(message)

    def send_line(self, line: bytes) -> None:
        self.outbox += line

    def take(self) -> None:
        for line in bytes(self.outbox).splitlines():
            message = json.loads(line)
            if message["op"] == "started":
                self.pids[message["pid"]] = message["id"]
            elif message["op"] == "ended":
                self.ended += 1
                self.done.append(self.pids.pop(message["pid"]))
            else:
                raise AssertionError(message)
        self.outbox.clear()


def one(attempts: int, concurrency: int, containment: str) -> dict[str, float]:
    """CPU (ms) per attempt of the keeper's code and of the commands, with this tree's code."""
    import socket

    from jobplane.agent import keeper as keeper_module
    from jobplane.agent import statedir

    root = Path(tempfile.mkdtemp(prefix="jobplane-bench-keeper-"))
    keeper = keeper_module.Keeper(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), -1)
    base_env = dict(os.environ)
    holder = _Holder(base_env, containment)
    spares: list[str] = []
    env_set = {"JOBPLANE_TASK_ID": "", "JOBPLANE_ATTEMPT": "1", "JOBPLANE_CHECKPOINT_FILE": ""}
    spent = 0.0

    def start(i: int) -> None:
        nonlocal spent
        directory = f"{root}/{i}.1"
        message = {"op": "start", "id": i, "dir": directory, "argv": ["/bin/true"],
                   "env_set": {**env_set, "JOBPLANE_TASK_ID": str(i),
                               "JOBPLANE_CHECKPOINT_FILE": f"{directory}/checkpoint.json"},
                   "cwd": os.getcwd(), "timeout": 0.0, "log_max_bytes": 0,
                   **({"spare": spares.pop()} if spares else {})}
        line = keeper_module.wire.encode(message)
        before = _cpu()
        keeper._on_message(holder, keeper_module.wire.decode(line[:-1]))
        spent += _cpu() - before
        holder.take()

    def settle(until: int) -> None:
        """Run the keeper's loop until `until` attempts have ended."""
        nonlocal spent
        while holder.ended < until:
            before = _cpu()
            for key, events in keeper.selector.select(1.0):
                key.data(key.fileobj, events)
            keeper._expire()
            spent += _cpu() - before
            holder.take()

    def recycle() -> None:
        """As the agent does once the server has the result: the directory emptied, a spare."""
        while holder.done:
            i = holder.done.pop()
            spares.extend(statedir._empty_or_remove([f"{root}/{i}.1"], [f"{root}/spare/b{i}"]))

    for i in range(20):  # warm up
        start(-i - 1)
        settle(i + 1)
        recycle()
    holder.ended, spent = 0, 0.0
    children0, wall0 = _children(), time.perf_counter()
    started = 0
    while started < attempts:
        while started < attempts and started - holder.ended < concurrency:
            start(started)
            started += 1
        settle(holder.ended + 1)
        recycle()
    settle(attempts)
    wall = time.perf_counter() - wall0
    children = _children() - children0
    keeper.cgroups.close([found.base for found in keeper.containments.values()])
    shutil.rmtree(root, ignore_errors=True)
    return {"keeper_ms": 1000 * spent / attempts, "commands_ms": 1000 * children / attempts,
            "rate": attempts / wall, "containment": keeper.containments[containment].kind}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--containment", default="auto", choices=("auto", "cgroup", "subreaper"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tree", action="append", default=[], help="a worktree with a .venv (repeat to alternate)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.json:
        print(json.dumps(one(a.attempts, a.concurrency, a.containment)))
        return
    trees = a.tree or [str(HERE.parent.parent)]
    results: dict[str, list[dict]] = {tree: [] for tree in trees}
    print(f"{a.attempts} /bin/true attempts, {a.concurrency} at a time, containment {a.containment}; "
          "keeper's CPU ms per attempt")
    for _ in range(a.rounds):
        for tree in trees:
            python = Path(tree) / ".venv" / "bin" / "python"
            out = subprocess.run([str(python), str(HERE), "--json", "--attempts", str(a.attempts),
                                  "--concurrency", str(a.concurrency), "--containment", a.containment],
                                 check=True, capture_output=True, text=True, cwd=tree)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[tree].append(r)
            print(f"keeper {r['keeper_ms']:.3f}  commands {r['commands_ms']:.3f}  {r['rate']:.0f}/s "
                  f"({r['containment']})  [{tree}]", flush=True)
    if a.rounds > 1 or len(trees) > 1:
        print("median:")
        for tree, rs in results.items():
            print(f"keeper {statistics.median(r['keeper_ms'] for r in rs):.3f}  commands "
                  f"{statistics.median(r['commands_ms'] for r in rs):.3f}  [{tree}]")


if __name__ == "__main__":
    main()
