"""Rerun of a finished job (domain/reopen.py), driven on the engine: which tasks run again, how
the job and its counts come back, and what is refused."""

import pytest
from support_engine import assigned, cmd, engine, provider, run_timers

from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.lifecycle import IllegalTransition
from jobplane.server.domain.changes import ChangeSet
from jobplane.server.domain.model import (
    EventKind, JobSpec, JobState, Lateness, Outcome, Report, ReportKind, Status, TaskState)
from jobplane.server.domain.reopen import chosen
from jobplane.server.domain.state import TaskRt
from jobplane.server.errors import FailedPrecondition

T = TaskState


def task(tid, state, *deps):
    return TaskRt(tid, 1, tid, f"t{tid}", f"t{tid}", cmd(f"t{tid}"), list(deps), 1, state)


def test_chosen_takes_failed_tasks_and_the_dependents_cancelled_because_of_them():
    tasks = [task(1, T.SUCCEEDED), task(2, T.FAILED, 1), task(3, T.CANCELLED, 2), task(4, T.CANCELLED, 3),
             task(5, T.CANCELLED), task(6, T.CANCELLED, 2, 5)]
    assert [t.id for t in chosen(tasks, failed_only=True)] == [2, 3, 4]  # 5 was cancelled on its own; 6 waits on it
    assert [t.id for t in chosen(tasks, failed_only=False)] == [2, 3, 4, 5, 6]


def test_chosen_leaves_a_failed_task_that_could_never_start():
    tasks = [task(1, T.CANCELLED), task(2, T.FAILED, 1)]  # 2 failed unstarted (its window closed)
    assert chosen(tasks, failed_only=True) == []


def run_to_failure(e, conn):
    """A job of `first` (fails) and `second` (after it): finished FAILED; its job and tasks as
    the store would load them."""
    spec = JobSpec("j", 0, {}, (cmd("first"), cmd("second", after=("first",))))
    job = e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    e.take_changes()
    first, second = (e.tasks[t] for t in job.task_ids)
    e.report("a", conn, [Report(first.id, 1, ReportKind.STARTED),
                         Report(first.id, 1, ReportKind.FINISHED, Outcome.FAILED, 1)])
    e.take_changes()
    assert job.state == JobState.FAILED and job.id not in e.jobs
    return job, [first, second]


def test_a_rerun_reopens_the_job_and_queues_the_failed_task_as_its_next_attempt():
    e = engine()
    conn = provider(e, "a", slots=2)
    job, tasks = run_to_failure(e, conn)
    assert job.counts["failure"] == 1 and job.counts["cancel"] == 1
    assert e.rerun_job(job, tasks, False, "alice") == [t.id for t in tasks]
    cs = e.take_changes()
    assert job.state == JobState.RUNNING and e.jobs[job.id] is job and job.end_time is None
    assert assigned(cs) == {"a": [("first", 2)]}
    assert [t.state for t in tasks] == [T.ASSIGNED, T.BLOCKED]
    assert job.counts["failure"] == 0 and job.counts["cancel"] == 0 and job.counts["not_ok"] == 0
    assert [ev.message for ev in cs.events if ev.kind == EventKind.JOB] == [
        "rerun by alice: 2 tasks run again as new attempts (first, second)"]
    first = tasks[0]
    e.report("a", conn, [Report(first.id, 2, ReportKind.STARTED),
                         Report(first.id, 2, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])
    assert assigned(e.take_changes()) == {"a": [("second", 1)]}


def test_a_job_that_has_not_finished_is_refused():
    e = engine()
    provider(e, "a", slots=2)
    spec = JobSpec("j", 0, {}, (cmd("t"),))
    job = e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    e.take_changes()
    with pytest.raises(FailedPrecondition, match=f"job {job.id} is still running; wait for it to end"):
        e.rerun_job(job, [e.tasks[t] for t in job.task_ids], False, "alice")


def test_a_rerun_right_after_a_cancel_starts_once_the_cancelled_attempt_has_stopped():
    e = engine()
    conn = provider(e, "a", slots=2)
    spec = JobSpec("j", 0, {}, (cmd("t"),))
    job = e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    e.take_changes()
    (live,) = [e.tasks[t] for t in job.task_ids]
    e.cancel_job(job.id, "stop")  # its attempt is closed by the agent's report, which has not come yet
    e.take_changes()
    assert job.state == JobState.CANCELLED and live.current is not None
    stored = TaskRt(live.id, job.id, 0, "t", "t", live.spec, [], 1, T.CANCELLED, attempt=1)  # as the store has it
    e.rerun_job(job, [stored], False, "alice")
    assert assigned(e.take_changes()) == {}  # not while attempt 1 may still run
    e.report("a", conn, [Report(live.id, 1, ReportKind.FINISHED, Outcome.CANCELLED)])  # late: it stopped
    assert assigned(e.take_changes()) == {"a": [("t", 2)]}


def test_a_task_whose_last_attempt_never_recorded_its_end_starts_once_its_provider_says_it_stopped():
    e = engine()
    conn = provider(e, "a", slots=2)
    job, tasks = run_to_failure(e, conn)
    e.rerun_job(job, tasks, False, "alice", unended={tasks[0].id: ("a", 1)})
    cs = e.take_changes()
    assert assigned(cs) == {} and [s[:2] for s in cs.stops["a"]] == [(tasks[0].id, 1)]
    assert tasks[0].reason.startswith("rerun by alice; it starts once attempt 1 on a has certainly stopped")
    e.report("a", conn, [Report(tasks[0].id, 1, ReportKind.FINISHED, Outcome.CANCELLED)])  # it confirms the stop
    assert assigned(e.take_changes()) == {"a": [("first", 2)]}


def test_only_a_rerun_takes_a_task_out_of_a_final_state():
    e = engine()
    conn = provider(e, "a", slots=2)
    job, tasks = run_to_failure(e, conn)
    with pytest.raises(IllegalTransition, match="from FAILED to ASSIGNED"):
        e.lifecycle.reopen(tasks[0], T.ASSIGNED, "no")


def test_a_rerun_past_the_first_runs_deadline_is_running_late_as_it_would_be_after_a_restart():
    e = engine()
    conn = provider(e, "a", slots=2)
    spec = JobSpec("j", 0, {}, (cmd("t"),), lateness=Lateness(max_runtime_seconds=10))
    job = e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    e.take_changes()
    (t,) = [e.tasks[i] for i in job.task_ids]
    e.report("a", conn, [Report(t.id, 1, ReportKind.STARTED), Report(t.id, 1, ReportKind.FINISHED, Outcome.FAILED, 1)])
    e.take_changes()
    run_timers(e, ChangeSet(), 100.0, 200.0)  # a while after it failed
    e.rerun_job(job, [t], False, "alice")
    cs = e.take_changes()
    run_timers(e, cs, 200.0, 200.0)
    assert job.late == "run" and job.status == Status.RUNNING_LATE
