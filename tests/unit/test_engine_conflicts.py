"""Conflicts and holds, driven through the engine with an injected clock: the conflict matrix,
holds and their release in priority order, windows, manual holds, transient reruns, runtime
conditions and learned overlaps."""

from dataclasses import replace

import pytest

from jobplane.server.domain.conflicts import EXCLUSIVE, LOCK, READ, WRITE, ConflictRule, Selector
from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import (
    JobSpec, JobState, Outcome, Report, ReportKind, Status, TaskState, Transient)
from jobplane.server.domain.windows import Window
from jobplane.server.errors import FailedPrecondition, InvalidArgument

from support_engine import assigned, cmd, provider

T0 = 1_764_000_000.0  # a fixed "now"


class Clock:
    """The engine plus the timers its batches ask for, run when the clock passes them."""

    def __init__(self, e: Engine) -> None:
        self.e, self.timers = e, []

    def changes(self):
        cs = self.e.take_changes()
        self.timers += [(self.e.now + delay, fn) for delay, fn in cs.timers]
        return cs

    def advance(self, seconds: float):
        self.e.begin(self.e.now + seconds)
        due = sorted((t for t in self.timers if t[0] <= self.e.now), key=lambda t: t[0])
        self.timers = [t for t in self.timers if t[0] > self.e.now]
        for _, fn in due:
            fn(self.e)
        return self.changes()


def engine():
    e = Engine(EngineConfig(reconnect_grace=1.0))
    e.begin(T0)
    return e, Clock(e)


def job(e, name, *, job_class="", priority=0, tasks=1, **fields):
    spec = JobSpec(name, priority, {}, tuple(cmd(f"{name}-{i}") for i in range(tasks)), job_class=job_class,
                   wait_for_providers=True, **fields)
    return e.submit(spec, extract_tasks(spec, max_tasks=100, default_max_attempts=1))


def tasks_of(e, j):
    return [e.tasks[t] for t in j.task_ids if t in e.tasks]


def run(e, p, conn, j, outcome=Outcome.SUCCEEDED, exit_code=0, raw=None):
    """Start and finish every out task of job `j` on provider `p`."""
    for t in tasks_of(e, j):
        if t.state in (TaskState.ASSIGNED, TaskState.RUNNING):
            e.report(p, conn, [Report(t.id, t.attempt, ReportKind.STARTED),
                               Report(t.id, t.attempt, ReportKind.FINISHED, outcome, exit_code, raw=raw or {})])


def exclusive(name, a, b=""):
    return ConflictRule(name, EXCLUSIVE, Selector(job_class=a), Selector(job_class=b) if b else Selector())


def test_exclusive_jobs_never_overlap_and_the_held_one_starts_by_itself():
    e, clock = engine()
    conn = provider(e, "a", slots=4)
    e.add_conflict_rule(exclusive("loads", "load"))
    first, second = job(e, "first", job_class="load"), job(e, "second", job_class="load")
    cs = clock.changes()
    assert assigned(cs) == {"a": [("first-0", 1)]}
    held = tasks_of(e, second)[0]
    assert held.status == Status.ON_HOLD and "held by job 1 first (rule loads)" in held.reason
    assert second.status == Status.ON_HOLD and e.jobs[second.id].reason == held.reason
    run(e, "a", conn, first)
    cs = clock.changes()
    assert first.state == JobState.SUCCEEDED
    assert assigned(cs) == {"a": [("second-0", 1)]}


def test_a_job_does_not_conflict_with_itself_and_unrelated_jobs_run_beside():
    e, clock = engine()
    provider(e, "a", slots=8)
    e.add_conflict_rule(exclusive("backup-vs-load", "backup", "load"))
    job(e, "backup", job_class="backup", tasks=2)
    job(e, "report", job_class="report")
    job(e, "load", job_class="load")
    names = sorted(n for n, _ in assigned(clock.changes())["a"])
    assert names == ["backup-0", "backup-1", "report-0"]


def test_shared_locks_let_readers_run_together_and_a_writer_alone():
    e, clock = engine()
    conn = provider(e, "a", slots=8)
    e.add_conflict_rule(ConflictRule("readers", LOCK, Selector(job_class="report"), resource="orders", mode=READ))
    e.add_conflict_rule(ConflictRule("writer", LOCK, Selector(job_class="load"), resource="orders", mode=WRITE))
    r1, r2 = job(e, "r1", job_class="report"), job(e, "r2", job_class="report")
    w = job(e, "w", job_class="load")
    r3 = job(e, "r3", job_class="report")
    assert sorted(n for n, _ in assigned(clock.changes())["a"]) == ["r1-0", "r2-0", "r3-0"]
    assert "read lock on orders (rule readers)" in tasks_of(e, w)[0].reason
    run(e, "a", conn, r1)
    run(e, "a", conn, r2)
    assert not clock.changes().assignments  # r3 still reads
    run(e, "a", conn, r3)
    assert assigned(clock.changes()) == {"a": [("w-0", 1)]}
    late_reader = job(e, "r4", job_class="report")
    clock.changes()
    assert "write lock on orders (rule writer)" in tasks_of(e, late_reader)[0].reason


