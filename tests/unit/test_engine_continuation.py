"""Continuation rules, driven through the engine: order, exceptional timings, standby first,
waiting for slots, checkpoints, and the what-if plan."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import (
    Hello, JobSpec, Outcome, ProviderState, Report, ReportKind, Status, TaskSpec, TaskState)
from jobplane.server.domain.timing import TimingRule
from jobplane.server.errors import FailedPrecondition

PARIS = ZoneInfo("Europe/Paris")


def at(*ymd_hm) -> float:
    return datetime(*ymd_hm, tzinfo=PARIS).timestamp()


def engine(now: float = at(2026, 5, 20, 12, 0)) -> Engine:
    e = Engine(EngineConfig(timezone="Europe/Paris", period_ends=("09-30",)))
    e.begin(now)
    return e


def connect(e, name, slots=2, standby=False, running=()) -> int:
    conn = len(e.providers) + 1
    e.connect(Hello(name, {}, {}, slots, 1.0, tuple(running), standby), conn_id=conn)
    e.ready_signal(name, conn)
    return conn


def submit(e, name, *, priority=None, rules=(), tasks=1, job_priority=0):
    spec = JobSpec(name, job_priority, {}, (TaskSpec("t", command=("true",), matrix=(("i", "[%s]" % ",".join(
        str(i) for i in range(tasks))),)),), continuation_priority=priority, continuation_rules=tuple(rules))
    return e.submit(spec, extract_tasks(spec, max_tasks=100, default_max_attempts=1))


def tasks_of(e, job):
    return [e.tasks[t] for t in job.task_ids]


def lose(e, name, conn):
    """The provider's stream breaks and its grace passes."""
    e.disconnect(name, conn)
    (_, expire), = [t for t in e.take_changes().timers]
    expire(e)
    return e.take_changes()


def two_jobs_on_a(e):
    conn = connect(e, "a", slots=2)
    job1 = submit(e, "job1", priority=4, rules=[TimingRule("end_of_month", 2)])
    job2 = submit(e, "job2", priority=5, rules=[TimingRule("end_of_period", 0)])
    e.take_changes()
    return conn, job1, job2


def order(cs):
    (rec,) = cs.continuations
    return [(t.job_id, t.priority, t.rule) for t in sorted(rec.tasks, key=lambda t: t.position)]


def test_on_31_may_the_end_of_month_rule_puts_job_1_first():
    e = engine()
    conn, job1, job2 = two_jobs_on_a(e)
    e.begin(at(2026, 5, 31, 12, 0))
    assert order(lose(e, "a", conn)) == [(job1.id, 2, "end_of_month"), (job2.id, 5, "")]


def test_on_30_september_the_end_of_period_rule_puts_job_2_first():
    e = engine(at(2026, 9, 20, 12, 0))
    conn, job1, job2 = two_jobs_on_a(e)
    e.begin(at(2026, 9, 30, 12, 0))
    assert order(lose(e, "a", conn)) == [(job2.id, 0, "end_of_period"), (job1.id, 2, "end_of_month")]


def test_without_rules_ties_go_to_job_priority_then_submit_time():
    e = engine()
    conn = connect(e, "a", slots=3)
    first = submit(e, "first", priority=7)
    urgent = submit(e, "urgent", priority=7, job_priority=5)
    default = submit(e, "default")  # no continuation priority: 100
    e.take_changes()
    assert [j for j, _, _ in order(lose(e, "a", conn))] == [urgent.id, first.id, default.id]


def test_continuations_go_one_by_one_within_free_slots_before_queued_work():
    e = engine()
    conn = connect(e, "a", slots=2)
    job1, job2 = submit(e, "job1", priority=1), submit(e, "job2", priority=2)
    e.take_changes()
    connect(e, "b", slots=1)
    queued = submit(e, "queued", priority=0, job_priority=99)  # most important, but not a continuation
    e.take_changes()  # b took `queued`
    cs = lose(e, "a", conn)
    assert not cs.assignments  # no slot free anywhere: both wait, in order
    t1, t2 = tasks_of(e, job1)[0], tasks_of(e, job2)[0]
    assert t1.state == t2.state == TaskState.QUEUED and "waiting for a free slot to continue" in t2.reason
    more = submit(e, "later", job_priority=99)
    finish(e, "b", 2, tasks_of(e, queued)[0])
    assert assigned(e.take_changes()) == {"b": [t1.id]}
    finish(e, "b", 2, t1, attempt=2)
    assert assigned(e.take_changes()) == {"b": [t2.id]}
    finish(e, "b", 2, t2, attempt=2)
    assert assigned(e.take_changes()) == {"b": [tasks_of(e, more)[0].id]}


