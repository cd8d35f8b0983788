"""Containment: nothing an attempt starts outlives its timeout, its cancel, or its end.

Each task starts processes that leave its process group in one of four ways (support.ESCAPES:
setsid, setpgid, double fork, daemon(3) deaf to SIGTERM) under each mechanism: a cgroup v2 per
attempt, and the wrapper as subreaper (and a Python task's worker as subreaper). The process table is the judge: every pid the task
noted, and every process carrying the test's environment marker, must be gone the moment
run_command returns. Nothing here kills a task's processes itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path

import pytest
from support import (ESCAPE_VARIANTS, escapes_command, noted_pids, pid_alive, processes_with_env,
                     wait_until)

from jobplane.agent import cgroups
from jobplane.agent.commands import CommandSpec, run_command
from jobplane.agent.keeper_client import Keeper
from jobplane.agent.pyworkers import PyCall, WorkerPool
from jobplane.agent.results import AttemptResult, Outcome, Started, StopRequest, request_stop

MARK = "JOBPLANE_TEST_MARK"
TIMEOUT = 2.0
KILL_GRACE = 0.3


@pytest.fixture(params=[cgroups.CGROUP, cgroups.SUBREAPER])
def containment(request) -> str:
    if request.param == cgroups.CGROUP:
        found = cgroups.detect()
        if found.kind != cgroups.CGROUP:
            pytest.skip(f"cgroup containment is not available on this machine: {found.why}")
    return request.param


def run_escapes(tmp_path: Path, variant: str, containment: str, *, stop_with: str = "",
                after_start=None) -> tuple[AttemptResult, dict[int, str], list[int]]:
    """Run an ESCAPES task under a keeper until it times out (no `stop_with`) or is stopped;
    its result, the pids it noted, and the processes of the task alive as run_command returned
    (the keeper still running: its own clean-up must not be what kills them)."""
    argv, pids, ready = escapes_command(tmp_path, variant)
    mark = uuid.uuid4().hex

    async def main() -> tuple[AttemptResult, list[int]]:
        keeper = Keeper(tmp_path / "state", containment=containment)
        await keeper.open()
        stop = asyncio.get_running_loop().create_future()
        started: list[Started] = []
        spec = CommandSpec(argv, env={**os.environ, MARK: mark},
                           attempt_dir=str(tmp_path / "state" / "t.1"),
                           timeout=0 if stop_with else TIMEOUT)
        try:
            running = asyncio.create_task(run_command(spec, kill_grace=KILL_GRACE, stop=stop,
                                                      on_start=started.append, keeper=keeper))
            await asyncio.to_thread(wait_until, ready.exists, 30, "the escaping processes to run")
            if after_start is not None:
                after_start(started[0])
            if stop_with:
                request_stop(stop, StopRequest.cancel(stop_with))
            result = await running
            noted = noted_pids(pids)
            return result, [pid for pid in noted if pid_alive(pid)] + processes_with_env(MARK, mark)
        finally:
            await keeper.close()

    result, survivors = asyncio.run(main())
    return result, noted_pids(pids), survivors


def assert_nothing_survived(noted: dict[int, str], survivors: list[int]) -> None:
    assert len(noted) >= 2, f"the task did not start its escaping processes: {noted}"
    assert survivors == [], f"processes of the attempt outlived it: {survivors}"


@pytest.mark.parametrize("variant", ESCAPE_VARIANTS)
def test_nothing_an_attempt_started_survives_its_timeout(tmp_path, variant, containment):
    result, noted, survivors = run_escapes(tmp_path, variant, containment)
    assert (result.outcome, result.error) == (Outcome.TIMED_OUT, f"timed out after {TIMEOUT:g} s")
    assert_nothing_survived(noted, survivors)
    in_cgroup = ["/jobplane/keeper-" in where for where in noted.values() if where != "-"]
    assert in_cgroup and all(in_cgroup) == (containment == cgroups.CGROUP)


@pytest.mark.parametrize("variant", ESCAPE_VARIANTS)
def test_nothing_an_attempt_started_survives_its_cancel(tmp_path, variant, containment):
    result, noted, survivors = run_escapes(tmp_path, variant, containment, stop_with="cancelled by bob")
    assert (result.outcome, result.error) == (Outcome.CANCELLED, "cancelled by bob")
    assert_nothing_survived(noted, survivors)


def test_a_task_deaf_to_sigterm_is_killed_once_the_grace_is_over(tmp_path, containment):
    result, noted, survivors = run_escapes(tmp_path, "daemon", containment, stop_with="stop")
    assert result.raw == {"state": "cancelled", "signal": "SIGKILL"}  # TERM changed nothing
    assert_nothing_survived(noted, survivors)


def test_a_killed_wrapper_leaves_nothing_behind(tmp_path, containment):
    # The keeper is every wrapper's subreaper: what a wrapper killed from outside contained
    # falls to the keeper, which kills it and writes the exit status the wrapper could not.
    def kill_the_wrapper(started: Started) -> None:
        os.kill(started.pgid, signal.SIGKILL)  # the wrapper leads the attempt's group

    result, noted, survivors = run_escapes(tmp_path, "double-fork", containment,
                                      after_start=kill_the_wrapper)
    assert (result.outcome, result.error) == (Outcome.FAILED, "killed by SIGKILL")
    assert_nothing_survived(noted, survivors)


def test_an_attempt_dies_with_its_keeper(tmp_path, containment):
    # A keeper killed from outside takes its attempts with it (PR_SET_PDEATHSIG on the
    # wrappers): no attempt ever runs unwatched.
    def kill_the_keeper(started: Started) -> None:
        state = tmp_path / "state"
        keeper_pid = int((Path(f"/proc/{started.pgid}/stat").read_text()
                          .rsplit(")", 1)[1].split()[1]))
        assert (Path(f"/proc/{keeper_pid}/comm").read_text().strip() == "jobplane-keeper"), state
        os.kill(keeper_pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(keeper_pid), 30, "the keeper to die")

    result, noted, survivors = run_escapes(tmp_path, "setsid", containment,
                                      after_start=kill_the_keeper)
    assert result.outcome == Outcome.FAILED and result.error == "killed by SIGKILL"
    assert_nothing_survived(noted, survivors)


# A Python-callable task that runs an ESCAPES task as its child and waits: its processes are
# the worker's descendants (the worker is their subreaper), and are killed as a tree.
PYTHON_TASK = """
import subprocess, time

