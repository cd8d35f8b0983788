"""Checkpoints through a whole agent: what tasks save reaches the stand-in server before their
result, and what an assignment carries reaches the task."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import wait_until
from support_standin import DEADLINE, FINISHED, StandIn, report_kind, with_agent

from jobplane.agent.checkpoint import CHECKPOINT_FILE_ENV
from jobplane.agent.checkpoint_files import CheckpointFiles
from jobplane.agent.statedir import default_state_dir
from jobplane.v1 import provider_pb2

CHECKPOINT = "checkpoint"

# A command task in Python: counts to 3 from where it left off, saving a checkpoint after
# each step, and after steps 1 and 2 waits for the test to create the file go<i>.
COUNT_TO_3 = textwrap.dedent("""
    import os, sys, time
    from jobplane.agent import checkpoint

    start = checkpoint.load(default={"i": 0})["i"]
    for i in range(start + 1, 4):
        checkpoint.save({"i": i})
        deadline = time.monotonic() + 30
        while i < 3 and not os.path.exists(f"go{i}"):
            if time.monotonic() > deadline:
                sys.exit("nobody said go")
            time.sleep(0.01)
""")

PY_TASKS = textwrap.dedent("""
    import os

    def count(n, ctx):
        start = (ctx.resume or {"i": 0})["i"]
        for i in range(start + 1, n + 1):
            ctx.checkpoint({"i": i})
        return {"resumed": ctx.resume, "who": [ctx.task_id, ctx.job_id, ctx.attempt],
                "env": os.environ.get("JOBPLANE_CHECKPOINT")}
""")


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    (tmp_path / "count_to_3.py").write_text(COUNT_TO_3)
    (tmp_path / "ckpt_tasks.py").write_text(PY_TASKS)
    return tmp_path


def states(reports: list[provider_pb2.TaskReport]) -> list[object]:
    return [json.loads(r.checkpoint.checkpoint_json) for r in reports if report_kind(r) == CHECKPOINT]


def checkpoint_of(task_id: str, state: object):
    """Matches `task_id`'s CHECKPOINT report of this state."""
    return lambda r: (r.task_id, report_kind(r)) == (task_id, CHECKPOINT) and json.loads(
        r.checkpoint.checkpoint_json) == state


