"""The engine's rules, driven directly: placement, slots, order, retries, fencing, loss."""

import pytest
from support_engine import assigned, cmd, engine, provider

from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import (
    Hello, JobSpec, JobState, Outcome, ProviderState, Report, ReportKind, TaskState)
from jobplane.server.errors import AlreadyExists, FailedPrecondition, PermissionDenied


def submit(e, *tasks, priority=0, name="job", wait=False):
    spec = JobSpec(name, priority, {}, tuple(tasks), wait_for_providers=wait)
    return e.submit(spec, extract_tasks(spec, max_tasks=1000, default_max_attempts=1))


def finish(e, name, conn, task_name, outcome=Outcome.SUCCEEDED, attempt=1, exit_code=0):
    task = next(t for t in e.tasks.values() if t.name == task_name)
    e.report(name, conn, [Report(task.id, attempt, ReportKind.STARTED),
                          Report(task.id, attempt, ReportKind.FINISHED, outcome, exit_code)])
    return task


def test_tasks_spread_over_providers_and_never_exceed_slots():
    e = engine()
    provider(e, "a", slots=2)
    provider(e, "b", slots=2)
    submit(e, *[cmd(f"t{i}") for i in range(6)])
    cs = e.take_changes()
    assert sorted(len(v) for v in assigned(cs).values()) == [2, 2]
    assert len(e.ready) == 2


def test_labels_route_tasks():
    e = engine()
    provider(e, "cpu", labels={"gpu": "false"})
    provider(e, "gpu", labels={"gpu": "true"})
    submit(e, cmd("x", requires={"gpu": "true"}), cmd("y", requires={"gpu": "true"}))
    assert list(assigned(e.take_changes())) == ["gpu"]


def test_higher_priority_first_then_fifo():
    e = engine()
    submit(e, cmd("low1"), name="low", wait=True)
    submit(e, cmd("high1"), priority=5, name="high", wait=True)
    submit(e, cmd("low2"), name="low2", wait=True)
    e.take_changes()
    provider(e, "a", slots=3)
    assert assigned(e.take_changes())["a"] == [("high1", 1), ("low1", 1), ("low2", 1)]


def test_dag_releases_dependents_only_after_success():
    e = engine()
    conn = provider(e, "a", slots=4)
    job = submit(e, cmd("extract"), cmd("load", after=("extract",)))
    assert assigned(e.take_changes())["a"] == [("extract", 1)]
    finish(e, "a", conn, "extract")
    assert assigned(e.take_changes())["a"] == [("load", 1)]
    finish(e, "a", conn, "load")
    e.take_changes()
    assert job.state == JobState.SUCCEEDED


def test_failure_fails_job_and_cancels_dependents():
    e = engine()
    conn = provider(e, "a")
    job = submit(e, cmd("build"), cmd("deploy", after=("build",)))
    e.take_changes()
    finish(e, "a", conn, "build", Outcome.FAILED, exit_code=3)
    e.take_changes()
    assert job.state == JobState.FAILED
    assert job.reason == "task build exited with code 3"
    assert job.counts["failure"] == 1 and job.counts["cancel"] == 1


def test_retry_until_max_attempts():
    e = engine()
    conn = provider(e, "a")
    job = submit(e, cmd("flaky", max_attempts=2))
    e.take_changes()
    task = finish(e, "a", conn, "flaky", Outcome.FAILED, exit_code=1)
    (delay, release), = e.take_changes().timers
    assert 0.8 <= delay <= 1.2 and task.state == TaskState.QUEUED  # waits out the backoff
    release(e)
    e.take_changes()
    assert task.state == TaskState.ASSIGNED and task.attempt == 2  # then dispatched again
    finish(e, "a", conn, "flaky", Outcome.SUCCEEDED, attempt=2)
    e.take_changes()
    assert job.state == JobState.SUCCEEDED


