"""Lateness through the engine: deadlines become LATE_TO_START / RUNNING_LATE events when
their timers fire, and only if the job or task is still not started / still running."""

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import (
    ExternalSpec, Hello, JobSpec, Lateness, Outcome, Report, ReportKind, Status, TaskSpec)


def engine():
    e = Engine(EngineConfig())
    e.begin(1000.0)
    return e


def submit(e, lateness=Lateness(), task_lateness=Lateness()):
    spec = JobSpec("j", tasks=(TaskSpec("t", command=("true",), lateness=task_lateness),),
                   wait_for_providers=True, lateness=lateness)
    return e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))


def fire(e, cs, at):
    """Run the timers of `cs` as the core would, at time `at`."""
    e.begin(at)
    for _, timer in cs.timers:
        timer(e)
    return e.take_changes()


def statuses(cs):
    return [(ev.kind, ev.status) for ev in cs.events]


def test_a_job_not_started_within_max_wait_becomes_late_to_start_on_time():
    e = engine()
    job = submit(e, Lateness(max_wait_seconds=5))
    cs = e.take_changes()
    (delay,) = [d for d, _ in cs.timers]
    assert delay == 5
    late = fire(e, cs, 1005.0)
    assert job.status == Status.LATE_TO_START and (1, Status.LATE_TO_START) in statuses(late)


def test_a_job_that_started_in_time_is_not_late():
    e = engine()
    job = submit(e, Lateness(max_wait_seconds=5))
    cs = e.take_changes()
    e.connect(Hello("a", {}, {}, 1, 1.0, (), False), conn_id=1)
    e.ready_signal("a", 1)
    e.take_changes()
    (task,) = e.tasks.values()
    e.report("a", 1, [Report(task.id, 1, ReportKind.STARTED)])
    e.take_changes()
    assert not [s for s in statuses(fire(e, cs, 1005.0)) if s[1] == Status.LATE_TO_START]
    assert job.status == Status.RUNNING


def test_a_job_and_task_still_running_past_their_runtime_are_running_late():
    e = engine()
    job = submit(e, Lateness(max_runtime_seconds=10), Lateness(finish_by=1003.0))
    e.take_changes()
    e.connect(Hello("a", {}, {}, 1, 1.0, (), False), conn_id=1)
    e.ready_signal("a", 1)
    e.take_changes()
    (task,) = e.tasks.values()
    e.report("a", 1, [Report(task.id, 1, ReportKind.STARTED)])
    cs = e.take_changes()
    assert sorted(d for d, _ in cs.timers if d in (3.0, 10.0)) == [3.0, 10.0]
    late = fire(e, cs, 1010.0)
    assert task.status == Status.RUNNING_LATE and job.status == Status.RUNNING_LATE
    assert job.counts["running"] == 1, "a late task still counts as running"
    e.report("a", 1, [Report(task.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])
    e.take_changes()
    assert job.status == Status.SUCCESS and (2, Status.RUNNING_LATE) in statuses(late)


def test_raw_status_reports_become_events_normalized_by_the_default_policy():
    e = engine()
    spec = JobSpec("x", tasks=(TaskSpec("t", external=ExternalSpec(("submit",), ("poll",))),),
                   wait_for_providers=True)
    e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    e.connect(Hello("a", {}, {}, 1, 1.0, (), False), conn_id=1)
    e.ready_signal("a", 1)
    e.take_changes()
    (task,) = e.tasks.values()
    e.report("a", 1, [Report(task.id, 1, ReportKind.STARTED),
                      Report(task.id, 1, ReportKind.STATUS, raw={"queue": "PRINT", "status": "ABEND"})])
    (event,) = [ev for ev in e.take_changes().events if ev.raw.get("status") == "ABEND"]
    assert (event.environment, event.raw_status, event.status) == ("external", "ABEND", Status.FAILURE)
    assert (task.status, task.environment, task.raw) == (Status.FAILURE, "external", {"queue": "PRINT",
                                                                                     "status": "ABEND"})
    assert task.current.raw == {"queue": "PRINT", "status": "ABEND"}, "the attempt keeps them too"


def test_what_an_external_scheduler_says_is_the_running_tasks_status_and_counts_stay_true():
    e = engine()
    spec = JobSpec("x", tasks=(TaskSpec("t", external=ExternalSpec(("submit",), ("poll",))),),
                   wait_for_providers=True)
    job = e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    e.connect(Hello("a", {}, {}, 1, 1.0, (), False), conn_id=1)
    e.ready_signal("a", 1)
    e.take_changes()
    (task,) = e.tasks.values()
    e.report("a", 1, [Report(task.id, 1, ReportKind.STARTED),
                      Report(task.id, 1, ReportKind.STATUS, raw={"status": "HELD"})])
    e.take_changes()
    assert task.status == Status.ON_HOLD and job.counts.get("running", 0) == 0
    e.report("a", 1, [Report(task.id, 1, ReportKind.STATUS, raw={"status": "EXECUTING"})])
    assert task.status == Status.RUNNING and job.counts["running"] == 1
    e.report("a", 1, [Report(task.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0,
                             raw={"status": "ENDED OK"})])
    assert (task.status, task.raw) == (Status.SUCCESS, {"status": "ENDED OK"})
    assert job.counts == {"total": 1, "success": 1, "running": 0, "waiting": 0, "not_ok": 0}


def test_a_task_not_started_within_its_max_wait_becomes_late_to_start_on_time():
    e = engine()
    job = submit(e, task_lateness=Lateness(max_wait_seconds=3))
    (task,) = e.tasks.values()
    cs = e.take_changes()
    assert [d for d, _ in cs.timers] == [3.0]
    assert task.status == Status.WAITING, "not late before its deadline"
    late = fire(e, cs, 1003.0)
    assert task.status == Status.LATE_TO_START
    (event,) = [ev for ev in late.events if ev.kind == 2]
    assert (event.task_id, event.status, event.raw_status) == (task.id, Status.LATE_TO_START, "QUEUED")
    assert "late to start" in event.message
    assert job.status != Status.LATE_TO_START, "the job has no deadline of its own"


def test_a_job_not_started_by_its_start_by_becomes_late_to_start_at_that_time():
    e = engine()
    job = submit(e, Lateness(start_by=1007.5))
    cs = e.take_changes()
    assert [d for d, _ in cs.timers] == [7.5], "the timer fires at start_by, not before"
    late = fire(e, cs, 1007.5)
    assert job.status == Status.LATE_TO_START
    (event,) = [ev for ev in late.events if ev.kind == 1]
    assert event.status == Status.LATE_TO_START and "not started by" in event.message
