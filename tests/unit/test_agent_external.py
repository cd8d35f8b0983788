"""The external adapter: a fake outside scheduler (tests/support_scheduler.py, a Python script
keeping its state in files) submitted to, polled and cancelled through real subprocesses, alone
and through the Agent."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from support import pid_alive
from support_scheduler import ABEND, AWAITING, ENDED, EXECUTING, FAIL, JCL_ERROR, JOB_ID, Scheduler
from support_standin import DEADLINE, FINISHED, STARTED, report_kind, with_agent

from jobplane.agent.external import POLL_RETRIES, run_external
from jobplane.agent.results import AttemptResult, Outcome, Started, StopRequest, request_stop
from jobplane.v1 import job_pb2, provider_pb2

STATUS = "status"


class Run:
    """What one run_external call reported, and how it ended."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, str]] = []
        self.started: list[Started] = []
        self.result: AttemptResult | None = None


def run(scheduler: Scheduler, spec: job_pb2.ExternalSpec | None = None, *,
        cancel_on: dict[str, str] | None = None, timeout: float = 0.0,
        during=None) -> Run:
    """Run the scheduler's job to its end; cancel it when it reports `cancel_on`, or run the
    coroutine `during(stop)` alongside."""
    seen = Run()

    async def main() -> None:
        stop: asyncio.Future[StopRequest] = asyncio.get_running_loop().create_future()

        def on_status(raw: dict[str, str]) -> None:
            seen.statuses.append(raw)
            if raw == cancel_on:
                request_stop(stop, StopRequest.cancel("cancelled by the user"))

        env = {**os.environ, "JOBPLANE_TASK_ID": "t-7"}
        running = run_external(spec or scheduler.spec(), env=env, cwd=str(scheduler.state),
                               stop=stop, on_start=seen.started.append, on_status=on_status,
                               kill_grace=1.0, timeout=timeout)
        side = [during(stop)] if during is not None else []
        seen.result, *_ = await asyncio.wait_for(asyncio.gather(running, *side), DEADLINE)

    asyncio.run(main())
    return seen


def test_a_mainframe_job_walks_through_its_statuses_and_succeeds(tmp_path):
    scheduler = Scheduler(tmp_path, [AWAITING, AWAITING, EXECUTING, ENDED])
    seen = run(scheduler)
    assert seen.statuses == [AWAITING, EXECUTING]  # each change once, in order
    result = seen.result
    assert (result.outcome, result.exit_code, result.error) == (Outcome.SUCCEEDED, 0, "")
    assert result.raw == {"queue": "PRINT", "status": "CC 0000", "done": "true",
                          "exit_code": "0", "state": "external_done"}
    assert [job_id for _, job_id in scheduler.polls()] == [JOB_ID] * 4
    (started,) = seen.started
    assert started.pgid > 0 and started.output_bytes() == 4  # progress: the polls so far
    assert json.loads(scheduler.read("submitted")) == {"task": "t-7", "cwd": str(tmp_path)}


def test_polls_are_the_poll_interval_apart(tmp_path):
    scheduler = Scheduler(tmp_path, [AWAITING, EXECUTING, EXECUTING, ENDED])
    run(scheduler, scheduler.spec(interval=0.05))
    times = [at for at, _ in scheduler.polls()]
    assert len(times) == 4
    assert all(later - earlier >= 0.05 for earlier, later in zip(times, times[1:]))


@pytest.mark.parametrize("end, error", [
    (ABEND, "external job failed: exit code 12 (queue=PRINT, status=ABEND, specific=S0C7)"),
    (JCL_ERROR, "external job failed: JCL ERROR (queue=PRINT, status=JCL ERROR)"),
])
def test_a_failed_job_fails_with_its_raw_properties(tmp_path, end, error):
    seen = run(Scheduler(tmp_path, [EXECUTING, end]))
    assert seen.statuses == [EXECUTING]
    assert (seen.result.outcome, seen.result.error) == (Outcome.FAILED, error)
    assert seen.result.exit_code == end.get("exit_code")
    expected = {key: value if isinstance(value, str) else json.dumps(value)
                for key, value in end.items()}
    assert seen.result.raw == {**expected, "state": "external_done"}


def test_non_string_properties_arrive_as_json_text(tmp_path):
    seen = run(Scheduler(tmp_path, [{"step": 3, "ratio": 0.5, "held": False, "tags": ["a"],
                                     "owner": None}, ENDED]))
    assert seen.statuses == [{"step": "3", "ratio": "0.5", "held": "false", "tags": '["a"]',
                              "owner": "null"}]


def test_a_cancel_runs_the_cancel_command_with_the_id(tmp_path):
    scheduler = Scheduler(tmp_path, [AWAITING, EXECUTING])  # runs until cancelled
    seen = run(scheduler, cancel_on=EXECUTING)
    assert scheduler.read("cancelled") == JOB_ID
    result = seen.result
    assert (result.outcome, result.error) == (Outcome.CANCELLED, "cancelled by the user")
    assert result.raw == {**EXECUTING, "state": "cancelled"}


def test_a_stop_during_a_hanging_poll_kills_it_and_cancels_the_job(tmp_path):
    scheduler = Scheduler(tmp_path, [EXECUTING, {"__sleep__": 300}])

    async def stop_when_the_poll_hangs(stop: asyncio.Future[StopRequest]) -> None:
        while scheduler.read("sleeping") is None:  # the hanging poll says when it sleeps
            await asyncio.sleep(0.01)
        request_stop(stop, StopRequest.cancel("cancelled by the user"))

    seen = run(scheduler, during=stop_when_the_poll_hangs)
    assert not pid_alive(int(scheduler.read("sleeping")))
    assert scheduler.read("cancelled") == JOB_ID
    assert (seen.result.outcome, seen.result.error) == (Outcome.CANCELLED, "cancelled by the user")
    assert seen.result.raw == {**EXECUTING, "state": "cancelled"}