def test_report_from_a_superseded_attempt_is_rejected_and_stopped():
    e = engine()
    conn = provider(e, "a")
    submit(e, cmd("t", max_attempts=3))
    e.take_changes()
    task = finish(e, "a", conn, "t", Outcome.FAILED, exit_code=1)
    (_, release), = e.take_changes().timers
    release(e)
    e.take_changes()  # attempt 2 now out
    (rejected,) = e.report("a", conn, [Report(task.id, 1, ReportKind.STARTED)])
    assert rejected[:3] == (task.id, 1, "FAILED_PRECONDITION") and "not the current attempt" in rejected[3]
    cs = e.take_changes()
    assert [s[:3] for s in cs.stops["a"]] == [(task.id, 1, "attempt superseded")]
    assert len(e.report("a", conn, [Report(task.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])) == 1
    assert task.state == TaskState.ASSIGNED and task.attempt == 2


def test_lost_provider_hands_tasks_on_without_using_retries():
    e = engine()
    conn_a = provider(e, "a", slots=1)
    job = submit(e, cmd("t"))
    e.take_changes()
    e.disconnect("a", conn_a)
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.SUSPECT
    (delay, timer), = cs.timers
    timer(e)
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.LOST
    assert cs.continuations[0].tasks[0].from_attempt == 1
    conn_b = provider(e, "b", slots=1)
    assert assigned(e.take_changes())["b"] == [("t", 2)]
    finish(e, "b", conn_b, "t", attempt=2)
    e.take_changes()
    assert job.state == JobState.SUCCEEDED


def test_reconnect_within_grace_keeps_running_tasks():
    e = engine()
    conn = provider(e, "a", slots=1)
    submit(e, cmd("t"))
    e.take_changes()
    task = next(iter(e.tasks.values()))
    e.disconnect("a", conn)
    (_, timer), = e.take_changes().timers
    provider(e, "a", slots=1, running=[(task.id, 1)])
    timer(e)  # the old grace timer fires after the reconnect: nothing happens
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.ACTIVE
    assert task.attempt == 1 and task.current is not None and not cs.assignments


def test_a_provider_is_connecting_until_ready_and_gets_no_work_before():
    e = engine()
    submit(e, cmd("t"), wait=True)
    e.take_changes()
    e.connect(Hello("a", {}, {}, 1, 1.0, (), False), conn_id=7)
    assert e.providers["a"].state == ProviderState.CONNECTING
    assert not e.take_changes().assignments
    e.ready_signal("a", 7)
    assert e.providers["a"].state == ProviderState.ACTIVE
    assert assigned(e.take_changes())["a"] == [("t", 1)]


def test_a_revoked_provider_loses_its_tasks_and_may_not_connect_again():
    e = engine()
    conn = provider(e, "a", slots=1)
    submit(e, cmd("t"))
    e.take_changes()
    task = next(iter(e.tasks.values()))
    e.revoke("a", "key leaked")
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.REVOKED
    assert [s[:3] for s in cs.stops["a"]] == [(task.id, 1, "provider a revoked: key leaked")] and cs.closes == []
    assert task.state == TaskState.QUEUED and cs.continuations
    # Its stream stays open until it confirms the stop, so the stop cannot be lost on the way.
    e.report("a", conn, [Report(task.id, 1, ReportKind.FINISHED, Outcome.CANCELLED)])
    assert e.take_changes().closes == [conn]
    e.disconnect("a", conn)  # its stream ends: it stays revoked, with no grace
    assert e.providers["a"].state == ProviderState.REVOKED and not e.take_changes().timers
    with pytest.raises(PermissionDenied, match="revoked"):
        e.connect(Hello("a", {}, {}, 1, 1.0, (), False), conn_id=8)


def test_cancel_job_cancels_queued_and_stops_running():
    e = engine()
    conn = provider(e, "a", slots=1)
    job = submit(e, cmd("run"), cmd("wait"))
    e.take_changes()
    e.cancel_job(job.id, "")
    cs = e.take_changes()
    assert job.state == JobState.CANCELLED
    run = next(t for t in cs.tasks.values() if t.name == "run")
    assert [s[:3] for s in cs.stops["a"]] == [(run.id, 1, "cancelled by request")]
    finish(e, "a", conn, "run", Outcome.CANCELLED)
    assert not e.providers["a"].in_flight


def test_submit_without_a_matching_provider_is_refused_unless_asked_to_wait():
    e = engine()
    provider(e, "cpu", labels={"gpu": "false"})
    with pytest.raises(FailedPrecondition, match=r"spec.tasks\[1\].requires: no connected or standby provider has gpu=true"):
        submit(e, cmd("a"), cmd("b", requires={"gpu": "true"}))
    assert not e.jobs
    job = submit(e, cmd("b", requires={"gpu": "true"}), wait=True)
    cs = e.take_changes()
    assert not cs.assignments and "waiting: no connected or standby provider has gpu=true" in cs.events[-1].message
    provider(e, "gpu", labels={"gpu": "true"})
    assert assigned(e.take_changes()) == {"gpu": [("b", 1)]}
    assert job.state == JobState.QUEUED


def test_retry_on_limits_which_failures_retry():
    e = engine()
    conn = provider(e, "a")
    job = submit(e, cmd("t", max_attempts=3, retry_on=("exit_code:75",)))
    e.take_changes()
    finish(e, "a", conn, "t", Outcome.FAILED, exit_code=75)
    (_, release), = e.take_changes().timers
    release(e)
    e.take_changes()
    finish(e, "a", conn, "t", Outcome.FAILED, attempt=2, exit_code=1)  # not retryable
    e.take_changes()
    assert job.state == JobState.FAILED


def test_silent_provider_is_probed_then_lost_and_its_stream_closed():
    e = engine()
    conn = provider(e, "a", slots=1)
    submit(e, cmd("t"))
    e.take_changes()
    e.begin(100 + 2.5)  # promised 1s, tolerance 2: silent too long
    e.supervise()
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.SUSPECT and "a" in cs.probes
    e.begin(100 + 3.6)  # probe deadline (1s) passed
    e.supervise()
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.LOST and cs.closes == [conn]
    assert next(iter(e.tasks.values())).state == TaskState.QUEUED


def test_probe_answer_restores_the_provider_and_moves_nothing():
    e = engine()
    conn = provider(e, "a", slots=1)
    submit(e, cmd("t"))
    e.take_changes()
    task = next(iter(e.tasks.values()))
    e.begin(102.5)
    e.supervise()
    probe_id = e.take_changes().probes["a"]
    e.probe_reply("a", conn, probe_id, [(task.id, 1, 0)])
    e.take_changes()
    assert e.providers["a"].state == ProviderState.ACTIVE and task.attempt == 1 and task.current


@pytest.mark.parametrize("progress, decision, state", [(5, "wait", TaskState.RUNNING), (0, "reassign", TaskState.ASSIGNED)])
def test_overdue_task_is_waited_on_if_progressing_else_reassigned(progress, decision, state):
    e = engine()
    provider(e, "a", slots=1)
    provider(e, "b", slots=1)
    submit(e, cmd("slow", expected_seconds=10))
    cs = e.take_changes()
    (where, items), = cs.assignments.items()
    task = items[0][0]
    e.report(where, hash(where) & 0xFFFF, [Report(task.id, 1, ReportKind.STARTED)])
    e.take_changes()
    e.begin(111)
    e.providers[where].last_seen = 111
    e.supervise()
    probe_id = e.take_changes().probes[where]
    e.probe_reply(where, hash(where) & 0xFFFF, probe_id, [(task.id, 1, progress)])
    cs = e.take_changes()
    assert [ev.raw for ev in cs.events if ev.raw.get("decision")] == [{"decision": decision}]
    if decision == "reassign":  # the stopped attempt must end before the next one starts
        assert task.state == TaskState.QUEUED and f"once attempt 1 on {where} has certainly stopped" in task.reason
        e.report(where, hash(where) & 0xFFFF, [Report(task.id, 1, ReportKind.FINISHED, Outcome.CANCELLED)])
        e.take_changes()
    assert task.state == state


def test_past_hard_timeout_the_server_terminates_the_attempt():
    e = engine()
    conn = provider(e, "a", slots=1)
    job = submit(e, cmd("stuck", timeout_seconds=2))
    e.take_changes()
    task = next(iter(e.tasks.values()))
    e.report("a", conn, [Report(task.id, 1, ReportKind.STARTED)])
    e.take_changes()
    e.begin(100 + 2 + 5.1)
    e.providers["a"].last_seen = e.now
    e.supervise()
    cs = e.take_changes()
    assert cs.stops["a"][0][:2] == (task.id, 1) and "hard timeout" in cs.stops["a"][0][2]
    assert job.state == JobState.FAILED


def test_standby_takes_work_only_beyond_active_capacity_and_returns_when_idle():
    e = engine()
    provider(e, "a", slots=1)
    provider(e, "s", slots=1, standby=True)
    assert e.providers["s"].state == ProviderState.STANDBY
    submit(e, cmd("one"))
    assert assigned(e.take_changes()) == {"a": [("one", 1)]}
    submit(e, cmd("two"))
    assert assigned(e.take_changes()) == {"s": [("two", 1)]}
    assert e.providers["s"].state == ProviderState.ACTIVE
    finish(e, "s", hash("s") & 0xFFFF, "two")
    e.take_changes()
    for t in (101, 107):
        e.begin(t)
        e.providers["s"].last_seen = e.providers["a"].last_seen = t
        e.supervise()
    e.take_changes()
    assert e.providers["s"].state == ProviderState.STANDBY


def test_a_restored_running_task_is_still_held_to_its_timeout():
    from jobplane.server.domain.state import AttemptRt, JobRt, ProviderRt, TaskRt

    e = engine()
    spec = JobSpec("j", tasks=(cmd("stuck", timeout_seconds=2),))
    job = JobRt(1, "j", 0, spec, JobState.RUNNING, 90.0, counts={"total": 1, "running": 1})
    task = TaskRt(1, 1, 0, "stuck", "stuck", cmd("stuck", timeout_seconds=2), [], 1, TaskState.RUNNING, attempt=1,
                  provider="a")
    task.current = AttemptRt(1, 1, 1, "a", 95.0, start_time=95.0)
    e.restore([job], [task], [ProviderRt("a", ProviderState.ACTIVE, slots=1)])
    e.take_changes()
    provider(e, "a", slots=1, running=[(1, 1)])  # the agent comes back with it
    e.take_changes()
    e.begin(95 + 2 + 5.1)
    e.providers["a"].last_seen = e.now
    e.supervise()
    e.take_changes()
    assert job.state == JobState.FAILED and "hard timeout" in job.reason


def test_submit_where_only_drained_providers_could_run_it_names_them_and_the_way_back():
    e = engine()
    provider(e, "a")
    provider(e, "b")
    provider(e, "gpu", labels={"gpu": "true"})
    for name in ("a", "b", "gpu"):
        e.drain(name, wait=False, deadline=0)
    with pytest.raises(FailedPrecondition, match=r"spec.tasks\[0\].requires: only drained providers could run it "
                       r"\(a, b, gpu\); jobplane providers resume a; start a matching agent"):
        submit(e, cmd("x"))
    with pytest.raises(FailedPrecondition, match=r"only drained providers could run it \(gpu\); "
                       r"jobplane providers resume gpu"):
        submit(e, cmd("y", requires={"gpu": "true"}))
    assert not e.jobs


def test_a_jobs_events_count_its_tasks_in_words():
    e = engine()
    provider(e, "a")
    submit(e, cmd("only"))
    submit(e, cmd("x"), cmd("y"))
    messages = [ev.message for ev in e.take_changes().events if ev.message.startswith("submitted with")]
    assert messages == ["submitted with 1 task", "submitted with 2 tasks"]


def test_drain_hands_running_tasks_on_and_takes_no_new_work():
    e = engine()
    provider(e, "a", slots=1)
    submit(e, cmd("t"))
    e.take_changes()
    provider(e, "b", slots=1)
    e.drain("a", wait=False, deadline=0)
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.DRAINED
    task = next(iter(e.tasks.values()))
    assert cs.stops["a"][0][:2] == (task.id, 1) and assigned(cs) == {}  # not before it has stopped on a
    assert cs.continuations and cs.continuations[0].provider == "a"
    e.report("a", hash("a") & 0xFFFF, [Report(task.id, 1, ReportKind.FINISHED, Outcome.CANCELLED)])
    assert assigned(e.take_changes()) == {"b": [("t", 2)]}
    submit(e, cmd("later"))
    assert "a" not in assigned(e.take_changes())


def test_drain_with_wait_lets_tasks_finish_then_hands_on_at_the_deadline():
    e = engine()
    conn = provider(e, "a", slots=2)
    submit(e, cmd("quick"), cmd("slow"))
    e.take_changes()
    e.drain("a", wait=True, deadline=30)
    (_, deadline), = e.take_changes().timers
    assert e.providers["a"].state == ProviderState.DRAINING
    finish(e, "a", conn, "quick")
    e.take_changes()
    assert e.providers["a"].state == ProviderState.DRAINING  # slow still runs
    deadline(e)
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.DRAINED and cs.stops["a"]


def test_a_proven_provider_takes_over_its_own_open_stream():
    e = engine()
    old = provider(e, "a", slots=1)
    submit(e, cmd("t"))
    e.take_changes()
    task = next(iter(e.tasks.values()))
    with pytest.raises(AlreadyExists):
        e.connect(Hello("a", {}, {}, 1, 1.0, ((task.id, 1),), False), conn_id=old + 1)
    e.connect(Hello("a", {}, {}, 1, 1.0, ((task.id, 1),), False), conn_id=old + 1, takeover=True)
    cs = e.take_changes()
    assert cs.closes == [old] and task.current is not None and task.attempt == 1
    e.disconnect("a", old)  # the old stream's end changes nothing
    assert e.providers["a"].conn_id == old + 1 and not e.take_changes().timers


def test_a_report_on_another_providers_task_is_denied_and_changes_nothing():
    e = engine()
    provider(e, "a", slots=1)
    b = provider(e, "b", slots=1)
    submit(e, cmd("t"), cmd("u"))
    e.take_changes()
    theirs = next(t for t in e.tasks.values() if t.provider == "a")
    (rejected,) = e.report("b", b, [Report(theirs.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])
    assert rejected[2] == "PERMISSION_DENIED" and theirs.state == TaskState.ASSIGNED
    assert "a" not in e.take_changes().stops


def test_reports_on_a_stream_that_is_no_longer_the_providers_are_not_taken_and_so_not_acknowledged():
    e = engine()
    old = provider(e, "a", slots=1)
    submit(e, cmd("t"))
    e.take_changes()
    (task,) = e.tasks.values()
    e.disconnect("a", old)
    new = old + 1
    e.connect(Hello("a", {}, {}, 1, 1.0, ((task.id, 1),), False), conn_id=new)
    finished = [Report(task.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)]
    assert e.report("a", old, finished) is None, "the old stream's batch: nothing taken, nothing to ack"
    assert task.state != TaskState.SUCCEEDED
    assert e.report("a", new, finished) == [] and task.state == TaskState.SUCCEEDED


def _restored_with_timeout(e, paused=0.0, suspended=None):
    from jobplane.server.domain.state import AttemptRt, JobRt, ProviderRt, TaskRt

    spec = JobSpec("j", tasks=(cmd("stuck", timeout_seconds=2),))
    job = JobRt(1, "j", 0, spec, JobState.RUNNING, 90.0, counts={"total": 1, "running": 1})
    task = TaskRt(1, 1, 0, "stuck", "stuck", cmd("stuck", timeout_seconds=2), [], 1, TaskState.RUNNING, attempt=1,
                  provider="a", paused=paused, suspended=suspended or {})
    task.current = AttemptRt(1, 1, 1, "a", 95.0, start_time=95.0)
    e.restore([job], [task], [ProviderRt("a", ProviderState.ACTIVE, slots=1)])
    e.take_changes()
    provider(e, "a", slots=1, running=[(1, 1)])
    e.take_changes()
    return job


def _supervise_at(e, when):
    e.begin(when)
    e.providers["a"].last_seen = e.now
    e.supervise()
    e.take_changes()


def test_a_restored_task_s_timeout_counts_without_the_time_it_spent_suspended_before_the_restart():
    e = engine()
    job = _restored_with_timeout(e, paused=10.0)  # started at 95, suspended 10 s: terminated after 112
    _supervise_at(e, 95 + 2 + 5.1)
    assert job.state == JobState.RUNNING
    _supervise_at(e, 95 + 10 + 2 + 5.1)
    assert job.state == JobState.FAILED and "hard timeout" in job.reason


def test_a_task_suspended_across_a_restart_is_held_to_its_timeout_once_released():
    e = engine()
    job = _restored_with_timeout(e, suspended={"mode": "suspend", "cause": "hold", "since": 96.0, "reason": "x"})
    job.hold = "x (by alice)"
    e.begin(150.0)
    e.release_job(job.id)  # suspended 54 s: terminated after 95 + 54 + 2 + 5
    e.take_changes()
    _supervise_at(e, 155.0)
    assert job.state == JobState.RUNNING
    _supervise_at(e, 95 + 54 + 2 + 5.1)
    assert job.state == JobState.FAILED and "hard timeout" in job.reason


def test_a_stall_of_the_server_itself_is_not_held_against_its_providers():
    """The server did not run for 9 s (its tick came that late): the heartbeats its providers sent
    meanwhile are still to be read, so none is suspected for that silence; one that stays silent
    after the server runs again is, once its promise (1 s x tolerance 2) has passed on top."""
    e = engine()
    provider(e, "a", slots=1)
    provider(e, "b", slots=1)
    e.take_changes()
    e.begin(100 + 9.5)
    e.supervision.stalled(9.0)  # the tick found itself 9 s late
    e.supervise()
    e.report("b", hash("b") & 0xFFFF, [])  # b's heartbeat, read once the server runs again
    cs = e.take_changes()
    assert {p.state for p in e.providers.values()} == {ProviderState.ACTIVE} and not cs.probes
    e.begin(100 + 9.5 + 1.0)
    e.supervise()
    e.report("b", hash("b") & 0xFFFF, [])  # b beats on
    assert e.providers["a"].state == ProviderState.ACTIVE  # 10.5 s silent, 9 of them the server's
    e.begin(100 + 9.5 + 2.1)
    e.supervise()
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.SUSPECT and "a" in cs.probes
    assert e.providers["b"].state == ProviderState.ACTIVE


def test_without_a_stall_the_same_silence_is_suspected():
    e = engine()
    provider(e, "a", slots=1)
    e.take_changes()
    e.begin(100 + 9.5)
    e.supervise()
    assert e.providers["a"].state == ProviderState.SUSPECT


def test_a_probed_provider_still_heard_from_is_waited_for_and_one_that_never_answers_is_lost():
    """Probed at 102.5 (silent 2.5 s); a heartbeat arrives before the probe's deadline (its answer
    waits behind it on the connection): not lost at the deadline, restored by the late answer.
    Heartbeats with no answer at all: lost once the probe deadline plus its promise (1 + 2 s) passed."""
    for answers in (True, False):
        e = engine()
        conn = provider(e, "a", slots=1)
        e.take_changes()
        e.begin(102.5)
        e.supervise()
        probe_id = e.take_changes().probes["a"]
        for now in (103.0, 103.6, 104.2, 104.8, 105.4):
            e.begin(now)
            e.report("a", conn, [])  # its heartbeats keep coming
            e.supervise()
            e.take_changes()
            assert e.providers["a"].state == ProviderState.SUSPECT
        if answers:
            e.probe_reply("a", conn, probe_id, [])
            assert e.providers["a"].state == ProviderState.ACTIVE
        else:
            e.begin(106.5)  # the last wait (from 105.4) is over, and so is the patience
            e.report("a", conn, [])
            e.supervise()
            assert e.providers["a"].state == ProviderState.LOST