def test_locks_a_job_declares_itself_conflict_like_rules():
    e, clock = engine()
    provider(e, "a", slots=4)
    job(e, "one", locks={"ledger": "write"})
    two = job(e, "two", locks={"ledger": "read"})
    clock.changes()
    assert tasks_of(e, two)[0].reason.startswith("held by job 1 one (write lock on ledger)")


def test_held_jobs_start_in_priority_order_when_the_conflict_clears():
    e, clock = engine()
    conn = provider(e, "a", slots=4)
    e.add_conflict_rule(exclusive("one-at-a-time", "etl"))
    running = job(e, "running", job_class="etl")
    low = job(e, "low", job_class="etl", priority=1)
    high = job(e, "high", job_class="etl", priority=9)
    clock.changes()
    run(e, "a", conn, running)
    assert assigned(clock.changes()) == {"a": [("high-0", 1)]}
    assert "held by job 3 high" in tasks_of(e, low)[0].reason
    run(e, "a", conn, high)
    assert assigned(clock.changes()) == {"a": [("low-0", 1)]}


def test_removing_a_rule_releases_what_it_held():
    e, clock = engine()
    provider(e, "a", slots=4)
    e.add_conflict_rule(exclusive("x", "etl"))
    job(e, "one", job_class="etl")
    two = job(e, "two", job_class="etl")
    clock.changes()
    e.remove_conflict_rule("x")
    assert assigned(clock.changes()) == {"a": [("two-0", 1)]}
    assert two.status == Status.WAITING
    with pytest.raises(Exception, match="no conflict rule named 'x'"):
        e.remove_conflict_rule("x")


def test_check_names_what_would_hold_a_job():
    e, clock = engine()
    provider(e, "a", slots=4)
    e.add_conflict_rule(exclusive("x", "etl"))
    job(e, "one", job_class="etl")
    clock.changes()
    held, reason, blockers = e.check_job(JobSpec("new", job_class="etl"), None)
    assert held and reason == "held by job 1 one (rule x)"
    assert blockers == [("1", "one", "x", "jobs with class=etl never run together")]
    assert e.check_job(JobSpec("new", job_class="other"), None) == (False, "nothing holds it: it may start now", [])
    assert e.check_job(JobSpec("one", job_class="etl"), 1)[:2] == (False, "admitted: it holds its locks and runs, "
                                                                          "or waits for a free slot")


def test_manual_hold_keeps_tasks_back_and_release_lets_them_go_in_their_place():
    e, clock = engine()
    conn = provider(e, "a", slots=1)
    busy = job(e, "busy", priority=10)
    first, second = job(e, "first", priority=5), job(e, "second", priority=1)
    clock.changes()
    e.hold_job(first.id, "waiting for the DBA", "alice")
    clock.changes()
    assert first.status == Status.ON_HOLD and "waiting for the DBA (by alice)" in first.hold
    assert tasks_of(e, first)[0].status == Status.ON_HOLD
    run(e, "a", conn, busy)
    assert assigned(clock.changes()) == {"a": [("second-0", 1)]}
    run(e, "a", conn, second)
    clock.changes()
    third = job(e, "third", priority=1)
    e.hold_job(third.id, "", "bob")
    e.release_job(first.id)
    assert assigned(clock.changes()) == {"a": [("first-0", 1)]}
    with pytest.raises(FailedPrecondition, match="not held by hand"):
        e.release_job(first.id)


def test_a_window_that_closes_makes_the_job_late_then_fails_it_with_the_reason():
    e, clock = engine()
    provider(e, "a", slots=4)
    e.add_conflict_rule(exclusive("x", "etl"))
    job(e, "long", job_class="etl")
    windowed = job(e, "windowed", job_class="etl", window=Window(give_up_after_seconds=10))
    clock.changes()
    assert windowed.status == Status.ON_HOLD
    clock.advance(4.9)
    assert windowed.status == Status.ON_HOLD
    clock.advance(0.2)  # half the window gone
    assert windowed.status == Status.LATE_TO_START
    clock.advance(5.0)
    assert windowed.state == JobState.FAILED
    assert "its window closed at" in windowed.reason and "held by job 1 long (rule x)" in windowed.reason


def test_a_run_window_holds_the_job_until_it_opens(monkeypatch):
    e, clock = engine()
    provider(e, "a", slots=4)
    # T0 is 16:00 UTC: a 16:01-16:02 window opens a minute later.
    windowed = job(e, "nightly", window=Window(run_window="16:01-16:02"))
    cs = clock.changes()
    assert not cs.assignments and "waiting for its window" in tasks_of(e, windowed)[0].reason
    assert assigned(clock.advance(60.1)) == {"a": [("nightly-0", 1)]}


