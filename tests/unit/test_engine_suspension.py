"""Suspension in the engine: a suspended attempt is never taken for overdue or past its timeout
while it is paused, and its checks count on from where they stopped once it is resumed; a
requeued attempt's end queues the task again, held, without using up an attempt."""

from __future__ import annotations

import pytest
from support_engine import assigned, cmd, engine, provider

from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import (
    Hello, JobSpec, JobState, Outcome, Report, ReportKind, Status, TaskSpec, TaskState)
from jobplane.server.errors import FailedPrecondition


def assigned_to_a(e, spec, name="job"):
    """Submit a one-task job to provider "a", assigned there but not known to have started; (job, task, conn)."""
    conn = provider(e, "a", slots=1)
    job_spec = JobSpec(name, tasks=(spec,))
    job = e.submit(job_spec, extract_tasks(job_spec, max_tasks=10, default_max_attempts=1))
    e.take_changes()
    task = next(iter(e.tasks.values()))
    assert task.state == TaskState.ASSIGNED
    return job, task, conn


def running(e, spec, name="job"):
    """Submit a one-task job to provider "a" and start it; (job, task, connection)."""
    job, task, conn = assigned_to_a(e, spec, name)
    e.report("a", conn, [Report(task.id, 1, ReportKind.STARTED)])
    e.take_changes()
    return job, task, conn


def tick(e, now):
    e.begin(now)
    e.providers["a"].last_seen = now  # it heartbeats all along: only the task is paused
    e.supervise()
    return e.take_changes()


def test_a_suspended_attempt_is_neither_overdue_nor_terminated_and_its_checks_resume_shifted():
    e = engine(now=100.0)
    job, task, _ = running(e, cmd("slow", expected_seconds=10, timeout_seconds=20))
    e.begin(105.0)
    e.hold_job(job.id, "maintenance", "alice", "suspend")
    cs = e.take_changes()
    assert [(s.task_id, s.resume) for s in cs.suspends["a"]] == [(task.id, False)]
    assert task.status == Status.ON_HOLD and "suspended" in task.reason and job.status == Status.ON_HOLD
    cs = tick(e, 200.0)  # far past its expected time and its hard timeout (20 + the terminate grace)
    assert not cs.probes and not cs.stops and task.state == TaskState.RUNNING
    e.release_job(job.id)
    cs = e.take_changes()
    assert [(s.task_id, s.resume) for s in cs.suspends["a"]] == [(task.id, True)]
    assert task.status == Status.RUNNING and job.status == Status.RUNNING
    assert not tick(e, 204.0).probes  # it ran 5 s before the pause; 5 more to its expected 10
    assert tick(e, 206.0).probes  # now it is overdue: the agent is asked how it is doing


def test_a_suspended_attempt_is_terminated_at_its_timeout_counted_without_the_pause():
    e = engine(now=100.0, terminate_grace=5.0)
    job, task, _ = running(e, cmd("stuck", timeout_seconds=20))
    e.begin(110.0)
    e.hold_job(job.id, "", "alice", "suspend")
    e.take_changes()
    e.begin(300.0)
    e.release_job(job.id)
    e.take_changes()
    assert not tick(e, 314.0).stops  # 10 s ran before, 14 since: 24 < 20 + 5
    assert tick(e, 315.5).stops["a"][0].task_id == task.id


def test_a_requeued_attempt_is_queued_again_held_and_does_not_use_up_an_attempt():
    e = engine()
    job, task, conn = running(e, cmd("long", max_attempts=1))
    e.report("a", conn, [Report(task.id, 1, ReportKind.CHECKPOINT, checkpoint_json='{"i": 7}')])
    e.hold_job(job.id, "freeze", "bob", "requeue")
    cs = e.take_changes()
    assert cs.stops["a"][0].task_id == task.id and "requeued" in cs.stops["a"][0].reason
    assert task.state == TaskState.RUNNING and task.status == Status.ON_HOLD
    e.report("a", conn, [Report(task.id, 1, ReportKind.FINISHED, Outcome.CANCELLED)])
    e.take_changes()
    assert task.state == TaskState.QUEUED and task.status == Status.ON_HOLD and task.tries == 0
    assert job.status == Status.ON_HOLD and job.state == JobState.RUNNING
    e.release_job(job.id)
    cs = e.take_changes()
    (item,) = cs.assignments["a"]
    assert item.attempt == 2 and task.current.resumed_from == '{"i": 7}'
    e.report("a", conn, [Report(task.id, 2, ReportKind.FINISHED, Outcome.SUCCEEDED, exit_code=0)])
    e.take_changes()
    assert job.state == JobState.SUCCEEDED


