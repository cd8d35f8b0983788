"""Every status of the normalized vocabulary occurs, for tasks and for jobs, driven through the
engine as the server drives it; and INACTIVE, work that cannot go on until an operator acts."""

from __future__ import annotations

import pytest
from support_engine import assigned, cmd, engine, provider

from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import JobSpec, Lateness, Outcome, Report, ReportKind, Status


def submit(e, *tasks, lateness=Lateness()):
    spec = JobSpec("j", tasks=tasks or (cmd("t"),), wait_for_providers=True, lateness=lateness)
    return e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))


def only_task(e, job):
    (tid,) = job.task_ids
    return e.tasks[tid]


def report(e, task, *kinds, outcome=Outcome.SUCCEEDED, exit_code=0, raw=None):
    """Provider "a" reports on the task's current attempt: STARTED, and/or FINISHED with `outcome`."""
    def one(kind):
        if kind == ReportKind.FINISHED:
            return Report(task.id, task.attempt, kind, outcome, exit_code, raw=raw or {})
        return Report(task.id, task.attempt, kind)
    e.report("a", provider_id_conn(), [one(kind) for kind in kinds])
    e.take_changes()


def provider_id_conn():
    """Provider "a"'s connection id, as support_engine.provider made it."""
    return hash("a") & 0xFFFF


def fire(e, cs, at):
    """Let time pass to `at` and run the timers of `cs` (set at 100.0) due by then."""
    e.begin(at)
    for delay, timer in cs.timers:
        if 100.0 + delay <= at:
            timer(e)
    e.take_changes()


def waiting(e):
    job = submit(e)
    return job, only_task(e, job)


def running(e):
    provider(e, "a")
    job = submit(e)
    e.take_changes()  # assigned
    report(e, only_task(e, job), ReportKind.STARTED)
    return job, only_task(e, job)


def succeeded(e):
    job, task = running(e)
    report(e, task, ReportKind.FINISHED)
    return job, task


def failed(e):
    job, task = running(e)
    report(e, task, ReportKind.FINISHED, outcome=Outcome.FAILED, exit_code=1,
           raw={"state": "exited", "exit_code": "1"})
    return job, task


def restarting(e):
    provider(e, "a")
    job = submit(e, cmd("t", max_attempts=2))
    e.take_changes()
    task = only_task(e, job)
    report(e, task, ReportKind.STARTED, ReportKind.FINISHED, outcome=Outcome.FAILED, exit_code=1)
    return job, task


def held(e):
    job = submit(e)
    e.hold_job(job.id, "month end", "ops")
    return job, only_task(e, job)


def late_to_start(e):
    late = Lateness(max_wait_seconds=5)
    job = submit(e, cmd("t", lateness=late), lateness=late)
    fire(e, e.take_changes(), 106.0)
    return job, only_task(e, job)


def running_late(e):
    late = Lateness(max_runtime_seconds=5)
    job = submit(e, cmd("t", lateness=late), lateness=late)
    provider(e, "a")
    e.take_changes()
    task = only_task(e, job)
    e.report("a", provider_id_conn(), [Report(task.id, 1, ReportKind.STARTED)])
    fire(e, e.take_changes(), 106.0)
    return job, task


def inactive(e):
    provider(e, "a", labels={"gpu": "true"})
    e.drain("a", False, 0.0)
    e.take_changes()
    job = submit(e, cmd("t", requires={"gpu": "true"}))
    e.take_changes()
    return job, only_task(e, job)


def unknown(e):
    job, task = running(e)
    report(e, task, ReportKind.FINISHED, outcome=Outcome.FAILED, exit_code=None, raw={"state": "something_new"})
    return job, task


# (scenario, the task's status, the job's status: None where the job cannot show it, and why)
SCENARIOS = [
    (waiting, Status.WAITING, Status.WAITING),
    (running, Status.RUNNING, Status.RUNNING),
    (succeeded, Status.SUCCESS, Status.SUCCESS),
    (failed, Status.FAILURE, Status.FAILURE),
    (restarting, Status.RESTART, None),  # the job runs on: a RUNNING job with a restarting task
    (held, Status.ON_HOLD, Status.ON_HOLD),
    (late_to_start, Status.LATE_TO_START, Status.LATE_TO_START),
    (running_late, Status.RUNNING_LATE, Status.RUNNING_LATE),
    (inactive, Status.INACTIVE, Status.INACTIVE),
    (unknown, Status.UNKNOWN, Status.FAILURE),  # a job fails when a task failed, known or not
]


@pytest.mark.parametrize("scenario, task_status, job_status", SCENARIOS, ids=[s[0].__name__ for s in SCENARIOS])
def test_each_status_occurs(scenario, task_status, job_status):
    e = engine()
    job, task = scenario(e)
    assert task.status == task_status, task.reason
    if job_status is not None:
        assert job.status == job_status


def test_cancel_occurs_for_the_task_and_the_job():
    e = engine()
    job = submit(e)
    task = only_task(e, job)
    e.cancel_job(job.id, "not wanted")
    e.take_changes()
    assert (task.status, job.status) == (Status.CANCEL, Status.CANCEL)


def test_every_status_of_the_vocabulary_is_covered():
    covered = {s[1] for s in SCENARIOS} | {Status.CANCEL}
    assert covered == set(Status), "all eleven"


def test_a_task_only_drained_providers_can_run_is_inactive_until_one_is_resumed():
    e = engine()
    job, task = inactive(e)
    assert "only disabled providers have gpu=true (a: DRAINED)" in task.reason
    assert "`jobplane providers resume a`" in task.reason and job.inactive == task.reason
    e.resume_provider("a")
    e.ready_signal("a", provider_id_conn())
    cs = e.take_changes()
    assert assigned(cs) == {"a": [("t", 1)]} and task.status == Status.WAITING and job.status == Status.WAITING


def test_another_provider_with_the_labels_makes_it_waiting_again():
    e = engine()
    job, task = inactive(e)
    provider(e, "b", labels={"gpu": "true"}, slots=0)  # connected, no free slot yet: it waits
    e.take_changes()
    assert (task.status, job.status) == (Status.WAITING, Status.WAITING)
    assert task.reason == "a provider that may run it is back"


def test_a_provider_drained_later_makes_its_queued_work_inactive_and_other_work_waits():
    e = engine()
    provider(e, "a", labels={"gpu": "true"}, slots=0)
    provider(e, "cpu", slots=0)
    gpu_job = submit(e, cmd("g", requires={"gpu": "true"}))
    cpu_job = submit(e, cmd("c"))
    e.take_changes()
    assert only_task(e, gpu_job).status == Status.WAITING
    e.drain("a", False, 0.0)
    e.take_changes()
    assert (only_task(e, gpu_job).status, gpu_job.status) == (Status.INACTIVE, Status.INACTIVE)
    assert only_task(e, cpu_job).status == Status.WAITING, "cpu has what it needs: it waits for a slot"


def test_the_hook_marks_any_task_inactive_until_cleared():
    e = engine()
    job, task = waiting(e)
    e.inactivity.mark(task, "suspended by ops")
    assert (task.status, task.reason, job.status) == (Status.INACTIVE, "suspended by ops", Status.INACTIVE)
    e.take_changes()
    assert task.status == Status.INACTIVE, "a dispatch leaves a marked task alone"
    e.inactivity.clear(task)
    assert (task.status, job.status) == (Status.WAITING, Status.WAITING)
