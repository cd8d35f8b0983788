"""Outside jobs handed on: an external or Slurm task whose attempt is given up (lost, drained,
goodbye, revoked, overdue) while its job may still run continues at once as an attempt that
adopts the job by its id, and the old attempt is told to leave the job running. A job whose id
the server never heard of, or that ended, is submitted again as before."""

from support_engine import GRACE, KILL, assigned, engine, run_timers

from jobplane.server.domain.adoption import JOB_ID_MAX
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.fences import MARGIN, Fence
from jobplane.server.domain.model import (
    ExternalSpec, Hello, JobSpec, JobState, Outcome, ProviderState, Report, ReportKind, SlurmSpec, Status,
    TaskSpec, TaskState)
from jobplane.server.services.convert import assignment_to_proto

SLURM = {"slurm": "true"}


def handed_on(cs) -> dict:
    """The stopped attempts told to leave an outside job running, and that job."""
    return {(s.task_id, s.attempt): s.keep_job for stops in cs.stops.values() for s in stops if s.keep_job}


def connect(e, name, conn, *, running=(), labels=SLURM, slots=1):
    e.connect(Hello(name, {}, dict(labels), slots, 1.0, tuple(running), kill_deadline=KILL,
                    containment="cgroup", backoff_cap=2.0), conn_id=conn)
    e.ready_signal(name, conn)


def submit(e, kind="slurm", max_attempts=1, **task):
    outside = {"slurm": SlurmSpec(wrap="sleep 60")} if kind == "slurm" else \
        {"external": ExternalSpec(("submit",), ("poll",), ("cancel",))} if kind == "external" else \
        {"command": ("true",)}
    spec = JobSpec("job", 0, {}, (TaskSpec("t", **outside, **task),))
    job = e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=max_attempts))
    return job, e.tasks[job.task_ids[0]]


def running_on_a(kind="slurm", job_id="4242", **task):
    """Task t running on provider a, whose agent said it follows outside job `job_id`."""
    e = engine()
    connect(e, "a", 1, labels=SLURM if kind == "slurm" else {})
    job, t = submit(e, kind, **task)
    e.take_changes()
    assert e.report("a", 1, [Report(t.id, 1, ReportKind.STARTED, external_job_id=job_id)]) == []
    e.take_changes()
    return e, job, t


def lose_a(e):
    """Agent a's process dies (its stream closes) and the reconnect grace passes."""
    e.begin(101.0)
    e.disconnect("a", 1)
    (expire,) = [op for delay, op in e.take_changes().timers if delay == GRACE]
    e.begin(101.0 + GRACE)
    expire(e)
    return e.take_changes()


def test_a_lost_agents_slurm_task_continues_at_once_following_the_same_job():
    e, job, task = running_on_a()
    connect(e, "b", 2)
    e.take_changes()
    cs = lose_a(e)
    assert e.providers["a"].state == ProviderState.LOST
    # Nothing new is submitted, so nothing waits for a's keeper: b follows the job now.
    assert assigned(cs) == {"b": [("t", 2)]} and task.fence is None
    assert task.current.external_job_id == "4242"
    assert assignment_to_proto(task, 2).adopt_external_job_id == "4242"
    queued = next(ev for ev in cs.events if ev.raw_status == "QUEUED")
    assert "its slurm job 4242 runs on and the next attempt follows it" in queued.message
    assert task.reason == "follows slurm job 4242, submitted by an earlier attempt"
    # The adopting attempt reports the job it follows; the task ends once, with its result.
    e.report("b", 2, [Report(task.id, 2, ReportKind.STARTED, external_job_id="4242"),
                      Report(task.id, 2, ReportKind.FINISHED, Outcome.SUCCEEDED, 0, raw={"State": "COMPLETED"})])
    e.take_changes()
    assert job.state == JobState.SUCCEEDED and task.attempt == 2


