"""A reported command attempt's directory is emptied and kept as a spare, which the keeper
renames into place for a later attempt instead of making a directory and a state file; what
the earlier attempt left there (its checkpoint, its exit status) is gone by then."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jobplane.agent.commands import CommandSpec, read_leftover, run_command
from jobplane.agent.keeper_client import Keeper
from jobplane.agent.statedir import SPARE, StateDir


async def _until(check) -> None:
    while not check():
        await asyncio.sleep(0.01)


def _with_keeper(root: Path, body):
    """`await body(keeper)` with a keeper of the state directory `root` open; its result."""
    async def main():
        keeper = Keeper(root)
        await keeper.open()
        try:
            return await body(keeper)
        finally:
            await keeper.close()

    return asyncio.run(main())


async def _reported(state: StateDir, key: tuple[str, int]) -> None:
    """The attempt is reported: off the event loop, its directory becomes a spare."""
    state.discard([key])
    await _until(lambda: os.path.isdir(state.root / SPARE) and os.listdir(state.root / SPARE))


def test_a_reported_attempts_directory_is_reused_empty_by_the_next(tmp_path):
    root = tmp_path / "state"
    state = StateDir(str(root))
    state.lock()

    async def body(keeper):
        first = state.attempt_dir(("a", 1))
        leaves = f"echo '{{\"step\": 1}}' > {first}/checkpoint; echo junk > {first}/junk; exit 7"
        result = await run_command(CommandSpec(["/bin/sh", "-c", leaves], attempt_dir=first), keeper=keeper)
        assert result.exit_code == 7
        inode = os.stat(first).st_ino
        await _reported(state, ("a", 1))
        second = state.attempt_dir(("b", 1))
        spec = CommandSpec(["/bin/true"], attempt_dir=second, spare=state.spare())
        result = await run_command(spec, keeper=keeper)
        return first, second, inode, result

    first, second, inode, result = _with_keeper(root, body)
    assert result.exit_code == 0
    assert not os.path.exists(first) and os.listdir(root / SPARE) == []
    assert os.stat(second).st_ino == inode  # the same directory, renamed into place
    assert os.listdir(second) == ["pid"]  # nothing of the first attempt's
    leftover = read_leftover(Path(second))
    assert leftover.exit_status == 0 and leftover.pid is not None and not leftover.lost
    state.unlock()


def test_a_spare_that_is_gone_leaves_the_keeper_to_make_the_directory(tmp_path):
    root = tmp_path / "state"

    spec = CommandSpec(["/bin/true"], attempt_dir=str(root / "t.1"), spare=str(root / SPARE / "gone"))
    assert _with_keeper(root, lambda keeper: run_command(spec, keeper=keeper)).exit_code == 0
    assert os.listdir(root / "t.1") == ["pid"]


def test_spares_left_by_an_earlier_agent_process_are_used(tmp_path):
    root = tmp_path / "state"
    (root / SPARE / "old-1").mkdir(parents=True)
    state = StateDir(str(root))
    state.lock()
    try:
        assert state.spare() == str(root / SPARE / "old-1")
        assert state.spare() == ""
        assert state.leftovers() == {}  # a spare is no attempt
    finally:
        state.unlock()


def test_a_spare_renamed_into_place_says_nothing_until_the_keeper_writes_its_pid(tmp_path):
    # The keeper renames a spare into place, then spawns, then writes the pid over what the
    # spare's state file kept (a byte of the last one's): killed in between, the next agent
    # process finds an attempt with no pid and no exit status, drops it, and reports nothing.
    root = tmp_path / "state"
    state = StateDir(str(root))
    state.lock()

    async def body(keeper):
        first = state.attempt_dir(("a", 1))
        result = await run_command(CommandSpec(["/bin/sh", "-c", "exit 3"], attempt_dir=first), keeper=keeper)
        await _reported(state, ("a", 1))
        return result

    try:
        assert _with_keeper(root, body).exit_code == 3
        (spare,) = (root / SPARE).iterdir()
        spare.rename(root / "b.1")  # as the keeper does, then killed before the spawn
        leftover = read_leftover(root / "b.1")
        assert (leftover.pid, leftover.exit_status) == (None, None)
    finally:
        state.unlock()
    again = StateDir(str(root))
    again.lock()
    try:
        assert again.leftovers() == {} and not (root / "b.1").exists()
    finally:
        again.unlock()
