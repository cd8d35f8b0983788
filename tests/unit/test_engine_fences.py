"""At most one live attempt per task: the engine starts no new attempt while an earlier one
may still run (the agent's keeper promise, stop confirmations), gives agents a restart grace
sized from their reconnect backoff, and hands on a stopping agent's work instead of failing it."""

from support_engine import GRACE, KILL, assigned, engine, run_timers

from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.fences import MARGIN, Fence
from jobplane.server.domain.model import (
    Hello, JobSpec, JobState, Outcome, ProviderState, Report, ReportKind, TaskSpec, TaskState)
from jobplane.server.domain.state import AttemptRt, JobRt, ProviderRt, TaskRt


def connect(e, name, conn, slots=1, running=(), kill_deadline=KILL, backoff_cap=2.0):
    e.connect(Hello(name, {}, {}, slots, 1.0, tuple(running), kill_deadline=kill_deadline,
                    containment="cgroup", backoff_cap=backoff_cap), conn_id=conn)
    e.ready_signal(name, conn)


def submit(e, *names, max_attempts=1, **task):
    spec = JobSpec("job", 0, {}, tuple(TaskSpec(n, command=("true",), **task) for n in names))
    return e.submit(spec, extract_tasks(spec, max_tasks=100, default_max_attempts=max_attempts))


def started_on_a(e):
    connect(e, "a", 1)
    job = submit(e, "t")
    e.take_changes()
    task = e.tasks[job.task_ids[0]]
    e.report("a", 1, [Report(task.id, 1, ReportKind.STARTED)])
    e.take_changes()
    return job, task


def test_a_killed_agents_task_continues_only_once_its_keeper_has_certainly_killed_it():
    e = engine()
    job, task = started_on_a(e)
    connect(e, "b", 2)
    e.take_changes()
    e.begin(101.0)
    e.disconnect("a", 1)  # heard from until its stream closed: the agent process ended
    cs = e.take_changes()
    e.begin(101.0 + GRACE)
    (expire,) = [op for delay, op in cs.timers if delay == GRACE]
    expire(e)
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.LOST
    assert assigned(cs) == {} and task.state == TaskState.QUEUED
    assert "once attempt 1 on a has certainly stopped" in task.reason
    until = 101.0 + GRACE + KILL + MARGIN
    assert task.fence == Fence("a", 1, until)
    assert assigned(run_timers(e, cs, 101.0 + GRACE, until - 0.01)) == {}
    assert assigned(run_timers(e, cs, 101.0 + GRACE, until)) == {"b": [("t", 2)]}
    assert task.fence is None


def test_a_silent_agent_counts_from_its_last_signal_plus_the_freeze_limit():
    e = engine()
    job, task = started_on_a(e)
    connect(e, "b", 2)
    e.take_changes()
    e.providers["a"].last_seen = 100.0
    e.begin(103.5)
    e.supervise()  # silent past 1 s x 2: probed
    e.take_changes()
    e.begin(104.6)
    e.supervise()  # no answer: lost
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.LOST and assigned(cs) == {}
    # Frozen at its last signal or within a heartbeat of it; its keeper kills it once it has not
    # renewed its lease for the grace plus two heartbeats.
    assert task.fence.until == 100.0 + 3 * 1.0 + GRACE + KILL + MARGIN


def test_an_agent_that_promises_nothing_has_its_tasks_handed_on_at_once():
    e = engine()
    e.connect(Hello("a", {}, {}, 1, 1.0, ()), conn_id=1)
    e.ready_signal("a", 1)
    submit(e, "t")
    e.take_changes()
    connect(e, "b", 2)
    e.take_changes()
    e.disconnect("a", 1)
    (expire,) = [op for delay, op in e.take_changes().timers]
    e.begin(101.0 + GRACE)
    expire(e)
    assert assigned(e.take_changes()) == {"b": [("t", 2)]}