def test_an_adopted_job_is_handed_on_again_if_its_new_follower_is_lost_before_it_says_anything():
    e, job, task = running_on_a("external", "J1")
    connect(e, "b", 2, labels={})
    e.take_changes()
    lose_a(e)
    connect(e, "c", 3, labels={})
    e.take_changes()
    e.begin(110.0)
    e.disconnect("b", 2)
    (expire,) = [op for delay, op in e.take_changes().timers if delay == GRACE]
    e.begin(110.0 + GRACE)
    expire(e)
    cs = e.take_changes()
    assert assigned(cs) == {"c": [("t", 3)]}
    assert assignment_to_proto(task, 3).adopt_external_job_id == "J1"


def test_without_a_job_id_the_task_waits_for_the_fence_and_is_submitted_again():
    # The agent died before the server heard the job's id: the submit may or may not have
    # happened. As for any attempt: the next waits for the old one's keeper, then submits.
    e, job, task = running_on_a("external", "")
    connect(e, "b", 2, labels={})
    e.take_changes()
    cs = lose_a(e)
    assert assigned(cs) == {}
    until = 101.0 + GRACE + KILL + MARGIN
    assert task.fence == Fence("a", 1, until)
    assert assigned(run_timers(e, cs, 101.0 + GRACE, until)) == {"b": [("t", 2)]}
    assert assignment_to_proto(task, 2).adopt_external_job_id == ""


def test_a_drain_hands_the_job_on_and_tells_the_old_attempt_to_leave_it_running():
    e, job, task = running_on_a()
    connect(e, "b", 2)
    e.take_changes()
    e.drain("a", wait=False, deadline=0)
    cs = e.take_changes()
    assert [s[:3] for s in cs.stops["a"]] == [(task.id, 1, "provider a drained")]
    assert handed_on(cs) == {(task.id, 1): "4242"}
    # No wait for a to confirm the stop: it stops following, the job goes on under b.
    assert assigned(cs) == {"b": [("t", 2)]} and task.fence is None
    (rejected,) = e.report("a", 1, [Report(task.id, 1, ReportKind.FINISHED, Outcome.CANCELLED)])
    assert rejected[2] == "FAILED_PRECONDITION"
    assert assigned(e.take_changes()) == {} and task.current.provider == "b"


def test_goodbye_and_revoke_hand_the_job_on_too():
    e, job, task = running_on_a()
    connect(e, "b", 2)
    e.take_changes()
    e.goodbye("a", 1, wait=False, deadline=0)
    cs = e.take_changes()
    assert handed_on(cs) == {(task.id, 1): "4242"} and assigned(cs) == {"b": [("t", 2)]}

    e, job, task = running_on_a()
    connect(e, "b", 2)
    e.take_changes()
    e.revoke("a", "key leaked")
    cs = e.take_changes()
    assert handed_on(cs) == {(task.id, 1): "4242"} and assigned(cs) == {"b": [("t", 2)]}
    assert cs.closes == [1], "nothing to wait for: its stream closes at once"


def test_the_old_agent_coming_back_is_told_the_job_is_followed_elsewhere():
    e, job, task = running_on_a()
    connect(e, "b", 2)
    e.take_changes()
    lose_a(e)
    connect(e, "a", 3, running=[(task.id, 1)])  # restarted with its state directory
    cs = e.take_changes()
    assert [s[:3] for s in cs.stops["a"]] == [(task.id, 1, "attempt superseded")]
    assert handed_on(cs) == {(task.id, 1): "4242"}
    # Its repeated STARTED (stale) is answered the same way.
    (rejected,) = e.report("a", 3, [Report(task.id, 1, ReportKind.STARTED, external_job_id="4242")])
    assert rejected[2] == "FAILED_PRECONDITION"
    assert handed_on(e.take_changes()) == {(task.id, 1): "4242"}


