"""The slurm adapter's own decisions, with stand-ins for Slurm's commands where the real cluster
cannot be made to do it on cue (forget a job, refuse one, answer in a given order). The real
thing is tested in tests/system/test_slurm.py.

Each stand-in logs its arguments and plays its numbered answer (`squeue.2.out`, `.err`, `.rc`)
or, past the numbered ones, its default (`squeue.out`, ...)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jobplane.agent import slurm
from jobplane.agent.results import Outcome, StopRequest
from jobplane.agent.slurm import MISSING_LIMIT, SlurmQueue
from jobplane.v1 import job_pb2

STUB = """#!/bin/sh
d={directory}; name=$(basename "$0")
echo "$*" >>"$d/$name.calls"
n=$(wc -l <"$d/$name.calls")
f="$d/$name.$n"; [ -e "$f.out" ] || [ -e "$f.rc" ] || f="$d/$name"
[ -e "$f.err" ] && cat "$f.err" >&2
[ -e "$f.out" ] && cat "$f.out"
exit $(cat "$f.rc" 2>/dev/null || echo 0)
"""

PENDING = "41|41|N/A|PENDING|Priority|0|0|debug||\n"
RUNNING = "41|41|N/A|RUNNING|None|0|0|debug|node7|\n"
FAILED = "41|41|N/A|FAILED|NonZeroExitCode|512|0|debug|node7|\n"


class Slurm:
    """Stand-ins for sbatch, squeue, sacct and scancel, first on the PATH."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        for name in ("sbatch", "squeue", "sacct", "scancel"):
            stub = directory / name
            stub.write_text(STUB.format(directory=directory))
            stub.chmod(0o755)
        self.answer("sbatch", out="41\n")

    def answer(self, name: str, call: int | None = None, *, out: str = "", err: str = "", rc: int = 0) -> None:
        base = self.dir / (name if call is None else f"{name}.{call}")
        Path(f"{base}.out").write_text(out)
        Path(f"{base}.err").write_text(err)
        Path(f"{base}.rc").write_text(str(rc))

    def calls(self, name: str) -> list[str]:
        path = self.dir / f"{name}.calls"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def stubs(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    return Slurm(tmp_path)


def run(stubs: Slurm, *, statuses: list | None = None, stop_after: float = 0.0):
    return asyncio.run(_run(stubs, statuses, stop_after))


async def _run(stubs: Slurm, statuses: list | None, stop_after: float):
    queue = SlurmQueue(interval=0.05, kill_grace=0.5)
    stop = asyncio.get_running_loop().create_future()
    if stop_after:
        asyncio.get_running_loop().call_later(stop_after, stop.set_result, StopRequest.cancel("user"))
    env = {"PATH": f"{stubs.dir}:/usr/bin:/bin"}
    return await queue.run(job_pb2.SlurmSpec(wrap="true"), name="t", comment="", env=env,
                           cwd=str(stubs.dir), stop=stop, on_start=lambda started: None,
                           on_status=(statuses if statuses is not None else []).append)


def test_changes_are_reported_once_and_the_end_with_its_exit_code_and_output(stubs):
    for call, out in enumerate([PENDING, PENDING, RUNNING], start=1):
        stubs.answer("squeue", call, out=out)
    stubs.answer("squeue", out=FAILED)
    (stubs.dir / "slurm-41.out").write_text("x" * 5000 + "last line\n")
    statuses: list = []
    result = run(stubs, statuses=statuses)

    assert [s["State"] for s in statuses] == ["PENDING", "RUNNING"]
    assert (result.outcome, result.exit_code, result.raw["State"]) == (Outcome.FAILED, 2, "FAILED")
    assert result.error == "Slurm job 41 ended FAILED, exit code 2, reason NonZeroExitCode"
    assert result.stdout_tail.endswith("last line\n") and len(result.stdout_tail) == 4096
    assert stubs.calls("sacct") == []  # squeue knew it all along


def test_a_job_slurmctld_has_forgotten_is_read_from_sacct(stubs):
    stubs.answer("squeue", err="slurm_load_jobs error: Invalid job id specified\n", rc=1)
    stubs.answer("sacct", out="41|41|COMPLETED|None|0:0|0:0|debug|node7\n")
    result = run(stubs)

    assert (result.outcome, result.exit_code, result.raw["State"]) == (Outcome.SUCCEEDED, 0, "COMPLETED")
    assert stubs.calls("sacct")[0].split()[:4] == ["--noheader", "--parsable2", "--allocations", "--jobs=41"]


def test_a_job_neither_squeue_nor_sacct_knows_is_lost_after_a_few_polls(stubs):
    result = run(stubs)  # both print nothing
    assert (result.outcome, result.raw["state"]) == (Outcome.FAILED, "slurm_lost")
    assert "neither squeue nor sacct lists it" in result.error
    assert len(stubs.calls("squeue")) == MISSING_LIMIT


def test_sbatch_refusing_the_job_fails_the_attempt_in_its_words(stubs):
    stubs.answer("sbatch", err="sbatch: error: invalid partition specified: nope\n", rc=1)
    result = run(stubs)
    assert (result.outcome, result.raw) == (Outcome.FAILED, {"state": "submit_failed"})
    assert "invalid partition specified: nope" in result.error
    assert stubs.calls("squeue") == []


def test_a_stop_scancels_and_waits_for_slurm_to_show_the_end(stubs):
    stubs.answer("squeue", out=RUNNING)
    stubs.answer("scancel", out="")
    stubs.dir.joinpath("scancel").write_text(  # scancel makes squeue answer CANCELLED from then on
        stubs.dir.joinpath("scancel").read_text().replace(
            'echo "$*"', f'printf "41|41|N/A|CANCELLED|None|15|0|debug|node7|\\n" >"$d/squeue.out"; echo "$*"'))
    result = run(stubs, stop_after=0.3)

    assert stubs.calls("scancel") == ["41"]
    assert (result.outcome, result.raw["state"], result.raw["State"]) == (Outcome.CANCELLED, "cancelled", "CANCELLED")


def test_failing_polls_are_tolerated_for_a_while_then_the_job_is_given_up(stubs, monkeypatch):
    monkeypatch.setattr(slurm, "POLL_GIVE_UP_SECONDS", 0.3)
    stubs.answer("squeue", err="squeue: error: Unable to contact slurm controller (connect failure)\n", rc=1)
    result = run(stubs)

    assert (result.outcome, result.raw["state"]) == (Outcome.FAILED, "poll_failed")
    assert "Unable to contact slurm controller" in result.error
    assert len(stubs.calls("squeue")) > slurm.POLL_RETRIES
    assert stubs.calls("scancel") == ["41"]  # not left running unseen
