"""Adopting external attempts after an agent crash: the job id recorded in the state directory
as soon as the submit returns, and a new agent process polling it without submitting again.
And adopting the job of an earlier attempt of the task that the server hands on: followed from
the assignment's job id, never submitted; the old attempt told to leave it running.

The crash itself (kill -9 of a real agent) is in tests/integration/test_supervision.py; here a
record stands for what the dead process left, and a stand-in server watches the new one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from support_scheduler import AWAITING, ENDED, EXECUTING, JOB_ID, Scheduler
from support_standin import FINISHED, STARTED, report_kind, with_agent

from jobplane.agent.external_record import (ExternalRecord, SavedSpec, read_record,
                                            write_record)
from jobplane.agent.statedir import StateDir
from jobplane.v1 import job_pb2, provider_pb2

STATUS = "status"
RECORDED = "JOB-RECORDED"


def state_root(work_dir: Path) -> Path:
    return work_dir / "state"


def leave_record(work_dir: Path, scheduler: Scheduler, *, job_id: str | None = RECORDED,
                 timeout: float = 0.0, started_wall: float = 0.0) -> Path:
    """Write the record an agent process that died would have left for task x attempt 1."""
    attempt_dir = Path(StateDir(str(state_root(work_dir))).attempt_dir(("x", 1)))
    record = ExternalRecord(attempt_dir, SavedSpec.of(scheduler.spec()),
                            task_env={"JOBPLANE_TASK_ID": "x"}, cwd=str(work_dir),
                            timeout=timeout, started_wall=started_wall or time.time(),
                            job_id=job_id, submit_pid=1)
    write_record(record)
    return attempt_dir


def held(hello: provider_pb2.Hello) -> list[tuple[str, int]]:
    return [(ref.task_id, ref.attempt) for ref in hello.running]


def test_the_record_is_written_before_the_submit_and_gets_the_id_as_it_returns(tmp_path):
    scheduler = Scheduler(tmp_path / "sched", [EXECUTING])
    go = tmp_path / "go"
    submit = ["sh", "-c", f'while [ ! -e {go} ]; do sleep 0.02; done; echo \'{{"id": "{JOB_ID}"}}\'']
    record_file = state_root(tmp_path) / "x.1" / "external.json"

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("x", external=scheduler.spec(submit=submit), env={"MODE": "test"})
        while not record_file.exists():
            await asyncio.sleep(0.01)
        before = read_record(record_file.parent)
        go.touch()
        await stream.report("x", STARTED)  # told once the id is recorded
        return before, read_record(record_file.parent), record_file.stat().st_mode & 0o777

    before, after, mode = with_agent(tmp_path, scenario, state_dir=str(state_root(tmp_path)))
    assert before.job_id is None and after.job_id == JOB_ID
    assert after.spec.poll == tuple(scheduler.spec().poll)
    assert after.task_env["MODE"] == "test" and after.task_env["JOBPLANE_TASK_ID"] == "x"
    assert "PATH" not in after.task_env, "the agent's own environment is not recorded"
    assert mode == 0o600, "the task's environment may hold secrets"


def test_a_restarted_agent_polls_the_recorded_job_and_never_submits_it(tmp_path):
    scheduler = Scheduler(tmp_path / "sched", [EXECUTING, EXECUTING, ENDED])
    attempt_dir = leave_record(tmp_path, scheduler)

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        reports = await stream.reports_until("x", FINISHED)
        while attempt_dir.exists():  # discarded once the server has the result
            await asyncio.sleep(0.01)
        return stream.hello, reports

    hello, reports = with_agent(tmp_path, scenario, state_dir=str(state_root(tmp_path)))
    assert held(hello) == [("x", 1)], "the hello claims the adopted attempt"
    assert [report_kind(r) for r in reports] == [STARTED, STATUS, FINISHED]
    assert dict(reports[1].status.raw) == EXECUTING
    assert reports[-1].finished.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert scheduler.read("submitted") is None, "no second submit"
    assert [job_id for _, job_id in scheduler.polls()] == [RECORDED] * 3


def test_an_attempt_whose_submit_was_cut_short_fails_without_a_second_submit(tmp_path):
    scheduler = Scheduler(tmp_path / "sched", [ENDED])
    leave_record(tmp_path, scheduler, job_id=None)

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        return stream.hello, await stream.reports_until("x", FINISHED)

    hello, reports = with_agent(tmp_path, scenario, state_dir=str(state_root(tmp_path)))
    assert held(hello) == [("x", 1)]
    (finished,) = reports
    assert finished.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_FAILED
    assert finished.finished.raw["state"] == "submit_interrupted"
    assert "before it returned a job id" in finished.finished.error and "not submitted again" in finished.finished.error
    assert scheduler.read("submitted") is None and not scheduler.polled()


def test_an_adopted_job_keeps_its_original_deadline(tmp_path):
    scheduler = Scheduler(tmp_path / "sched", [EXECUTING])
    leave_record(tmp_path, scheduler, timeout=1.0, started_wall=time.time() - 60)

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        return (await stream.report("x", FINISHED))[1]

    finished = with_agent(tmp_path, scenario, state_dir=str(state_root(tmp_path)))
    assert finished.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_TIMED_OUT
    assert scheduler.read("cancelled") == RECORDED


def test_the_state_dir_keeps_external_attempts_and_drops_unreadable_records(tmp_path):
    scheduler = Scheduler(tmp_path / "sched", [ENDED])
    submitted = leave_record(tmp_path, scheduler)
    state = StateDir(str(state_root(tmp_path)))
    cut_short = Path(state.attempt_dir(("y", 2)))
    write_record(ExternalRecord(cut_short, SavedSpec.of(scheduler.spec())))
    garbled = Path(state.attempt_dir(("z", 1)))
    garbled.mkdir()
    (garbled / "external.json").write_text("{not json")
    state.lock()
    found = state.leftovers()
    assert sorted(found) == [("x", 1), ("y", 2)]
    assert found[("x", 1)].job_id == RECORDED and found[("y", 2)].job_id is None
    assert found[("x", 1)].attempt_dir == submitted
    assert not garbled.exists()


# Adopting the job of an earlier attempt, continued here from another agent (or handed on).

def adopt(stream, task_id: str, attempt: int, job_id: str, scheduler: Scheduler) -> None:
    """Assign attempt `attempt` of `task_id`, which follows `job_id` submitted by an earlier one."""
    stream.send(assign=provider_pb2.Assignments(assignments=[provider_pb2.Assignment(
        task_id=task_id, attempt=attempt, job_id="j1", task_name=task_id,
        spec=job_pb2.TaskSpec(external=scheduler.spec()), adopt_external_job_id=job_id)]))


def stop(stream, task_id: str, attempt: int, handed_on: str = "") -> None:
    stream.send(cancel=provider_pb2.Cancellations(attempts=[provider_pb2.AttemptRef(
        task_id=task_id, attempt=attempt, handed_on_external_job_id=handed_on)], reason="provider a0 drained"))


def test_an_attempt_that_adopts_a_job_records_and_follows_it_and_never_submits(tmp_path):
    scheduler = Scheduler(tmp_path / "sched", [EXECUTING, EXECUTING, ENDED])
    record_file = state_root(tmp_path) / "x.2" / "external.json"

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        adopt(stream, "x", 2, RECORDED, scheduler)
        _, started = await stream.report("x", STARTED)
        recorded = read_record(record_file.parent)  # before the first poll: a crash now is covered
        return started, recorded, await stream.reports_until("x", FINISHED)

    started, recorded, reports = with_agent(tmp_path, scenario, state_dir=str(state_root(tmp_path)))
    assert started.started.external_job_id == RECORDED, "the server hears which job it follows"
    assert recorded.job_id == RECORDED and recorded.spec.poll == tuple(scheduler.spec().poll)
    assert reports[-1].finished.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert scheduler.read("submitted") is None, "no second submit"
    assert [job_id for _, job_id in scheduler.polls()] == [RECORDED] * 3


def test_a_submitted_jobs_id_goes_to_the_server_with_started_and_status_reports(tmp_path):
    scheduler = Scheduler(tmp_path / "sched", [AWAITING, EXECUTING, ENDED])

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("x", external=scheduler.spec())
        return await stream.reports_until("x", FINISHED)

    reports = with_agent(tmp_path, scenario)
    assert [getattr(r, report_kind(r)).external_job_id for r in reports if report_kind(r) in (STARTED, STATUS)] == \
        [JOB_ID] * (len(reports) - 1)


@pytest.mark.parametrize("handed_on, cancelled", [(RECORDED, False), ("ANOTHER", True), ("", True)])
def test_a_stop_that_hands_the_job_on_leaves_it_running(tmp_path, handed_on, cancelled):
    scheduler = Scheduler(tmp_path / "sched", [EXECUTING])

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        adopt(stream, "x", 2, RECORDED, scheduler)
        await stream.report("x", STATUS)
        stop(stream, "x", 2, handed_on)
        return (await stream.report("x", FINISHED))[1]

    finished = with_agent(tmp_path, scenario)
    assert finished.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_CANCELLED
    if cancelled:
        assert scheduler.read("cancelled") == RECORDED
    else:
        assert scheduler.read("cancelled") is None, "another attempt follows it: not cancelled"
        assert finished.finished.error == f"provider a0 drained; external job {RECORDED} left running"


def test_a_stopping_agent_leaves_its_outside_jobs_running_with_their_records(tmp_path):
    # The server does not hand the attempt on (it cannot be reached): the agent stops
    # following the job, leaves it running and keeps its record for a new agent process; the
    # server hands the task on once it loses the agent, and the next attempt adopts the job.
    scheduler = Scheduler(tmp_path / "sched", [EXECUTING])

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("x", external=scheduler.spec())
        await stream.report("x", STATUS)
        await agent.stop()
        return [report_kind(report) for _, report in stream.seen]

    kinds = with_agent(tmp_path, scenario, state_dir=str(state_root(tmp_path)), kill_grace=0.2)
    assert FINISHED not in kinds
    assert scheduler.read("cancelled") is None
    left = StateDir(str(state_root(tmp_path))).leftovers()
    assert list(left) == [("x", 1)] and left[("x", 1)].job_id == JOB_ID
