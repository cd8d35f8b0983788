"""Taking back tasks handed to an agent but not started (ahead.py take_back), driven through the
engine: a plain hold and failing conditions ask the agent to give them back only if unstarted;
the answer queues them again, held and not counted as a try; a start that came first runs on;
a reconnect asks again; an older agent is never asked; a requeue hold of an attempt that never
started counts it as given back."""

from __future__ import annotations

from support_engine import cmd, engine

from jobplane.server.domain.ahead import NOT_STARTED
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import Hello, JobSpec, Outcome, Report, ReportKind, Status, TaskState

CONN = 7


def connect(e, gives_back=True, running=(), conn=CONN):
    e.connect(Hello("a", {}, {}, 2, 1.0, tuple(running), gives_back=gives_back), conn_id=conn)
    e.ready_signal("a", conn)


def two_assigned(e, gives_back=True, conditions=()):
    """A job of three tasks at a two-slot agent: two assigned, one queued; (job, [the two])."""
    connect(e, gives_back)
    e.live_facts("a", CONN, {"ok": 1.0})
    spec = JobSpec("job", tasks=tuple(cmd(f"t{i}") for i in range(3)), conditions=conditions)
    job = e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    e.take_changes()
    out = sorted((t for t in e.tasks.values() if t.state == TaskState.ASSIGNED), key=lambda t: t.id)
    assert len(out) == 2
    return job, out


def asked_back(cs):
    return [(s.task_id, s.attempt) for s in cs.stops.get("a", ()) if s.unstarted_only]


def give_back(e, task, conn=CONN):
    e.report("a", conn, [Report(task.id, task.attempt, ReportKind.FINISHED, Outcome.CANCELLED,
                                error="given back unstarted", raw={"state": NOT_STARTED})])


def test_a_plain_hold_asks_back_what_has_not_started_and_its_answer_holds_it_without_a_try():
    e = engine()
    job, (first, second) = two_assigned(e)
    e.report("a", CONN, [Report(first.id, 1, ReportKind.STARTED)])
    e.take_changes()
    e.hold_job(job.id, "db maintenance", "alice")
    assert asked_back(e.take_changes()) == [(second.id, 1)], "the running one is left alone"
    give_back(e, second)
    e.take_changes()
    assert second.state == TaskState.QUEUED and second.status == Status.ON_HOLD and "db maintenance" in second.reason
    assert second.tries == 0 and second.given_back == 1
    assert first.state == TaskState.RUNNING


def test_a_task_that_started_before_the_ask_reached_its_agent_runs_on():
    e = engine()
    job, (first, second) = two_assigned(e)
    e.hold_job(job.id, "", "alice")
    assert sorted(asked_back(e.take_changes())) == [(first.id, 1), (second.id, 1)]
    e.report("a", CONN, [Report(first.id, 1, ReportKind.STARTED)])  # its agent had given it a slot
    give_back(e, second)
    e.take_changes()
    assert first.state == TaskState.RUNNING and first.current is not None
    e.report("a", CONN, [Report(first.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, exit_code=0)])
    e.take_changes()
    assert first.state == TaskState.SUCCEEDED and second.status == Status.ON_HOLD


def test_released_before_the_answer_the_task_given_back_is_queued_to_run():
    e = engine()
    job, (_, second) = two_assigned(e)
    e.hold_job(job.id, "", "alice")
    e.release_job(job.id)
    e.take_changes()
    give_back(e, second)
    cs = e.take_changes()
    assert [a.task.id for a in cs.assignments.get("a", ())] == [second.id], "straight back to the free slot"


def test_an_older_agent_is_never_asked():
    e = engine()
    job, _ = two_assigned(e, gives_back=False)
    e.hold_job(job.id, "", "alice")  # one task is still queued: the hold holds that one
    assert asked_back(e.take_changes()) == []


