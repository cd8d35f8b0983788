"""The command runner: real subprocesses, their exit status, output tails, timeouts and cancels."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from support import pid_alive, wait_until

from jobplane.agent.commands import CommandSpec, run_command
from jobplane.agent.results import TAIL_LIMIT, Outcome, StopRequest, request_stop

# `sleep 300` in the background, its pid in FILE, then wait: a task with a grandchild.
WITH_GRANDCHILD = "sleep 300 & echo $! > {pidfile}; wait"


def run(argv: list[str], **options) -> object:
    kill_grace = options.pop("kill_grace", 3.0)
    return asyncio.run(run_command(CommandSpec(argv, **options), kill_grace=kill_grace))


def read_pid(path: Path) -> int:
    return int(wait_until(lambda: path.exists() and path.read_text().strip(), 30, f"{path.name}"))


def test_exit_code_zero_succeeds_with_the_output_tails():
    result = run(["sh", "-c", "echo out; echo err >&2"])
    assert result.outcome == Outcome.SUCCEEDED
    assert (result.exit_code, result.error) == (0, "")
    assert (result.stdout_tail, result.stderr_tail) == ("out\n", "err\n")
    assert result.raw == {"state": "exited", "exit_code": "0"}


def test_the_start_handle_names_the_process_group_and_counts_output(tmp_path):
    started = []
    spec = CommandSpec(["sh", "-c", "printf abc; printf de >&2; ps -o pgid= -p $$ | tr -d ' '"],
                       attempt_dir=str(tmp_path / "attempt"))
    result = asyncio.run(run_command(spec, on_start=started.append))
    (handle,) = started
    assert result.stdout_tail == f"abc{handle.pgid}\n"  # the task has a group of its own
    assert handle.output_bytes() == len(result.stdout_tail) + len(result.stderr_tail)


def test_non_zero_exit_fails_with_the_code():
    result = run(["sh", "-c", "exit 3"])
    assert result.outcome == Outcome.FAILED
    assert (result.exit_code, result.error) == (3, "exited with code 3")
    assert result.raw == {"state": "exited", "exit_code": "3"}


def test_the_task_gets_its_environment_and_working_directory(tmp_path):
    env = {**os.environ, "GREETING": "hi", "JOBPLANE_TASK_ID": "42"}
    result = run(["sh", "-c", 'echo "$GREETING $JOBPLANE_TASK_ID $(pwd)"'], env=env, cwd=str(tmp_path))
    assert result.stdout_tail == f"hi 42 {tmp_path}\n"


def test_output_past_the_tail_limit_keeps_only_the_end():
    script = "import sys; sys.stdout.write('x' * 1_000_000 + 'END'); sys.stderr.write('e' * 10_000)"
    result = run([sys.executable, "-c", script])
    assert result.outcome == Outcome.SUCCEEDED
    assert len(result.stdout_tail) == TAIL_LIMIT and result.stdout_tail.endswith("xEND")
    assert result.stderr_tail == "e" * TAIL_LIMIT


def test_a_missing_binary_fails_to_start_with_a_clear_error():
    result = run(["no-such-binary-jobplane"])
    assert result.outcome == Outcome.FAILED
    assert result.error == "cannot start 'no-such-binary-jobplane': No such file or directory"
    assert result.exit_code is None
    assert result.raw == {"state": "failed_to_start"}


def test_a_file_that_is_not_executable_fails_to_start(tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho never\n")
    result = run([str(script)])
    assert result.outcome == Outcome.FAILED
    assert result.error == f"cannot start '{script}': Permission denied"
    assert result.raw == {"state": "failed_to_start"}


def test_a_missing_working_directory_fails_to_start(tmp_path):
    result = run(["true"], cwd=str(tmp_path / "gone"))
    assert result.outcome == Outcome.FAILED
    assert "working directory" in result.error and "No such file or directory" in result.error


def test_a_working_directory_removed_after_an_attempt_ran_there_fails_the_next(tmp_path, monkeypatch):
    """The agent checks a working directory once (commands._checked_dirs); one removed since
    fails the next attempt all the same, at the keeper, and the error still names it (a
    relative one too: the keeper's error names its absolute path)."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "work" / "ran"

    async def twice() -> tuple:
        from jobplane.agent.keeper_client import Keeper

        keeper = Keeper(tmp_path / "state")
        await keeper.open()
        try:
            first = await run_command(CommandSpec(["sh", "-c", "pwd > ran"], cwd="work",
                                                  attempt_dir=str(tmp_path / "state" / "a.1")), keeper=keeper)
            where = marker.read_text().strip()
            (tmp_path / "work" / "ran").unlink()
            (tmp_path / "work").rmdir()
            second = await run_command(CommandSpec(["true"], cwd="work",
                                                   attempt_dir=str(tmp_path / "state" / "b.1")), keeper=keeper)
            return first, where, second
        finally:
            await keeper.close()

    first, where, second = asyncio.run(twice())
    assert first.outcome == Outcome.SUCCEEDED and where == str(tmp_path / "work")
    assert second.outcome == Outcome.FAILED
    assert second.error == "cannot start 'true': working directory 'work': No such file or directory"
    assert second.raw == {"state": "failed_to_start"}


def test_a_command_killed_by_a_signal_has_no_exit_code():
    result = run(["sh", "-c", "kill -KILL $$"])
    assert result.outcome == Outcome.FAILED
    assert result.exit_code is None
    assert result.error == "killed by SIGKILL"
    assert result.raw == {"state": "signaled", "signal": "SIGKILL"}


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    result = run(["sh", "-c", WITH_GRANDCHILD.format(pidfile=pidfile)], timeout=2.0)
    assert result.outcome == Outcome.TIMED_OUT
    assert result.error == "timed out after 2 s"
    assert result.raw == {"state": "timed_out", "signal": "SIGTERM"}
    grandchild = read_pid(pidfile)
    wait_until(lambda: not pid_alive(grandchild), 30, "the grandchild to be killed")


def test_a_task_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    pidfile = tmp_path / "child.pid"
    # An ignored SIGTERM is inherited by the grandchild too, so only SIGKILL stops either.
    script = "trap '' TERM; " + WITH_GRANDCHILD.format(pidfile=pidfile)
    result = run(["sh", "-c", script], timeout=2.0, kill_grace=0.2)
    assert result.outcome == Outcome.TIMED_OUT
    assert result.raw == {"state": "timed_out", "signal": "SIGKILL"}
    grandchild = read_pid(pidfile)
    wait_until(lambda: not pid_alive(grandchild), 30, "the grandchild to be killed")


def test_a_stop_request_cancels_the_command_with_its_reason(tmp_path):
    pidfile = tmp_path / "child.pid"
    started = []

    async def cancel_once_running() -> object:
        stop = asyncio.get_running_loop().create_future()
        spec = CommandSpec(["sh", "-c", WITH_GRANDCHILD.format(pidfile=pidfile)])
        running = asyncio.create_task(
            run_command(spec, stop=stop, on_start=started.append)
        )
        await asyncio.to_thread(read_pid, pidfile)
        request_stop(stop, StopRequest.cancel("job cancelled by alice"))
        return await running

    result = asyncio.run(cancel_once_running())
    assert len(started) == 1 and started[0].pgid > 0
    assert result.outcome == Outcome.CANCELLED
    assert result.error == "job cancelled by alice"
    assert result.raw["state"] == "cancelled"
    wait_until(lambda: not pid_alive(read_pid(pidfile)), 30, "the grandchild to be killed")


def test_a_task_that_exits_on_sigterm_keeps_its_exit_status_in_raw_only(tmp_path):
    ready = tmp_path / "ready"

    async def cancel_once_trapped() -> object:
        stop = asyncio.get_running_loop().create_future()
        script = f"trap 'exit 5' TERM; echo > {ready}; sleep 300 & wait"
        running = asyncio.create_task(run_command(CommandSpec(["sh", "-c", script]), stop=stop))
        await asyncio.to_thread(wait_until, ready.exists, 30, "the trap to be set")
        request_stop(stop, StopRequest.cancel("stop"))
        return await running

    result = asyncio.run(cancel_once_trapped())
    assert result.outcome == Outcome.CANCELLED
    assert result.exit_code is None  # we ended it: its exit code is no verdict on the task
    assert result.raw == {"state": "cancelled", "exit_code": "5"}


def test_background_processes_left_behind_are_killed_when_the_command_exits(tmp_path):
    pidfile = tmp_path / "child.pid"
    result = run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}"])
    assert result.outcome == Outcome.SUCCEEDED
    wait_until(lambda: not pid_alive(read_pid(pidfile)), 30, "the leftover sleep to be killed")