def test_drain_waits_for_the_stop_to_be_confirmed_by_report_probe_or_reconnect():
    # By a report of the stopped attempt (rejected as stale, but it says the attempt ended).
    e = engine()
    job, task = started_on_a(e)
    connect(e, "b", 2)
    e.drain("a", wait=False, deadline=0)
    cs = e.take_changes()
    assert cs.stops["a"][0][:2] == (task.id, 1) and assigned(cs) == {}
    (rejected,) = e.report("a", 1, [Report(task.id, 1, ReportKind.FINISHED, Outcome.CANCELLED)])
    assert rejected[2] == "FAILED_PRECONDITION"
    assert assigned(e.take_changes()) == {"b": [("t", 2)]}

    # By a probe, sent after a while, whose answer no longer lists it.
    e = engine()
    job, task = started_on_a(e)
    connect(e, "b", 2)
    e.drain("a", wait=False, deadline=0)
    cs = e.take_changes()
    cs = run_timers(e, cs, 100.0, 100.0 + e.config.terminate_grace)
    probe = cs.probes["a"]
    e.probe_reply("a", 1, probe, [(task.id, 1, 0)])  # still running it: keep waiting
    assert assigned(e.take_changes()) == {}
    e.begin(110.0)
    e.fencing.check_stops("a")
    probe = e.take_changes().probes["a"]
    e.probe_reply("a", 1, probe, [])
    assert assigned(e.take_changes()) == {"b": [("t", 2)]}

    # By reconnecting without it.
    e = engine()
    job, task = started_on_a(e)
    connect(e, "b", 2)
    e.drain("a", wait=False, deadline=0)
    e.take_changes()
    e.disconnect("a", 1)
    e.take_changes()
    connect(e, "a", 3, running=[])
    assert assigned(e.take_changes()) == {"b": [("t", 2)]}


def test_a_probe_answered_before_the_stop_was_sent_confirms_nothing():
    e = engine()
    job, task = started_on_a(e)
    connect(e, "b", 2)
    e.take_changes()
    e.begin(104.0)
    e.providers["a"].last_seen = 104.0
    e.supervise()
    early = e.take_changes().probes.get("a")
    assert early is None  # nothing overdue
    e.providers["a"].probe_id = stale = e.ids.take("probe")  # a probe in flight before the drain
    e.drain("a", wait=False, deadline=0)
    e.take_changes()
    e.probe_reply("a", 1, stale, [])
    assert assigned(e.take_changes()) == {} and task.fence is not None


def test_a_retry_after_the_server_terminated_an_attempt_waits_for_it_to_stop():
    e = engine()
    connect(e, "a", 1, slots=2)
    job = submit(e, "stuck", timeout_seconds=2, max_attempts=2)
    e.take_changes()
    task = e.tasks[job.task_ids[0]]
    e.report("a", 1, [Report(task.id, 1, ReportKind.STARTED)])
    e.take_changes()
    e.begin(100 + 2 + e.config.terminate_grace + 0.1)
    e.providers["a"].last_seen = e.now
    e.supervise()
    cs = e.take_changes()
    assert cs.stops["a"][0][:2] == (task.id, 1) and task.state == TaskState.QUEUED
    (release,) = [op for delay, op in cs.timers if delay < e.config.terminate_grace]
    e.begin(e.now + 5)
    release(e)  # the backoff is over, but attempt 1 has not said it stopped
    assert assigned(e.take_changes()) == {}
    e.report("a", 1, [Report(task.id, 1, ReportKind.FINISHED, Outcome.TIMED_OUT)])
    assert assigned(e.take_changes()) == {"a": [("stuck", 2)]}


def test_a_revoked_provider_is_closed_once_it_confirms_its_stops():
    e = engine()
    job, task = started_on_a(e)
    e.revoke("a", "key leaked")
    assert e.take_changes().closes == []
    e.report("a", 1, [Report(task.id, 1, ReportKind.FINISHED, Outcome.CANCELLED)])
    assert e.take_changes().closes == [1]