def test_a_transient_failure_is_rerun_without_using_up_an_attempt():
    e, clock = engine()
    conn = provider(e, "a", slots=2)
    j = job(e, "victim", transient=Transient(max_reruns=2, backoff_seconds=1.0))
    clock.changes()
    run(e, "a", conn, j, Outcome.FAILED, exit_code=75)
    clock.changes()
    task = tasks_of(e, j)[0]
    assert task.state == TaskState.QUEUED and task.reruns == 1 and "transient (exit code 75)" in task.reason
    assert assigned(clock.advance(1.3)) == {"a": [("victim-0", 2)]}
    run(e, "a", conn, j, Outcome.FAILED, exit_code=1, raw={"status": "deadlock"})
    clock.changes()
    assert task.reruns == 2
    clock.advance(2.5)
    run(e, "a", conn, j, Outcome.FAILED, exit_code=75)
    clock.changes()
    assert j.state == JobState.FAILED  # out of reruns: an ordinary failure, max_attempts 1


def test_no_rerun_past_the_window():
    e, clock = engine()
    conn = provider(e, "a", slots=2)
    j = job(e, "victim", window=Window(give_up_after_seconds=0.8))
    clock.changes()
    run(e, "a", conn, j, Outcome.FAILED, exit_code=75)
    clock.changes()
    assert j.state == JobState.FAILED


def test_a_load_condition_holds_a_task_until_the_load_drops():
    e, clock = engine()
    conn = provider(e, "a", slots=2)
    e.live_facts("a", conn, {"load_average": 5.0})
    j = job(e, "careful", conditions=("load_average<2",))
    cs = clock.changes()
    task = tasks_of(e, j)[0]
    assert not cs.assignments and task.status == Status.ON_HOLD
    assert "load_average<2 (is 5)" in task.reason
    assert j.status == Status.ON_HOLD, "the job says it is held, not merely waiting"
    assert any(ev.job_id == j.id and not ev.task_id and ev.status == Status.ON_HOLD and "load_average<2" in ev.message
               for ev in cs.events)
    e.live_facts("a", conn, {"load_average": 0.5})
    assert assigned(clock.changes()) == {"a": [("careful-0", 1)]}
    assert j.status != Status.ON_HOLD


def test_conditions_are_validated_with_their_index():
    spec = JobSpec("x", tasks=(cmd("t"),), conditions=("load_average<2", "load is high"))
    with pytest.raises(InvalidArgument, match=r"spec.conditions\[1\]"):
        extract_tasks(spec, max_tasks=10, default_max_attempts=1)
    with pytest.raises(InvalidArgument, match="spec.run_window"):
        extract_tasks(replace(spec, conditions=(), window=Window(run_window="25:00-01:00")), max_tasks=10,
                      default_max_attempts=1)


def test_transient_failures_beside_another_class_are_recorded_as_overlaps():
    e, clock = engine()
    conn = provider(e, "a", slots=4)
    job(e, "backup", job_class="backup")
    victim = job(e, "load", job_class="load")
    clock.changes()
    run(e, "a", conn, victim, Outcome.FAILED, exit_code=75)
    cs = clock.changes()
    assert [(a, b) for a, b, _ in cs.overlaps] == [("class=backup", "class=load")]


def test_a_restarted_engine_holds_again_what_was_held():
    e, clock = engine()
    provider(e, "a", slots=4)
    e.add_conflict_rule(exclusive("x", "etl"))
    one, two = job(e, "one", job_class="etl"), job(e, "two", job_class="etl")
    clock.changes()
    jobs = [one, two]
    tasks = [t for j in jobs for t in tasks_of(e, j)]
    again = Engine(EngineConfig())
    again.begin(T0 + 1)
    again.restore(jobs, tasks, [], rules=[exclusive("x", "etl")])
    admitted = [j.id for j in again.holds.admitted()]
    assert one.id in admitted and two.id not in admitted
    assert tasks_of(again, two)[0].status == Status.ON_HOLD


def test_a_running_job_held_by_hand_keeps_the_reason_it_failed_for():
    e, clock = engine()
    conn = provider(e, "a", slots=1)
    j = job(e, "two", tasks=2)
    clock.changes()
    e.hold_job(j.id, "careful", "alice")
    clock.changes()
    run(e, "a", conn, j, Outcome.FAILED, exit_code=2)
    e.release_job(j.id)
    clock.changes()
    run(e, "a", conn, j)
    clock.changes()
    assert j.state == JobState.FAILED and j.reason == "task two-0 exited with code 2"


def test_a_task_held_before_a_restart_whose_holder_is_gone_waits_again():
    e, clock = engine()
    provider(e, "a", slots=4)
    e.add_conflict_rule(exclusive("x", "etl"))
    one, two = job(e, "one", job_class="etl"), job(e, "two", job_class="etl")
    clock.changes()
    held = tasks_of(e, two)[0]
    assert held.status == Status.ON_HOLD
    again = Engine(EngineConfig())
    again.begin(T0 + 1)
    again.restore([two], [held], [], rules=[exclusive("x", "etl")])  # job one ended meanwhile
    assert held.status == Status.WAITING and held.id in again.ready