def test_standby_takes_continuations_first_then_is_promoted():
    e = engine()
    conn = connect(e, "a", slots=2)
    job1, job2 = submit(e, "job1", priority=1), submit(e, "job2", priority=2)
    e.take_changes()
    connect(e, "b", slots=2)
    submit(e, "job3", priority=3), submit(e, "job4", priority=4)
    e.take_changes()
    connect(e, "s", slots=1, standby=True)
    cs = lose(e, "a", conn)
    t1, t2 = tasks_of(e, job1)[0], tasks_of(e, job2)[0]
    assert assigned(cs) == {"s": [t1.id]} and t2.state == TaskState.QUEUED
    assert e.providers["s"].state == ProviderState.STANDBY
    finish(e, "s", 3, t1, attempt=2)
    cs = e.take_changes()
    assert assigned(cs) == {"s": [t2.id]}
    assert e.providers["s"].state == ProviderState.ACTIVE
    assert any(ev.message == "promoted: no continuation left to start" for ev in cs.events)


def test_the_next_attempt_resumes_from_the_last_checkpoint_of_the_current_attempt():
    e = engine()
    conn = connect(e, "a", slots=1)
    job = submit(e, "sum")
    e.take_changes()
    task = tasks_of(e, job)[0]
    e.report("a", conn, [Report(task.id, 1, ReportKind.STARTED),
                         Report(task.id, 1, ReportKind.CHECKPOINT, checkpoint_json='{"i": 5}')])
    connect(e, "b", slots=1)
    cs = lose(e, "a", conn)
    (sent,) = cs.assignments["b"]
    assert sent[0].checkpoint == '{"i": 5}' and task.current.resumed_from == '{"i": 5}'
    assert cs.continued[0][5] == '{"i": 5}'
    rejected = e.report("a", conn, [Report(task.id, 1, ReportKind.CHECKPOINT, checkpoint_json='{"i": 6}')])
    assert rejected is None and task.checkpoint == '{"i": 5}'  # a is gone: its stream is not heard


def test_a_checkpoint_from_a_superseded_attempt_is_rejected_and_the_attempt_stopped():
    e = engine()
    conn_a = connect(e, "a", slots=1)
    job = submit(e, "sum")
    e.take_changes()
    task = tasks_of(e, job)[0]
    e.drain("a", wait=False, deadline=0)
    conn_b = connect(e, "b", slots=1)
    e.take_changes()
    (rejected,) = e.report("a", conn_a, [Report(task.id, 1, ReportKind.CHECKPOINT, checkpoint_json='{"i": 9}')])
    assert rejected[:3] == (task.id, 1, "FAILED_PRECONDITION") and task.checkpoint == ""
    assert [s[:3] for s in e.take_changes().stops["a"]] == [(task.id, 1, "attempt superseded")]
    assert task.current is None  # b starts it only once a has confirmed that its attempt stopped
    e.report("a", conn_a, [Report(task.id, 1, ReportKind.FINISHED, Outcome.CANCELLED)])
    assert [t.name for t, *_ in e.take_changes().assignments["b"]] == [task.name]
    e.report("b", conn_b, [Report(task.id, 2, ReportKind.CHECKPOINT, checkpoint_json='{"i": 1}')])
    assert task.checkpoint == task.current.checkpoint == '{"i": 1}'
    huge = '"' + "x" * (1024 * 1024) + '"'
    (rejected,) = e.report("b", conn_b, [Report(task.id, 2, ReportKind.CHECKPOINT, checkpoint_json=huge)])
    assert "over the limit" in rejected[3] and task.checkpoint == '{"i": 1}'


