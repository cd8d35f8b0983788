"""Queue-ahead (ahead.py), driven through the engine with its clock: which tasks are given to an
agent beyond its slots, and when none are."""

from support_engine import assigned, cmd, engine, provider, run_timers

from jobplane.server.domain.ahead import NOT_STARTED, QUEUED_AHEAD, QUICK, WINDOW
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import (
    ExternalSpec, Hello, JobSpec, Lateness, Outcome, Report, ReportKind, Status, TaskSpec, TaskState)
from jobplane.server.services.convert import assignment_to_proto


def submit(e, n, name="job", priority=0):
    return submit_spec(e, JobSpec(name, priority, {}, tuple(cmd(f"{name}-{i}") for i in range(n))))


def submit_spec(e, spec):
    return e.submit(spec, extract_tasks(spec, max_tasks=1000, default_max_attempts=1))


def out_at(e, name):
    return [t for t in e.tasks.values() if t.provider == name and t.state in (TaskState.ASSIGNED, TaskState.RUNNING)]


def run(e, name, conn, tasks, seconds):
    """The agent starts each of `tasks` now and reports it finished `seconds` later."""
    now = e.now
    e.report(name, conn, [Report(t.id, t.attempt, ReportKind.STARTED) for t in tasks])
    e.take_changes()
    e.begin(now + seconds)
    e.report(name, conn, [Report(t.id, t.attempt, ReportKind.FINISHED, Outcome.SUCCEEDED, 0) for t in tasks])


def give_back(e, name, conn, task, attempt):
    """The agent gives the attempt back unstarted: no slot freed for it."""
    e.report(name, conn, [Report(task.id, attempt, ReportKind.FINISHED, Outcome.CANCELLED, None,
                                 raw={"state": NOT_STARTED})])


def test_a_new_jobs_tasks_fill_only_the_slots():
    e = engine()
    provider(e, "a", slots=2, ahead=8)
    submit(e, 10)
    assert len(assigned(e.take_changes())["a"]) == 2
    assert len(e.ready) == 8


def test_once_tasks_finish_quickly_as_many_as_finished_within_the_window_are_queued_ahead():
    e = engine()
    conn = provider(e, "a", slots=2, ahead=8)
    submit(e, 20)
    e.take_changes()
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    cs = e.take_changes()
    # Two slots freed, and the two quick finishes let two more wait at the agent.
    assert len(assigned(cs)["a"]) == 4
    assert len(out_at(e, "a")) == 4
    ahead = [ev for ev in cs.events if ev.raw_status == "ASSIGNED" and ev.message == QUEUED_AHEAD]
    assert len(ahead) == 2, "the tasks queued ahead say so; those in free slots do not"
    view = e.providers["a"]
    assert len(view.in_flight) - view.slots == 2


def test_never_more_than_the_agent_holds_ahead():
    e = engine()
    conn = provider(e, "a", slots=2, ahead=3)
    submit(e, 50)
    e.take_changes()
    for _ in range(4):
        run(e, "a", conn, out_at(e, "a"), QUICK / 10)
        e.take_changes()
        assert len(out_at(e, "a")) <= 2 + 3
    assert len(out_at(e, "a")) == 5


def test_a_job_whose_last_attempt_was_slow_is_not_queued_ahead():
    e = engine()
    conn = provider(e, "a", slots=2, ahead=8)
    submit(e, 20)
    e.take_changes()
    run(e, "a", conn, out_at(e, "a"), QUICK * 3)
    assert len(assigned(e.take_changes())["a"]) == 2, "the freed slots only"


def test_finishes_older_than_the_window_give_no_room():
    e = engine()
    conn = provider(e, "a", slots=2, ahead=8)
    submit(e, 20)
    e.take_changes()
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    e.take_changes()
    assert len(out_at(e, "a")) == 4  # two in the freed slots, two ahead for the two finishes
    e.begin(e.now + WINDOW * 2)  # then the agent's pace is stale: one quick finish, long after
    run(e, "a", conn, out_at(e, "a")[:1], QUICK / 10)
    e.take_changes()
    # Only that finish counts now (room for one ahead), and three are still out at it: nothing
    # more goes (with the stale finishes counted, two more would).
    assert len(out_at(e, "a")) == 3


