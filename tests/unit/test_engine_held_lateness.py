"""Lateness of held work, with the engine's clock: a task suspended in place is not RUNNING_LATE
while paused and its finish deadline moves on by the time it spent suspended; late-to-start does
not fire for a job held by hand, nor for a task a hold requeued (it started already)."""

from __future__ import annotations

from support_engine import engine, provider

from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import JobSpec, Lateness, Outcome, Report, ReportKind, Status, TaskSpec


def submit(e, task_lateness=Lateness(), lateness=Lateness()):
    spec = JobSpec("j", tasks=(TaskSpec("t", command=("true",), lateness=task_lateness),), lateness=lateness,
                   wait_for_providers=True)
    return e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))


def start(e, job):
    conn = provider(e, "a", slots=1)
    e.take_changes()
    task = e.tasks[job.task_ids[0]]
    e.report("a", conn, [Report(task.id, 1, ReportKind.STARTED)])
    return task, conn, e.take_changes()


def fire(e, cs, at):
    """Run the timers of `cs` as the core would, at time `at`."""
    e.begin(at)
    for _, timer in cs.timers:
        timer(e)
    return e.take_changes()


def late_events(cs, status):
    return [ev for ev in cs.events if ev.status == status]


def test_a_suspended_task_is_not_running_late_and_its_deadline_moves_on_by_the_pause():
    e = engine(now=100.0)
    job = submit(e, task_lateness=Lateness(max_runtime_seconds=10))
    task, _, started = start(e, job)  # started at 100: due by 110
    e.begin(105.0)
    e.hold_job(job.id, "maintenance", "alice", "suspend")
    e.take_changes()
    paused = fire(e, started, 110.0)  # its deadline passes while it is suspended
    assert task.status == Status.ON_HOLD and not late_events(paused, Status.RUNNING_LATE)
    e.begin(200.0)
    e.release_job(job.id)  # suspended 95 s: due by 110 + 95 = 205
    resumed = e.take_changes()
    assert [round(d, 6) for d, _ in resumed.timers if d > 0] == [5.0]
    assert not late_events(fire(e, started, 201.0), Status.RUNNING_LATE), "the first deadline's timer is stale"
    assert task.status == Status.RUNNING
    late = fire(e, resumed, 205.0)
    assert task.status == Status.RUNNING_LATE and late_events(late, Status.RUNNING_LATE)


def test_a_task_late_before_its_suspension_is_late_again_when_it_resumes():
    e = engine(now=100.0)
    job = submit(e, task_lateness=Lateness(max_runtime_seconds=10))
    task, _, started = start(e, job)
    fire(e, started, 110.0)
    assert task.status == Status.RUNNING_LATE
    e.hold_job(job.id, "", "alice", "suspend")
    e.take_changes()
    assert task.status == Status.ON_HOLD
    e.begin(150.0)
    e.release_job(job.id)
    e.take_changes()
    assert task.status == Status.RUNNING_LATE


def test_a_job_held_by_hand_is_not_late_to_start_and_one_not_held_is():
    e = engine(now=1000.0)
    held, free = submit(e, lateness=Lateness(max_wait_seconds=5)), submit(e, lateness=Lateness(max_wait_seconds=5))
    e.hold_job(held.id, "not tonight", "alice")
    cs = e.take_changes()
    fire(e, cs, 1005.0)
    assert held.status == Status.ON_HOLD and not held.late
    assert free.status == Status.LATE_TO_START


def test_a_job_released_past_its_start_deadline_is_late_to_start_at_once_if_it_still_waits():
    e = engine(now=1000.0)
    job = submit(e, task_lateness=Lateness(max_wait_seconds=5), lateness=Lateness(max_wait_seconds=5))
    e.hold_job(job.id, "not tonight", "alice")
    fire(e, e.take_changes(), 1005.0)  # both deadlines pass while it is held: not late
    task = e.tasks[job.task_ids[0]]
    assert job.status == Status.ON_HOLD and not job.late and not task.late
    e.begin(1010.0)
    e.release_job(job.id)  # nowhere to run: it still waits
    released = fire(e, e.take_changes(), 1010.0)
    assert job.status == Status.LATE_TO_START and task.late == "start"
    assert late_events(released, Status.LATE_TO_START)


def test_a_job_released_before_its_start_deadline_is_late_only_when_it_passes():
    e = engine(now=1000.0)
    job = submit(e, lateness=Lateness(max_wait_seconds=30))
    submitted = e.take_changes()
    e.hold_job(job.id, "", "alice")
    e.take_changes()
    e.begin(1010.0)
    e.release_job(job.id)
    assert not e.take_changes().timers, "the timer armed at submit is still to come"
    assert job.status == Status.WAITING and not job.late
    fire(e, submitted, 1030.0)
    assert job.status == Status.LATE_TO_START


def test_a_task_a_hold_requeued_is_not_late_to_start_when_it_waits_again():
    e = engine(now=100.0)
    job = submit(e, task_lateness=Lateness(max_wait_seconds=30))
    submitted = e.take_changes()
    task, conn, _ = start(e, job)
    e.begin(110.0)
    e.hold_job(job.id, "freeze", "bob", "requeue")
    e.take_changes()
    e.report("a", conn, [Report(task.id, 1, ReportKind.FINISHED, Outcome.CANCELLED, -15)])
    e.release_job(job.id)
    e.take_changes()
    provider(e, "b", slots=0)  # nowhere to run: it waits past its start deadline
    e.take_changes()
    assert task.held_attempts == 1
    cs = fire(e, submitted, 130.0)
    assert not task.late and not late_events(cs, Status.LATE_TO_START)


def test_a_job_suspended_by_hand_is_not_running_late_and_its_own_deadline_moves_on_by_the_pause():
    e = engine(now=100.0)
    job = submit(e, lateness=Lateness(max_runtime_seconds=10))
    _, _, started = start(e, job)  # the job started at 100: due by 110
    e.begin(105.0)
    e.hold_job(job.id, "maintenance", "alice", "suspend")
    e.take_changes()
    paused = fire(e, started, 110.0)
    assert job.status == Status.ON_HOLD and not late_events(paused, Status.RUNNING_LATE)
    e.begin(200.0)
    e.release_job(job.id)  # suspended 95 s: due by 205
    resumed = e.take_changes()
    assert not late_events(fire(e, started, 201.0), Status.RUNNING_LATE)
    assert job.status == Status.RUNNING
    late = fire(e, resumed, 205.0)
    assert job.status == Status.RUNNING_LATE and late_events(late, Status.RUNNING_LATE)