def test_the_plan_is_what_the_failure_then_does_and_changes_nothing():
    e = engine(at(2026, 9, 20, 12, 0))
    conn = connect(e, "a", slots=3)
    jobs = [submit(e, "job1", priority=4, rules=[TimingRule("end_of_month", 2)]),
            submit(e, "job2", priority=5, rules=[TimingRule("end_of_period", 0)]),
            submit(e, "job3", priority=1)]
    e.take_changes()
    connect(e, "b", slots=1)
    connect(e, "s", slots=1, standby=True)
    e.take_changes()
    plan = e.plan("a", at=at(2026, 9, 30, 12, 0))
    assert not e.take_changes().persisted() and e.providers["a"].state == ProviderState.ACTIVE
    assert [(p.job_id, p.to_provider) for p in plan] == [
        (jobs[1].id, "s"), (jobs[2].id, "b"), (jobs[0].id, None)]
    e.begin(at(2026, 9, 30, 12, 0))
    cs = lose(e, "a", conn)
    assert [t.job_id for t in sorted(cs.continuations[0].tasks, key=lambda t: t.position)] == [p.job_id for p in plan]
    assert {p: [e.tasks[t].job_id for t in ids] for p, ids in assigned(cs).items()} == {
        "s": [jobs[1].id], "b": [jobs[2].id]}


def test_cancelling_a_waiting_continuation_takes_it_out_of_line():
    e = engine()
    conn = connect(e, "a", slots=1)
    job = submit(e, "gone")
    e.take_changes()
    lose(e, "a", conn)
    e.cancel_job(job.id, "not needed")
    connect(e, "b", slots=1)
    assert not e.take_changes().assignments