def restored(grace: float = 0.0, fence: Fence | None = None, state=TaskState.RUNNING):
    """A server restarted with task t of job 1 out at provider a (backoff cap 3 s)."""
    e = engine(restart_grace=grace)
    spec = JobSpec("j", tasks=(TaskSpec("t", command=("true",)),))
    job = JobRt(1, "j", 0, spec, JobState.RUNNING, 90.0, counts={"total": 1, "running": 1})
    task = TaskRt(1, 1, 0, "t", "t", spec.tasks[0], [], 1, state, attempt=1, provider="a", fence=fence)
    if state == TaskState.RUNNING:
        task.current = AttemptRt(1, 1, 1, "a", 95.0, start_time=95.0)
    provider = ProviderRt("a", ProviderState.ACTIVE, slots=1, kill_deadline=KILL, backoff_cap=3.0, last_seen=96.0)
    e.restore([job], [task], [provider])
    return e, job, task


def test_after_a_restart_agents_get_a_grace_sized_from_their_backoff_once_the_server_listens():
    e, job, task = restored()
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.SUSPECT and not cs.timers  # not listening yet
    e.begin(200.0)
    e.arm_restart_grace()
    cs = e.take_changes()
    grace = 2 * 3.0 + 2 * 1.0 + 1.0
    assert e.providers["a"].grace_until == 200.0 + grace
    assert "waiting 9s (its restart grace)" in cs.events[-1].message
    e.begin(200.0 + grace - 1)
    connect(e, "a", 7, running=[(task.id, 1)])  # back in time, with the attempt it finished meanwhile
    e.report("a", 7, [Report(task.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])
    e.take_changes()
    assert job.state == JobState.SUCCEEDED and task.attempt == 1


def test_restart_grace_can_be_set_and_its_expiry_says_so():
    e, job, task = restored(grace=4.0)
    e.take_changes()
    e.arm_restart_grace()
    (expire,) = [op for delay, op in e.take_changes().timers if delay == 4.0]
    e.begin(104.0)
    expire(e)
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.LOST
    assert any("no reconnection within the 4s restart grace" in ev.message for ev in cs.events)
    # Its keeper killed what it ran by the reconnect grace and kill deadline after the grace began.
    assert task.fence is None and task.state == TaskState.QUEUED


def test_a_fence_survives_a_restart_and_is_lifted_when_the_provider_comes_back_without_the_attempt():
    e, job, task = restored(fence=Fence("a", 1), state=TaskState.QUEUED)
    connect(e, "b", 2)
    assert assigned(e.take_changes()) == {}
    assert task.id in e.fencing
    connect(e, "a", 3, running=[])
    assert list(assigned(e.take_changes()).values()) == [[("t", 2)]]


def test_goodbye_hands_work_on_and_the_provider_stops_without_failing_anything():
    e = engine()
    job, task = started_on_a(e)
    connect(e, "b", 2)
    e.goodbye("a", 1, wait=False, deadline=0)
    cs = e.take_changes()
    assert cs.stops["a"][0][:2] == (task.id, 1) and e.providers["a"].state == ProviderState.DRAINED
    e.report("a", 1, [Report(task.id, 1, ReportKind.FINISHED, Outcome.FAILED, error="agent shutting down")])
    assert assigned(e.take_changes()) == {"b": [("t", 2)]}
    e.disconnect("a", 1)
    assert e.providers["a"].state == ProviderState.STOPPED and not e.take_changes().timers
    e.report("b", 2, [Report(task.id, 2, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])
    e.take_changes()
    assert job.state == JobState.SUCCEEDED
    connect(e, "a", 4)  # a new agent process with its name takes work again
    assert e.providers["a"].state == ProviderState.ACTIVE


def test_goodbye_with_wait_lets_running_work_finish_first():
    e = engine()
    job, task = started_on_a(e)
    e.goodbye("a", 1, wait=True, deadline=30)
    cs = e.take_changes()
    assert not cs.stops and e.providers["a"].state == ProviderState.DRAINING
    e.report("a", 1, [Report(task.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])
    e.take_changes()
    assert job.state == JobState.SUCCEEDED and e.providers["a"].state == ProviderState.DRAINED
