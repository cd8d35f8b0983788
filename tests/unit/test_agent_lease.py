"""The agent's lease on its attempts, held at its keeper: a stand-in agent process (HOLDER,
using the agent's own keeper client, command runner and worker pool) is killed, frozen or
replaced, and the process table says what became of what it ran.

Nothing here kills a task's processes itself before asserting they are gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from support import Proc, escapes_command, noted_pids, paused, pid_alive, wait_until

from jobplane.agent.commands import CommandSpec, run_command
from jobplane.agent.keeper_client import Keeper
from jobplane.agent.keeper_wire import KILL_DEADLINE, LOST_FILE
from jobplane.agent.results import AttemptResult, Outcome
from jobplane.agent.statedir import StateDir

# A stand-in for an agent: holds the lease with the given grace and heartbeat, then runs a
# command (start), adopts the one a killed holder left (adopt), or runs a Python call in a
# worker (python); prints how it ended.
HOLDER = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from jobplane.agent.commands import CommandSpec, read_leftover, resume_command, run_command
    from jobplane.agent.keeper_client import Keeper
    from jobplane.agent.pyworkers import PyCall, WorkerPool
    from jobplane.agent.results import AttemptLost

    state, grace, heartbeat, mode, *argv = sys.argv[1:]
    attempt = Path(state) / "t.1"

    async def run(keeper):
        if mode == "start":
            return await run_command(CommandSpec(argv, attempt_dir=str(attempt)), keeper=keeper)
        if mode == "adopt":
            adopted = await keeper.adopt([attempt], only=True)
            print("adopted", len(adopted), flush=True)
            return await resume_command(read_leftover(attempt), keeper=keeper)
        pool = WorkerPool(1, work_dir=argv[0], on_spawn=keeper.add_worker)
        pool.start()
        return await pool.run(PyCall("held_tasks:run_forever", json.dumps(argv[1:])))

    async def main():
        keeper = Keeper(state, heartbeat=float(heartbeat))
        await keeper.open()
        keeper.set_grace(float(grace))
        try:
            result = await run(keeper)
            print("result", result.outcome.name.lower(), result.exit_code, result.stdout_tail, flush=True)
        except AttemptLost as exc:
            print("lost:", exc, flush=True)
        await keeper.close()

    asyncio.run(main())
""")

# A Python task that starts a child in its own session and notes both pids.
PYTHON_TASK = textwrap.dedent("""
    import os, subprocess, time

    def run_forever(pids, ready):
        child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        with open(pids, "a") as f:
            f.write(f"{os.getpid()} -\\n{child.pid} -\\n")
        open(ready, "w").close()
        time.sleep(1000)
""")

# Until `go` exists, then says so: a command to adopt and finish.
UNTIL_GO = 'echo $$ > {pid}; while [ ! -e {go} ]; do sleep 0.05; done; echo finished'


def holder(tmp_path: Path, mode: str, *argv: str, grace: float = 1.0, heartbeat: float = 0.2,
           name: str = "holder") -> Proc:
    tmp_path.mkdir(exist_ok=True)
    return Proc([sys.executable, "-c", HOLDER, str(tmp_path / "state"), str(grace), str(heartbeat),
                 mode, *argv], tmp_path / f"{name}.log")


def all_dead(pids) -> bool:
    return not [pid for pid in pids if pid_alive(pid)]


def test_an_agent_that_dies_for_good_leaves_nothing_running(tmp_path):
    argv, pids, ready = escapes_command(tmp_path, "double-fork")
    agent = holder(tmp_path, "start", *argv, grace=1.0)
    wait_until(ready.exists, 30, "the attempt to run")
    agent.kill()  # kill -9: no new agent process comes
    noted = noted_pids(pids)
    # Within the grace and the kill deadline (bounded loosely here; bench/ measures it).
    wait_until(lambda: all_dead(noted), 30, "the dead agent's attempt to be killed")
    attempt = tmp_path / "state" / "t.1"
    assert "no agent process held its lease" in (attempt / LOST_FILE).read_text()
    # A later agent process neither adopts nor reports it: the server continued it elsewhere.
    later = StateDir(str(tmp_path / "state"))
    assert later.leftovers() == {} and not attempt.exists()