def test_a_superseded_attempt_of_a_resubmitted_task_is_cancelled_as_usual():
    # The server never heard attempt 1's job id, so attempt 2 submitted its own job: attempt 1,
    # back, is told the job that is followed now (J2); its own (another) it cancels.
    e, job, task = running_on_a("external", "")
    connect(e, "b", 2, labels={})
    e.take_changes()
    cs = lose_a(e)
    run_timers(e, cs, 101.0 + GRACE, 101.0 + GRACE + KILL + MARGIN)
    e.report("b", 2, [Report(task.id, 2, ReportKind.STARTED, external_job_id="J2")])
    connect(e, "a", 3, running=[(task.id, 1)])
    assert handed_on(e.take_changes()) == {(task.id, 1): "J2"}


def test_a_job_that_ended_or_was_stopped_for_good_is_not_adopted():
    # It failed: the retry submits a new job.
    e, job, task = running_on_a(max_attempts=2)
    e.report("a", 1, [Report(task.id, 1, ReportKind.FINISHED, Outcome.FAILED, 3, raw={"State": "FAILED"})])
    (release,) = [op for _, op in e.take_changes().timers]
    release(e)
    assert assigned(e.take_changes()) == {"a": [("t", 2)]}
    assert assignment_to_proto(task, 2).adopt_external_job_id == ""

    # The server's hard timeout passed: cancelled for real, and the retry waits for that.
    e, job, task = running_on_a(max_attempts=2, timeout_seconds=2)
    e.begin(100 + 2 + e.config.terminate_grace + 0.1)
    e.providers["a"].last_seen = e.now
    e.supervise()
    cs = e.take_changes()
    assert cs.stops["a"][0][:2] == (task.id, 1) and handed_on(cs) == {}
    assert task.fence is not None and task.adopt_job == ""

    # Cancelled: its agent cancels the job.
    e, job, task = running_on_a()
    e.cancel_job(job.id, "")
    assert handed_on(e.take_changes()) == {}


def test_an_overdue_task_whose_follower_makes_no_progress_is_handed_on():
    e, job, task = running_on_a(expected_seconds=5)
    connect(e, "b", 2)
    e.take_changes()
    e.begin(106.0)
    e.providers["a"].last_seen = e.now
    e.supervise()
    probe = e.take_changes().probes["a"]
    e.probe_reply("a", 1, probe, [(task.id, 1, 0)])  # its polls stopped: no progress
    cs = e.take_changes()
    assert handed_on(cs) == {(task.id, 1): "4242"} and list(assigned(cs).values()) == [[("t", 2)]]
    assert task.fence is None and assignment_to_proto(task, 2).adopt_external_job_id == "4242"


def test_the_job_id_changes_no_status_and_an_overlong_one_is_refused():
    e, job, task = running_on_a(job_id="")
    e.report("a", 1, [Report(task.id, 1, ReportKind.STATUS, raw={"State": "PENDING", "Reason": "Resources"},
                             external_job_id="77")])
    e.take_changes()
    assert (task.current.external_job_id, task.status, task.state) == ("77", Status.WAITING, TaskState.RUNNING)
    # A STARTED repeated with the id (as after an agent restart) records it and changes nothing.
    status = task.status
    e.report("a", 1, [Report(task.id, 1, ReportKind.STARTED, external_job_id="78")])
    cs = e.take_changes()
    assert task.current.external_job_id == "78" and task.status == status and not cs.events

    (rejected,) = e.report("a", 1, [Report(task.id, 1, ReportKind.STATUS, raw={"State": "RUNNING"},
                                           external_job_id="9" * (JOB_ID_MAX + 1))])
    assert rejected[2] == "INVALID_ARGUMENT"
    assert rejected[3] == f"external_job_id of {JOB_ID_MAX + 1} characters is over the limit of {JOB_ID_MAX}"
    assert task.current.external_job_id == "78" and task.status == status


def test_a_command_task_never_adopts_whatever_its_agent_says():
    e, job, task = running_on_a("command", "bogus")
    connect(e, "b", 2)
    e.take_changes()
    cs = lose_a(e)
    assert assigned(cs) == {} and task.fence is not None  # fenced as any command is