def test_a_reconnecting_agent_is_asked_again():
    e = engine()
    job, (first, second) = two_assigned(e)
    e.hold_job(job.id, "", "alice")
    e.take_changes()
    e.disconnect("a", CONN)
    e.take_changes()
    connect(e, running=((first.id, 1), (second.id, 1)), conn=CONN + 1)
    assert sorted(asked_back(e.take_changes())) == [(first.id, 1), (second.id, 1)]


def test_tasks_assigned_to_an_agent_that_stops_meeting_their_conditions_are_asked_back():
    e = engine()
    job, (first, second) = two_assigned(e, conditions=("ok>=1",))
    e.report("a", CONN, [Report(first.id, 1, ReportKind.STARTED)])
    e.take_changes()
    e.live_facts("a", CONN, {"ok": 1.0})
    assert asked_back(e.take_changes()) == []
    e.live_facts("a", CONN, {"ok": 0.0})
    assert asked_back(e.take_changes()) == [(second.id, 1)], "the running one runs on (on_condition_lost)"
    e.live_facts("a", CONN, {"ok": 0.0})
    assert asked_back(e.take_changes()) == [], "asked once"
    give_back(e, second)
    e.take_changes()
    assert second.state == TaskState.QUEUED and second.current is None and second.tries == 0


def test_a_requeue_hold_of_an_attempt_that_never_started_counts_it_as_given_back():
    e = engine()
    job, (first, second) = two_assigned(e)
    e.report("a", CONN, [Report(first.id, 1, ReportKind.STARTED)])
    e.take_changes()
    e.hold_job(job.id, "", "bob", "requeue")
    e.take_changes()
    e.report("a", CONN, [Report(t.id, 1, ReportKind.FINISHED, Outcome.CANCELLED) for t in (first, second)])
    e.take_changes()
    assert (first.held_attempts, first.given_back) == (1, 0), "it ran: a hold stopped it"
    assert (second.held_attempts, second.given_back) == (0, 1), "it never started"
    assert first.tries == second.tries == 0


def test_a_reconnecting_agent_is_asked_again_for_what_a_suspend_hold_took_back():
    """A --suspend hold asks back what has not started (and suspends it, should it start
    meanwhile); the ask lost with the stream is made again as the agent reconnects, as a plain
    hold's is: else a task queued ahead there takes the next free slot only to be paused in it.
    Also after a restart of the server (it knows then only that the job is held by hand)."""
    e = engine()
    job, (first, second) = two_assigned(e)
    e.hold_job(job.id, "db maintenance", "alice", mode="suspend")
    assert sorted(asked_back(e.take_changes())) == [(first.id, 1), (second.id, 1)]
    e.disconnect("a", CONN)
    e.take_changes()
    connect(e, running=((first.id, 1), (second.id, 1)), conn=CONN + 1)
    assert sorted(asked_back(e.take_changes())) == [(first.id, 1), (second.id, 1)]
    e.queue_ahead._asked.clear()  # as a restarted server: nothing asked yet that it knows of
    e.disconnect("a", CONN + 1)
    e.take_changes()
    connect(e, running=((first.id, 1), (second.id, 1)), conn=CONN + 2)
    cs = e.take_changes()
    assert sorted(asked_back(cs)) == [(first.id, 1), (second.id, 1)]
    assert all("held by hand: db maintenance" in s.reason for s in cs.stops["a"] if s.unstarted_only)
    give_back(e, second, conn=CONN + 2)
    e.take_changes()
    assert second.state == TaskState.QUEUED and second.status == Status.ON_HOLD and not second.suspended


def test_a_hold_says_what_it_suspended_and_what_it_asked_back():
    e = engine()
    job, (first, second) = two_assigned(e)
    e.report("a", CONN, [Report(first.id, 1, ReportKind.STARTED)])
    e.take_changes()
    e.hold_job(job.id, "db maintenance", "alice", mode="suspend")
    (said,) = [ev.message for ev in e.take_changes().events if ev.task_id is None]  # the job's event
    assert said == ("held by hand: db maintenance (by alice); 1 running task suspended; "
                    "1 task assigned but not started asked back from its agent")
