"""A fast task's start and end reported in one batch make one event, the end's, in the place
and with the id of the start's: no reader could have seen the task RUNNING (both are in one
commit), so a watcher misses no state, and ids stay consecutive. Apart, both are events."""

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import EventKind, JobSpec, Hello, Outcome, Report, ReportKind, TaskSpec


def engine_with_job(*names: str):
    e = Engine(EngineConfig(reconnect_grace=1.0))
    e.begin(100.0)
    e.connect(Hello("a", {}, {}, 4, 1.0, (), False), conn_id=1)
    e.ready_signal("a", 1)
    spec = JobSpec("j", 0, {}, tuple(TaskSpec(n, command=("true",)) for n in names))
    job = e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    e.take_changes()
    return e, job, {t.name: t for t in e.tasks.values()}


def task_path(events, task_id):
    return [(ev.raw_status, ev.attempt, ev.provider_id) for ev in events
            if ev.kind == EventKind.TASK and ev.task_id == task_id]


def started(task):
    return Report(task.id, 1, ReportKind.STARTED)


def finished(task, outcome=Outcome.SUCCEEDED, code=0):
    return Report(task.id, 1, ReportKind.FINISHED, outcome, code)


def test_start_and_end_in_one_batch_are_one_event_in_the_starts_place():
    e, job, tasks = engine_with_job("t")
    t = tasks["t"]
    e.report("a", 1, [started(t), finished(t)])
    cs = e.take_changes()
    assert task_path(cs.events, t.id) == [("SUCCEEDED", 1, "a")]
    ids = [ev.id for ev in cs.events]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "ids stay consecutive"
    kinds = [(ev.kind, ev.raw_status) for ev in cs.events]
    assert kinds.index((EventKind.TASK, "SUCCEEDED")) < kinds.index((EventKind.JOB, "SUCCEEDED")), \
        "the task's end still comes before its job's"


def test_a_failure_takes_the_starts_place_too():
    e, job, tasks = engine_with_job("t")
    t = tasks["t"]
    e.report("a", 1, [started(t), finished(t, Outcome.FAILED, 3)])
    assert task_path(e.take_changes().events, t.id) == [("FAILED", 1, "a")]


def test_start_and_end_in_two_batches_are_two_events():
    e, job, tasks = engine_with_job("t")
    t = tasks["t"]
    e.report("a", 1, [started(t)])
    first = e.take_changes()
    e.report("a", 1, [finished(t)])
    second = e.take_changes()
    assert task_path(first.events, t.id) == [("RUNNING", 1, "a")]
    assert task_path(second.events, t.id) == [("SUCCEEDED", 1, "a")]


def test_anything_said_between_start_and_end_keeps_the_start():
    e, job, tasks = engine_with_job("t")
    t = tasks["t"]
    e.report("a", 1, [started(t), Report(t.id, 1, ReportKind.STATUS, raw={"status": "warming up"}), finished(t)])
    assert [s for s, _, _ in task_path(e.take_changes().events, t.id)] == ["RUNNING", "warming up", "SUCCEEDED"]


def test_only_a_tasks_own_start_is_replaced():
    e, job, tasks = engine_with_job("x", "y")
    x, y = tasks["x"], tasks["y"]
    e.report("a", 1, [started(x), started(y), finished(y)])
    events = e.take_changes().events
    assert task_path(events, x.id) == [("RUNNING", 1, "a")]
    assert task_path(events, y.id) == [("SUCCEEDED", 1, "a")]