def test_every_providers_free_slots_are_filled_before_any_task_is_queued_ahead():
    e = engine()
    conn = provider(e, "a", slots=2, ahead=8)
    submit(e, 3, name="first")
    e.take_changes()
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    e.take_changes()  # "first" is quick now; its last task went to a free slot
    provider(e, "b", slots=4)
    submit(e, 5, name="first-again")  # a new job: not quick
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    e.take_changes()
    assert len(out_at(e, "b")) == 4 and len(out_at(e, "a")) == 1, "free slots only: the new job is not quick"


def test_a_slow_or_new_job_first_in_line_stops_queueing_ahead_rather_than_jump_it():
    e = engine()
    conn = provider(e, "a", slots=1, ahead=8)
    submit(e, 30, name="quick")
    e.take_changes()
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    e.take_changes()
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    e.take_changes()
    assert len(out_at(e, "a")) > 1, "the quick job is queued ahead"
    submit(e, 5, name="urgent", priority=5)  # first in line, and not known to be quick
    held = {t.id for t in out_at(e, "a")}
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    cs = e.take_changes()
    names = [name for name, _ in assigned(cs)["a"]]
    assert names == ["urgent-0"], "the freed slot goes to the urgent job; nothing of the quick job jumps it"
    assert not held & {t.id for t in out_at(e, "a")}


def test_an_agent_that_holds_nothing_ahead_gets_only_its_slots():
    e = engine()
    conn = provider(e, "a", slots=2)  # an agent of an earlier release: queue_ahead 0
    submit(e, 20)
    e.take_changes()
    for _ in range(3):
        run(e, "a", conn, out_at(e, "a"), QUICK / 10)
        e.take_changes()
        assert len(out_at(e, "a")) == 2


def test_nothing_is_queued_ahead_behind_a_task_of_a_job_not_known_to_be_quick():
    e = engine()
    conn = provider(e, "a", slots=1, ahead=8)
    submit(e, 30, name="quick")
    e.take_changes()
    for _ in range(2):
        run(e, "a", conn, out_at(e, "a"), QUICK / 10)
        e.take_changes()
    submit(e, 1, name="long", priority=5)  # its one task takes a's only slot, for who knows how long
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    cs = e.take_changes()
    assert [name for name, _ in assigned(cs)["a"]] == ["long-0"], "no quick task waits behind it at a"
    run(e, "a", conn, out_at(e, "a"), QUICK * 100)  # the long task ends: quick tasks fill the slot again
    after = [name for name, _ in assigned(e.take_changes())["a"]]
    assert after and all(name.startswith("quick-") for name in after)


def test_tasks_queued_ahead_are_marked_so_for_the_agent():
    e = engine()
    conn = provider(e, "a", slots=2, ahead=8)
    submit(e, 20)
    e.take_changes()
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    cs = e.take_changes()
    assert [a.ahead for a in cs.assignments["a"]] == [False, False, True, True]