def test_a_job_past_its_timeout_is_cancelled_and_timed_out(tmp_path):
    scheduler = Scheduler(tmp_path, [EXECUTING])
    seen = run(scheduler, timeout=0.3)
    assert scheduler.read("cancelled") == JOB_ID
    assert (seen.result.outcome, seen.result.error) == (Outcome.TIMED_OUT, "timed out after 0.3 s")
    # The timeout may come before the first poll has answered (a slow machine): no properties.
    assert seen.result.raw in ({**EXECUTING, "state": "timed_out"}, {"state": "timed_out"})


def test_a_failing_cancel_command_is_named_in_the_error(tmp_path):
    scheduler = Scheduler(tmp_path, [EXECUTING])
    seen = run(scheduler, scheduler.spec(cancel=["false"]), cancel_on=EXECUTING)
    assert seen.result.outcome == Outcome.CANCELLED
    assert seen.result.error == ("cancelled by the user; external cancel of job JOB00042 "
                                 "failed: 'false' exited with code 1")


@pytest.mark.parametrize("submit, error", [
    ({"__stdout__": "Job submitted."}, "printed no JSON object: 'Job submitted.'"),
    ({"__stdout__": "[1, 2]"}, "printed JSON that is not an object: '[1, 2]'"),
    ({"name": "PAYROLL"}, 'printed no "id" (a string or number) in its JSON object'),
    ({"id": ""}, 'printed no "id"'),
    ({"__stderr__": "queue closed\n", "__exit__": 2}, "exited with code 2: queue closed"),
])
def test_a_submit_that_does_not_give_an_id_fails_clearly(tmp_path, submit, error):
    scheduler = Scheduler(tmp_path, [ENDED], submit=submit)
    seen = run(scheduler)
    assert seen.result.outcome == Outcome.FAILED
    assert seen.result.error.startswith("external submit failed: ")
    assert error in seen.result.error
    assert seen.result.raw == {"state": "submit_failed"}
    assert seen.started == [] and not scheduler.polled()


def test_a_numeric_id_is_passed_on_as_text(tmp_path):
    scheduler = Scheduler(tmp_path, [ENDED], submit={"id": 42})
    assert run(scheduler).result.outcome == Outcome.SUCCEEDED
    assert [job_id for _, job_id in scheduler.polls()] == ["42"]


@pytest.mark.parametrize("submit, error", [
    ([], "external.submit is empty"),
    (["/nonexistent/submit"], "cannot start '/nonexistent/submit': No such file or directory"),
])
def test_a_submit_that_cannot_run_fails_clearly(tmp_path, submit, error):
    scheduler = Scheduler(tmp_path, [ENDED])
    seen = run(scheduler, scheduler.spec(submit=submit))
    assert seen.result.outcome == Outcome.FAILED
    assert error in seen.result.error


@pytest.mark.parametrize("failure, error", [
    (FAIL, "exited with code 3: scheduler unreachable"),
    ({"__stdout__": "<html>502 Bad Gateway</html>"}, "printed no JSON object"),
])
def test_polls_failing_again_and_again_fail_the_attempt(tmp_path, failure, error):
    scheduler = Scheduler(tmp_path, [EXECUTING, failure])
    seen = run(scheduler)
    failures = POLL_RETRIES + 1
    assert len(scheduler.polls()) == 1 + failures  # retried, then given up
    assert seen.result.outcome == Outcome.FAILED
    assert seen.result.error.startswith(f"external poll failed {failures} times in a row, last: ")
    assert error in seen.result.error
    assert seen.result.raw == {**EXECUTING, "state": "poll_failed"}


def test_a_few_failed_polls_in_a_row_are_retried(tmp_path):
    scheduler = Scheduler(tmp_path, [EXECUTING, *[FAIL] * POLL_RETRIES, EXECUTING, FAIL, ENDED])
    seen = run(scheduler)
    assert seen.result.outcome == Outcome.SUCCEEDED
    assert seen.statuses == [EXECUTING]  # a failed poll does not change the properties


def test_the_agent_reports_status_changes_before_the_end(tmp_path):
    scheduler = Scheduler(tmp_path / "sched", [AWAITING, EXECUTING, EXECUTING, ENDED])

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("x", external=scheduler.spec())
        return await stream.reports_until("x", FINISHED)

    reports = with_agent(tmp_path, scenario)
    kinds = [report_kind(report) for report in reports]
    assert kinds[0] == STARTED and kinds[-1] == FINISHED
    statuses = [dict(report.status.raw) for report in reports if report_kind(report) == STATUS]
    assert statuses and set(kinds[1:-1]) == {STATUS}
    # Statuses queued together may go as the latest only, but never out of order.
    assert statuses in ([AWAITING, EXECUTING], [EXECUTING])
    assert reports[-1].finished.outcome == provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert reports[-1].finished.raw["state"] == "external_done"
    assert json.loads(scheduler.read("submitted")) == {"task": "x", "cwd": str(tmp_path)}


def test_the_agent_refuses_a_task_with_both_command_and_external(tmp_path):
    scheduler = Scheduler(tmp_path / "sched", [ENDED])

    async def scenario(service, agent, running):
        stream = await service.next_stream()
        stream.auto_ack = True
        stream.assign("x", command=["true"], external=scheduler.spec())
        return (await stream.report("x", FINISHED))[1]

    report = with_agent(tmp_path, scenario)
    assert report.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_FAILED
    assert report.finished.error == "the task spec must set exactly one of command, python, external and slurm"
    assert not scheduler.read("submitted")