def escape(argv, env):
    subprocess.Popen(argv, env=env)
    time.sleep(1000)
"""


@pytest.mark.parametrize("how", ["timeout", "cancel"])
@pytest.mark.parametrize("variant", ESCAPE_VARIANTS)
def test_nothing_a_python_task_started_survives_its_timeout_or_cancel(tmp_path, variant, how):
    argv, pids, ready = escapes_command(tmp_path, variant)
    (tmp_path / "escaping_tasks.py").write_text(PYTHON_TASK)
    mark = uuid.uuid4().hex

    async def main() -> tuple[AttemptResult, list[int]]:
        pool = WorkerPool(1, work_dir=str(tmp_path))
        pool.start()
        stop = asyncio.get_running_loop().create_future()
        call = PyCall("escaping_tasks:escape", json.dumps([argv, {**os.environ, MARK: mark}]),
                      timeout=TIMEOUT if how == "timeout" else 0)
        try:
            running = asyncio.create_task(pool.run(call, stop=stop))
            await asyncio.to_thread(wait_until, ready.exists, 30, "the escaping processes to run")
            if how == "cancel":
                request_stop(stop, StopRequest.cancel("cancelled by bob"))
            result = await running
            noted = noted_pids(pids)
            return result, [pid for pid in noted if pid_alive(pid)] + processes_with_env(MARK, mark)
        finally:
            await pool.close()

    result, survivors = asyncio.run(main())
    assert result.outcome == (Outcome.TIMED_OUT if how == "timeout" else Outcome.CANCELLED)
    assert_nothing_survived(noted_pids(pids), survivors)


def test_an_attempt_in_the_cgroup_an_earlier_one_left_is_contained_as_well(tmp_path):
    # The keeper hands an ended attempt's emptied cgroup to the next one (making and removing
    # one per attempt was most of what a cgroup cost): the next is as contained.
    if cgroups.detect().kind != cgroups.CGROUP:
        pytest.skip("cgroup containment is not available on this machine")
    argv, pids, ready = escapes_command(tmp_path, "double-fork")
    mark = uuid.uuid4().hex

    async def main() -> tuple[list[str], AttemptResult, list[int]]:
        keeper = Keeper(tmp_path / "state", containment=cgroups.CGROUP)
        await keeper.open()
        try:
            where = []
            for i in (1, 2):
                spec = CommandSpec(["/bin/cat", "/proc/self/cgroup"], attempt_dir=str(tmp_path / "state" / f"c.{i}"))
                where.append((await run_command(spec, keeper=keeper)).stdout_tail)
            stop = asyncio.get_running_loop().create_future()
            spec = CommandSpec(argv, env={**os.environ, MARK: mark}, attempt_dir=str(tmp_path / "state" / "t.1"))
            running = asyncio.create_task(run_command(spec, kill_grace=KILL_GRACE, stop=stop, keeper=keeper))
            await asyncio.to_thread(wait_until, ready.exists, 30, "the escaping processes to run")
            request_stop(stop, StopRequest.cancel("by the test"))
            result = await running
            survivors = [pid for pid in noted_pids(pids) if pid_alive(pid)] + processes_with_env(MARK, mark)
            return where, result, survivors
        finally:
            await keeper.close()

    where, result, survivors = asyncio.run(main())
    assert where[0] == where[1] and "/jobplane/keeper-" in where[0], where
    assert result.outcome == Outcome.CANCELLED
    noted = noted_pids(pids)
    assert_nothing_survived(noted, survivors)
    assert set(noted.values()) == {where[0].splitlines()[-1]}, (where, noted)  # the same cgroup again