def test_a_task_given_back_unstarted_is_queued_again_and_not_counted_as_a_try():
    e = engine()
    conn = provider(e, "a", slots=1, ahead=8)
    spec = JobSpec("job", 0, {}, tuple(cmd(f"job-{i}") for i in range(10)))
    submit_spec(e, spec)
    e.take_changes()
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    cs = e.take_changes()
    (back,) = [a.task for a in cs.assignments["a"] if a.ahead]
    e.begin(e.now + 1.0)  # the agent waited a second for a slot: its other task runs on
    give_back(e, "a", conn, back, 1)
    cs = e.take_changes()
    assert back.state == TaskState.QUEUED and back.tries == 0
    assert "given back unstarted by a" in back.reason
    provider(e, "b", slots=1)
    assert [n for n, _ in assigned(e.take_changes())["b"]] == [back.name], "it goes to the free slot elsewhere"
    e.report("b", hash("b") & 0xFFFF, [Report(back.id, 2, ReportKind.STARTED),
                                       Report(back.id, 2, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])
    e.take_changes()
    assert back.state == TaskState.SUCCEEDED, "max_attempts 1: the attempt given back was not a try"


def test_a_task_given_back_unstarted_still_becomes_late_to_start_past_its_max_wait():
    """A hold's requeue exempts a task from late-to-start (it started already); a give-back must
    not: the task never started, and it still waits past its deadline."""
    e = engine()
    conn = provider(e, "a", slots=1, ahead=8)
    tasks = [cmd(f"job-{i}", lateness=Lateness(max_wait_seconds=5)) for i in range(10)]
    spec = JobSpec("job", 0, {}, tuple(tasks))
    submit_spec(e, spec)
    submitted, timers = e.now, e.take_changes()
    run(e, "a", conn, out_at(e, "a"), QUICK / 10)
    (back,) = [a.task for a in e.take_changes().assignments["a"] if a.ahead]
    (long,) = [t for t in out_at(e, "a") if t is not back]
    e.report("a", conn, [Report(long.id, long.attempt, ReportKind.STARTED)])  # it turns out long
    e.begin(e.now + 1.0)
    give_back(e, "a", conn, back, 1)
    e.take_changes()
    assert back.state == TaskState.QUEUED
    run_timers(e, timers, submitted, submitted + 5)  # no slot anywhere: it still waits
    assert back.state == TaskState.QUEUED and back.status == Status.LATE_TO_START
    assert "late to start" in back.reason


def test_a_task_to_follow_an_outside_job_given_back_unstarted_still_follows_it_next():
    """An external task whose agent came back without it waits to adopt its outside job, which
    runs on (adoption.py). Queued ahead and given back unstarted, its next attempt must still
    adopt that job: not submit a second one while the first runs."""
    e = engine()
    ext = TaskSpec("ext", external=ExternalSpec(("submit",), ("poll",), ("cancel",)), requires={"outside": "yes"})
    spec = JobSpec("job", 0, {}, (ext,) + tuple(cmd(f"job-{i}") for i in range(10)), wait_for_providers=True)
    submit_spec(e, spec)
    task = next(t for t in e.tasks.values() if t.name == "ext")
    conn_b = provider(e, "b", slots=1, labels={"outside": "yes"})
    assert assigned(e.take_changes())["b"] == [("ext", 1)]
    e.report("b", conn_b, [Report(task.id, 1, ReportKind.STARTED, external_job_id="4242")])
    conn_a = provider(e, "a", slots=1, labels={"outside": "yes"}, ahead=8)
    e.take_changes()
    run(e, "a", conn_a, out_at(e, "a"), QUICK / 10)  # the job is quick: a holds one ahead
    e.take_changes()
    # b's agent comes back without it (nor the label it needs): the outside job runs on, for the next to adopt.
    e.disconnect("b", conn_b)
    e.connect(Hello("b", {}, {}, 1, 1.0, ()), conn_id=conn_b + 1)
    e.ready_signal("b", conn_b + 1)
    e.take_changes()
    assert task.state == TaskState.QUEUED and task.adopt_job == "4242"
    run(e, "a", conn_a, [t for t in out_at(e, "a") if t.current.start_time is None][:1], QUICK / 10)
    cs = e.take_changes()
    assert ("ext", 2) in assigned(cs)["a"] and [a.ahead for a in cs.assignments["a"] if a.task is task] == [True]
    e.begin(e.now + 1.0)  # no slot freed for it at a within a second
    give_back(e, "a", conn_a, task, 2)
    e.take_changes()
    assert task.state == TaskState.QUEUED
    provider(e, "c", slots=1, labels={"outside": "yes"})
    e.take_changes()
    assert task.current is not None and task.current.provider == "c"
    assert assignment_to_proto(task, task.attempt).adopt_external_job_id == "4242", "it follows the job running"