def test_a_frozen_agents_attempts_and_workers_are_killed_and_it_drops_them_when_thawed(tmp_path):
    (tmp_path / "held_tasks.py").write_text(PYTHON_TASK)
    pids, ready = tmp_path / "py.pids", tmp_path / "py.ready"
    python = holder(tmp_path / "py", "python", str(tmp_path), str(pids), str(ready), name="py")
    command, command_pids, command_ready = escapes_command(tmp_path, "setsid")
    agent = holder(tmp_path, "start", *command, grace=0.5, heartbeat=0.2)
    try:
        wait_until(lambda: ready.exists() and command_ready.exists(), 30, "both attempts to run")
        noted = {**noted_pids(pids), **noted_pids(command_pids)}
        python.signal(signal.SIGSTOP)
        agent.signal(signal.SIGSTOP)  # alive, connected, and silent
        wait_until(lambda: all_dead(noted), 30, "the frozen agents' attempts to be killed")
        python.signal(signal.SIGCONT)
        agent.signal(signal.SIGCONT)
        assert agent.p.wait(30) == 0
        assert "lost: the agent's keeper killed it: no agent process held its lease" in agent.output()
    finally:
        for proc in (python, agent):
            proc.signal(signal.SIGCONT)
            proc.kill()
            proc.stop()


def test_a_new_agent_process_within_the_grace_adopts_the_attempt_and_nothing_is_killed(tmp_path):
    pid_file, go = tmp_path / "task.pid", tmp_path / "go"
    crashed = holder(tmp_path, "start", "sh", "-c", UNTIL_GO.format(pid=pid_file, go=go),
                     grace=30.0, name="crashed")
    task = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, "pid"))
    crashed.kill()
    # Paused while no agent holds it, so nothing it does goes unreported.
    wait_until(lambda: paused(task), 30, "the dead agent's attempt to be paused")
    restarted = holder(tmp_path, "adopt", grace=30.0, name="restarted")
    try:
        wait_until(lambda: "adopted 1" in restarted.output(), 30, "the new holder to adopt it")
        assert pid_alive(task)
        wait_until(lambda: not paused(task), 30, "the adopted attempt to run on")
        go.touch()
        assert restarted.p.wait(30) == 0
        # The same process ran to its end: adopted, not restarted.
        assert "result succeeded 0 finished" in restarted.output()
        assert not (tmp_path / "state" / "t.1" / LOST_FILE).exists()
    finally:
        go.touch()
        restarted.stop()


def test_python_workers_die_with_their_agent_and_so_does_what_they_started(tmp_path):
    (tmp_path / "held_tasks.py").write_text(PYTHON_TASK)
    pids, ready = tmp_path / "py.pids", tmp_path / "py.ready"
    agent = holder(tmp_path, "python", str(tmp_path), str(pids), str(ready), grace=30.0)
    wait_until(ready.exists, 30, "the python task to run")
    noted = noted_pids(pids)
    agent.kill()
    # Not after the (long) grace: a worker cannot be adopted, so it goes at once.
    wait_until(lambda: all_dead(noted), 30 - 2 * KILL_DEADLINE, "the worker and its child to die")


def test_after_its_keeper_is_killed_the_agent_starts_commands_under_a_new_one(tmp_path):
    async def main() -> tuple[int, int, AttemptResult]:
        keeper = Keeper(tmp_path / "state")
        await keeper.open()
        first = keeper.pid
        os.kill(first, signal.SIGKILL)
        await asyncio.to_thread(wait_until, lambda: not pid_alive(first), 30, "the keeper to die")
        try:
            result = await run_command(CommandSpec(["sh", "-c", "echo again"],
                                                   attempt_dir=str(tmp_path / "state" / "t.2")),
                                       keeper=keeper)
            return first, keeper.pid, result
        finally:
            await keeper.close()

    first, second, result = asyncio.run(main())
    assert second not in (0, first)
    assert (result.outcome, result.stdout_tail) == (Outcome.SUCCEEDED, "again\n")