def test_a_command_s_checkpoints_are_streamed_in_order_before_its_result(work_dir):
    async def scenario(service: StandIn, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("1", command=[sys.executable, "count_to_3.py"])
        for i in (1, 2):  # each one seen before the task moves on to the next
            await stream.first(checkpoint_of("1", {"i": i}))
            (work_dir / f"go{i}").touch()
        return await stream.reports_until("1", FINISHED)

    reports = with_agent(work_dir, scenario)
    assert states(reports) == [{"i": 1}, {"i": 2}, {"i": 3}]
    assert reports[-1].finished.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert report_kind(reports[-2]) == CHECKPOINT  # the last state arrives before the result


def test_a_command_resumes_from_the_checkpoint_its_assignment_carries(work_dir):
    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("1", command=[sys.executable, "count_to_3.py"], checkpoint_json='{"i": 2}')
        stream.assign("2", command=["sh", "-c", 'echo "${JOBPLANE_CHECKPOINT-unset}"; '
                                                'echo "$JOBPLANE_CHECKPOINT_FILE"'])
        return await stream.reports_until("1", FINISHED), await stream.reports_until("2", FINISHED)

    resumed, fresh = with_agent(work_dir, scenario)
    assert states(resumed) == [{"i": 3}]  # it started after step 2
    resume, path = fresh[-1].finished.stdout_tail.splitlines()
    assert resume == "unset"
    assert Path(path).name == "checkpoint.json"
    assert Path(path).parent.parent == Path(default_state_dir(str(work_dir), "a1"))


def test_a_half_written_checkpoint_file_is_not_streamed(work_dir):
    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        # A valid state, then one caught half-written as the task ends: the agent's last
        # look at the file finds the half, and keeps the valid state as the last word.
        stream.assign("1", command=["sh", "-c", f'printf \'{{"i": 1}}\' >"${CHECKPOINT_FILE_ENV}"; '
                                                f'printf \'{{"i": \' >"${CHECKPOINT_FILE_ENV}"'])
        stream.assign("2", command=["sh", "-c", f'printf \'{{"i": \' >"${CHECKPOINT_FILE_ENV}"'])
        return await stream.reports_until("1", FINISHED), await stream.reports_until("2", FINISHED)

    overwritten, only_half = with_agent(work_dir, scenario)
    assert states(overwritten) in ([], [{"i": 1}])  # the valid state, if the poll caught it
    assert states(only_half) == []


def test_a_python_task_checkpoints_through_its_context_and_resumes(work_dir):
    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("1", python="ckpt_tasks:count", args_json='{"n": 4}',
                      checkpoint_json='{"i": 1}')
        return await stream.reports_until("1", FINISHED)

    reports = with_agent(work_dir, scenario)
    result = json.loads(reports[-1].finished.result_json)
    assert result == {"resumed": {"i": 1}, "who": ["1", "j1", 1], "env": '{"i": 1}'}
    seen = [state["i"] for state in states(reports)]
    # Checkpoints queued together may go out as the latest alone; never out of order.
    assert seen == sorted(seen) and seen[-1] == 4 and set(seen) <= {2, 3, 4}
    assert report_kind(reports[-2]) == CHECKPOINT


def test_an_adopted_command_is_watched_for_checkpoints_too(work_dir):
    attempt_dir = Path(default_state_dir(str(work_dir), "a1")) / "7.1"
    script = ('F=$JOBPLANE_CHECKPOINT_FILE; printf \'{"i": 1}\' >"$F"; '
              'while [ ! -e go ]; do sleep 0.02; done; '
              'printf \'{"i": 2}\' >"$F.tmp"; mv "$F.tmp" "$F"')
    start_and_crash(attempt_dir, script, cwd=work_dir)

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        await stream.first(checkpoint_of("7", {"i": 1}))
        (work_dir / "go").touch()
        return stream.hello, await stream.reports_until("7", FINISHED)

    hello, reports = with_agent(work_dir, scenario)
    assert [(ref.task_id, ref.attempt) for ref in hello.running] == [("7", 1)]
    assert states(reports) == [{"i": 1}, {"i": 2}]
    assert reports[-1].finished.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED


def test_the_watcher_reports_a_valid_state_and_skips_a_half_written_one(tmp_path):
    path = tmp_path / "checkpoint.json"

    async def main() -> list[str]:
        reported: list[str] = []
        arrived = asyncio.Event()
        watcher = CheckpointFiles(lambda key, text: (reported.append(text), arrived.set()),
                                  interval=0.01)
        polling = asyncio.create_task(watcher.run())
        watcher.watch(("1", 1), str(path))
        path.write_text('{"i": 1}')
        await asyncio.wait_for(arrived.wait(), DEADLINE)
        path.write_text('{"i": ')  # the task is still writing
        await watcher.finish(("1", 1))
        polling.cancel()
        return reported

    assert asyncio.run(main()) == ['{"i": 1}']


# Starts a command the way an agent does, in the agent's state directory, then dies.
RUNNER = textwrap.dedent("""
    import asyncio, sys
    from jobplane.agent.commands import CommandSpec, run_command
    asyncio.run(run_command(CommandSpec(sys.argv[3:], cwd=sys.argv[1], attempt_dir=sys.argv[2])))
""")


def start_and_crash(attempt_dir: Path, script: str, cwd: Path) -> None:
    """Start `script` as an earlier agent process would, then kill -9 that process."""
    env = {**os.environ, CHECKPOINT_FILE_ENV: str(attempt_dir / "checkpoint.json")}
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(cwd), str(attempt_dir),
                               "sh", "-c", script], env=env)
    wait_until(lambda: (attempt_dir / "checkpoint.json").exists(), 30, "the first checkpoint")
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