def test_an_attempt_that_ends_by_itself_while_being_requeued_counts_as_usual():
    e = engine()
    job, task, conn = running(e, cmd("quick"))
    e.hold_job(job.id, "", "bob", "requeue")
    e.take_changes()
    e.report("a", conn, [Report(task.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, exit_code=0)])
    e.take_changes()
    assert task.state == TaskState.SUCCEEDED and job.state == JobState.SUCCEEDED


def test_only_command_tasks_can_be_suspended_and_nothing_changes_when_one_cannot():
    e = engine()
    job, task, _ = running(e, TaskSpec("py", python="os:getcwd"))
    with pytest.raises(FailedPrecondition, match="only command tasks can be suspended.*--requeue"):
        e.hold_job(job.id, "", "alice", "suspend")
    assert job.hold == "" and task.status == Status.RUNNING and not e.take_changes().suspends


@pytest.mark.parametrize("started", [True, False], ids=["running", "assigned"])
def test_a_provider_that_reconnects_holding_a_suspended_attempt_is_told_again(started):
    e = engine()
    job, task, conn = (running if started else assigned_to_a)(e, cmd("long"))
    e.hold_job(job.id, "night", "alice", "suspend")
    e.take_changes()
    e.disconnect("a", conn)
    e.take_changes()
    e.connect(Hello("a", {}, {}, 1, 1.0, ((task.id, 1),)), conn_id=conn + 1)
    cs = e.take_changes()
    assert [(s.task_id, s.attempt, s.resume) for s in cs.suspends["a"]] == [(task.id, 1, False)]
    if started:
        assert task.status == Status.ON_HOLD and task.current is not None


def test_a_task_suspended_while_its_start_report_is_on_its_way_stays_held_when_it_arrives():
    e = engine(now=100.0, terminate_grace=5.0)
    job, task, conn = assigned_to_a(e, cmd("slow", timeout_seconds=20))
    e.hold_job(job.id, "maintenance", "alice", "suspend")
    cs = e.take_changes()
    assert [(s.task_id, s.resume) for s in cs.suspends["a"]] == [(task.id, False)] and not cs.stops
    assert task.status == Status.ON_HOLD and task.suspended["mode"] == "suspend"
    e.begin(110.0)
    e.report("a", conn, [Report(task.id, 1, ReportKind.STARTED)])
    e.take_changes()
    assert task.state == TaskState.RUNNING and task.status == Status.ON_HOLD and "suspended" in task.reason
    assert job.status == Status.ON_HOLD
    cs = tick(e, 300.0)  # far past its expected time and its timeout: it is paused, not watched
    assert not cs.stops and task.state == TaskState.RUNNING
    e.begin(300.0)
    e.release_job(job.id)
    cs = e.take_changes()
    assert [(s.task_id, s.resume) for s in cs.suspends["a"]] == [(task.id, True)]
    assert task.status == Status.RUNNING
    assert not tick(e, 324.0).stops  # 20 s timeout + 5 s grace, counted from the release
    assert tick(e, 326.0).stops["a"][0].task_id == task.id


def test_a_task_released_before_its_start_report_arrives_runs_as_usual():
    e = engine(now=100.0)
    job, task, conn = assigned_to_a(e, cmd("slow", expected_seconds=10))
    e.hold_job(job.id, "", "alice", "suspend")
    e.take_changes()
    e.release_job(job.id)
    cs = e.take_changes()
    assert [(s.task_id, s.resume) for s in cs.suspends["a"]] == [(task.id, True)]
    assert task.state == TaskState.ASSIGNED and task.status != Status.ON_HOLD and not task.suspended
    e.begin(120.0)
    e.report("a", conn, [Report(task.id, 1, ReportKind.STARTED)])
    e.take_changes()
    assert task.state == TaskState.RUNNING and task.status == Status.RUNNING
    assert tick(e, 131.0).probes  # watched from its start


def test_a_suspended_assigned_task_of_a_lost_provider_continues_elsewhere_only_once_released():
    e = engine()
    job, task, conn = assigned_to_a(e, cmd("t"))
    e.hold_job(job.id, "night", "alice", "suspend")
    e.take_changes()
    e.disconnect("a", conn)
    (_, timer), = e.take_changes().timers
    timer(e)  # the reconnect grace is over: "a" is lost
    e.take_changes()
    provider(e, "b", slots=1)
    cs = e.take_changes()
    assert not cs.assignments and task.current is None and not task.suspended
    assert task.state == TaskState.QUEUED and task.status == Status.ON_HOLD and "night" in task.reason
    e.release_job(job.id)
    assert assigned(e.take_changes()) == {"b": [("t", 2)]}


def test_requeue_mode_still_stops_an_assigned_task():
    e = engine()
    job, task, conn = assigned_to_a(e, cmd("t"))
    e.hold_job(job.id, "", "bob", "requeue")
    cs = e.take_changes()
    assert cs.stops["a"][0].task_id == task.id and not cs.suspends
