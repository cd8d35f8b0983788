"""Adopting commands after an agent crash: a new process finds them in the state directory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import pid_alive, wait_until

from jobplane.agent.commands import read_leftover, resume_command
from jobplane.agent.keeper_client import Keeper
from jobplane.agent.results import Outcome, StopRequest, request_stop
from jobplane.agent.statedir import StateDir, StateLocked

# A stand-in for an agent: runs one command in an attempt directory until it is killed. Its
# attempts wait 30 s for a new agent process, as an agent's wait the server's reconnect grace (the
# keeper's own default, 1 s, a loaded machine can spend between the crash and the adoption).
RUNNER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from jobplane.agent.commands import CommandSpec, run_command
    from jobplane.agent.keeper_client import Keeper

    async def main():
        keeper = Keeper(Path(sys.argv[1]).parent)
        await keeper.open()
        keeper.set_grace(30.0)
        await run_command(CommandSpec(sys.argv[3:], attempt_dir=sys.argv[1], timeout=float(sys.argv[2])),
                          keeper=keeper)

    asyncio.run(main())
""")


def start_and_crash(attempt_dir: Path, script: str, timeout: float = 0,
                    until: Callable[[], object] = lambda: True, what: str = "the command to start") -> None:
    """Start `script` the way an agent does, then kill -9 the 'agent' once it runs and `until()`
    holds (once the agent is gone the keeper pauses the command: it must have got that far)."""
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(attempt_dir), str(timeout),
                               "sh", "-c", script])
    wait_until(lambda: (attempt_dir / "pid").exists() and (attempt_dir / "pid").read_text() and until(),
               30, what)
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)


def test_a_command_outlives_its_agent_and_is_adopted_to_its_end(tmp_path):
    attempt, go = tmp_path / "7.1", tmp_path / "go"
    start_and_crash(attempt, f"echo before; while [ ! -e {go} ]; do sleep 0.05; done; echo after; exit 3")
    leftover = read_leftover(attempt)
    assert leftover.alive() and leftover.exit_status is None

    async def adopt() -> object:
        running = asyncio.create_task(resume_command(leftover))
        await asyncio.sleep(0)
        go.touch()
        return await running

    result = asyncio.run(adopt())
    assert result.outcome == Outcome.FAILED and result.exit_code == 3
    assert result.stdout_tail == "before\nafter\n"


def test_a_command_that_ended_before_its_agent_could_report_it_reports_its_exit_status(tmp_path):
    # (While no agent holds it, a command is paused: it cannot end while its agent is away. So the
    # agent dies once the command has ended, which the keeper notes in the attempt's directory.)
    attempt, go = tmp_path / "7.1", tmp_path / "go"
    go.touch()
    start_and_crash(attempt, f"while [ ! -e {go} ]; do sleep 0.05; done; echo done",
                    until=lambda: read_leftover(attempt).exit_status is not None, what="the command to finish")
    leftover = read_leftover(attempt)
    assert not leftover.alive() and leftover.exit_status == 0
    result = asyncio.run(resume_command(leftover))
    assert result.outcome == Outcome.SUCCEEDED and result.stdout_tail == "done\n"


def test_an_adopted_command_can_be_cancelled_and_its_group_dies(tmp_path):
    attempt, pidfile = tmp_path / "7.1", tmp_path / "child.pid"
    start_and_crash(attempt, f"sleep 300 & echo $! > {pidfile}; wait",
                    until=lambda: pidfile.exists() and pidfile.read_text().strip(), what="the grandchild's pid")
    grandchild = int(pidfile.read_text())

    async def cancel() -> tuple[object, bool]:
        # The new agent holds the keeper until it has looked: once no agent holds it, the keeper
        # exits and its guard kills whatever is left, which would hide a cancel that killed the
        # command alone.
        keeper = Keeper(tmp_path)
        assert await keeper.open(spawn=False)
        try:
            await keeper.adopt([attempt])
            stop = asyncio.get_running_loop().create_future()
            running = asyncio.create_task(resume_command(read_leftover(attempt), stop=stop, keeper=keeper))
            await asyncio.sleep(0)
            request_stop(stop, StopRequest.cancel("job cancelled"))
            result = await running
            deadline = time.monotonic() + 10
            while pid_alive(grandchild) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return result, pid_alive(grandchild)
        finally:
            await keeper.close()

    result, grandchild_alive = asyncio.run(cancel())
    assert result.outcome == Outcome.CANCELLED
    assert not grandchild_alive, "the cancel killed the command but not its group"


def test_an_adopted_command_keeps_its_original_deadline(tmp_path):
    attempt = tmp_path / "7.1"
    start_and_crash(attempt, "sleep 300", timeout=1.0)
    result = asyncio.run(resume_command(read_leftover(attempt), kill_grace=0.1))
    assert result.outcome == Outcome.TIMED_OUT


def test_the_state_dir_keeps_live_and_finished_attempts_and_drops_the_rest(tmp_path):
    state = StateDir(str(tmp_path / "state"))
    state.lock()
    live, finished = Path(state.attempt_dir(("5", 1))), Path(state.attempt_dir(("6", 2)))
    start_and_crash(live, "sleep 300")
    finished.mkdir()
    (finished / "pid").write_text("999999 0\n")
    (finished / "exit").write_text("0\n")
    never_started = Path(state.attempt_dir(("8", 1)))
    never_started.mkdir()
    died = Path(state.attempt_dir(("9", 1)))
    died.mkdir()
    (died / "pid").write_text(f"{os.getpid()} 0\n")  # a live pid that is no wrapper of ours
    try:
        assert sorted(state.leftovers()) == [("5", 1), ("6", 2)]
        assert not never_started.exists() and not died.exists()
    finally:
        pid = read_leftover(live).pid
        os.killpg(pid, signal.SIGKILL)


def test_two_agents_cannot_share_a_state_dir(tmp_path):
    first, second = StateDir(str(tmp_path)), StateDir(str(tmp_path))
    first.lock()
    with pytest.raises(StateLocked, match="another --name or --state-dir"):
        second.lock()
    first.unlock()
    second.lock()