def finish(e, name, conn, task, attempt=1):
    e.report(name, conn, [Report(task.id, attempt, ReportKind.STARTED),
                          Report(task.id, attempt, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])


def assigned(cs):
    return {p: [t.id for t, *_ in items] for p, items in cs.assignments.items()}


def test_a_superseded_attempt_that_comes_back_is_never_counted_beside_its_continuation():
    e = engine()
    conn_a = connect(e, "a", slots=1)
    job = submit(e, "once")
    e.take_changes()
    task = tasks_of(e, job)[0]
    connect(e, "b", slots=1)
    lose(e, "a", conn_a)  # continued on b as attempt 2
    back = connect(e, "a", slots=1, running=[(task.id, 1)])  # the old process was alive all along
    cs = e.take_changes()
    assert [s[:3] for s in cs.stops["a"]] == [(task.id, 1, "attempt superseded")]
    assert len(e.report("a", back, [Report(task.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])) == 1
    finish(e, "b", 2, task, attempt=2)
    cs = e.take_changes()
    assert job.counts["success"] == 1 and job.counts["total"] == 1
    assert [t.task_id for rec in cs.continuations for t in rec.tasks] == []  # no second continuation


def idle(e, seconds):
    """Time passes with the providers heard from; supervision looks twice (idle is noticed, then judged)."""
    for _ in range(2):
        e.begin(e.now + seconds)
        for p in e.providers.values():
            p.last_seen = e.now
        e.supervise()
    return e.take_changes()


def test_a_promoted_standby_stays_active_however_long_it_idles():
    e = engine()
    conn = connect(e, "a", slots=1)
    job = submit(e, "job")
    e.take_changes()
    connect(e, "s", slots=1, standby=True)
    lose(e, "a", conn)
    (task,) = tasks_of(e, job)
    finish(e, "s", 2, task, attempt=2)
    e.take_changes()
    assert e.providers["s"].state == ProviderState.ACTIVE
    idle(e, e.config.standby_idle * 3)
    assert e.providers["s"].state == ProviderState.ACTIVE, "promotion sticks"


def test_a_lost_active_provider_with_no_work_is_replaced_by_a_standby():
    e = engine()
    conn = connect(e, "a", slots=2)
    connect(e, "s", slots=2, standby=True)
    e.take_changes()
    cs = lose(e, "a", conn)
    assert e.providers["s"].state == ProviderState.ACTIVE
    assert any(ev.message == "promoted: takes the place of lost provider a" for ev in cs.events)
    idle(e, e.config.standby_idle * 3)
    assert e.providers["s"].state == ProviderState.ACTIVE, "it holds the lost provider's place"


def test_a_standby_woken_for_load_goes_back_to_standby_when_idle():
    e = engine()
    connect(e, "a", slots=1)
    connect(e, "s", slots=1, standby=True)
    submit(e, "job", tasks=2)
    e.take_changes()
    assert e.providers["s"].state == ProviderState.ACTIVE
    for task in list(e.tasks.values()):
        finish(e, task.provider, 1 if task.provider == "a" else 2, task)
    idle(e, e.config.standby_idle * 3)
    assert e.providers["s"].state == ProviderState.STANDBY


def test_a_promoted_standby_that_reconnects_is_active_again_not_standby():
    e = engine()
    conn = connect(e, "a", slots=1)
    s_conn = connect(e, "s", slots=1, standby=True)
    e.take_changes()
    lose(e, "a", conn)
    assert e.providers["s"].promoted
    e.disconnect("s", s_conn)
    e.connect(Hello("s", {}, {}, 1, 1.0, (), True), conn_id=9)
    e.ready_signal("s", 9)
    assert e.providers["s"].state == ProviderState.ACTIVE


def test_a_lost_standby_is_not_replaced():
    e = engine()
    connect(e, "a", slots=1)
    s_conn = connect(e, "s", slots=1, standby=True)
    connect(e, "t", slots=1, standby=True)
    e.take_changes()
    lose(e, "s", s_conn)
    assert e.providers["t"].state == ProviderState.STANDBY


def test_end_of_period_without_the_servers_period_ends_is_refused_and_changes_nothing():
    e = Engine(EngineConfig(timezone="Europe/Paris"))
    e.begin(at(2026, 5, 20, 12, 0))
    connect(e, "a")
    with pytest.raises(FailedPrecondition, match=r"spec.continuation_rules\[1\]: end_of_period .* --period-end"):
        submit(e, "job", rules=[TimingRule("end_of_month", 2), TimingRule("end_of_period", 0)])
    assert not e.jobs and not e.tasks
    assert submit(e, "job", rules=[TimingRule("end_of_month", 2)]).id, "other calendar rules need nothing"


def cancelled_while_out(e):
    """A job cancelled while its task runs on a: the stop is sent, the agent has not answered yet."""
    conn = connect(e, "a", slots=1)
    connect(e, "b", slots=1)
    job = submit(e, "job")
    e.take_changes()
    (task,) = tasks_of(e, job)
    e.report("a", conn, [Report(task.id, 1, ReportKind.STARTED)])
    e.cancel_job(job.id, "not needed")
    e.take_changes()
    assert task.state == TaskState.CANCELLED and task.current is not None and job.id not in e.jobs
    return conn, task


def test_an_agent_stopping_with_a_cancelled_attempt_still_out_hands_nothing_on():
    e = engine()
    conn, task = cancelled_while_out(e)
    assert [t.task_id for t in e.plan("a")] == [], "nothing of it would continue"
    e.goodbye("a", conn, False, 0.0)
    cs = e.take_changes()
    assert not cs.continuations and not cs.assignments
    assert task.current is None and task.state == TaskState.CANCELLED


def test_a_lost_agent_with_a_cancelled_attempt_still_out_hands_nothing_on():
    e = engine()
    conn, task = cancelled_while_out(e)
    cs = lose(e, "a", conn)
    assert not cs.continuations and not cs.assignments and task.current is None


def test_a_task_waiting_in_the_line_shows_on_hold_while_its_job_is_held_by_hand_and_waits_again_once_released():
    e = engine()
    conn, job1, job2 = two_jobs_on_a(e)
    lose(e, "a", conn)
    (t1,), (t2,) = tasks_of(e, job1), tasks_of(e, job2)
    assert t1.status == t2.status == Status.RESTART  # in the line: no provider to continue on
    e.hold_job(job1.id, "disk swap", "olga")
    e.take_changes()
    assert t1.status == Status.ON_HOLD and "held by hand: disk swap (by olga)" in t1.reason
    assert t2.status == Status.RESTART
    e.release_job(job1.id)
    e.take_changes()
    assert t1.status == Status.RESTART and "waiting for a free slot to continue" in t1.reason
    connect(e, "b", slots=2)
    e.take_changes()
    assert t1.state == t2.state == TaskState.ASSIGNED
