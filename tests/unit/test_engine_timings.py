"""The durations the engine measures for /metrics (ChangeSet.timings), driven through the
engine with its batch clock: ready to assigned, ready to running, and a lost provider's task
from the loss to running again elsewhere."""

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import Hello, JobSpec, Report, ReportKind, TaskSpec

T0 = 1_800_000_000.0


def connect(e: Engine, name: str, slots: int = 1) -> int:
    conn = len(e.providers) + 1
    e.connect(Hello(name, {}, {}, slots, 1.0, (), False), conn_id=conn)
    e.ready_signal(name, conn)
    return conn


def submit(e: Engine, tasks: int = 1):
    spec = JobSpec("j", 0, {}, (TaskSpec("t", command=("true",), matrix=(("i", "[%s]" % ",".join(
        str(i) for i in range(tasks))),)),), wait_for_providers=True)
    return e.submit(spec, extract_tasks(spec, max_tasks=100, default_max_attempts=1))


def at(e: Engine, seconds: float) -> None:
    e.begin(T0 + seconds)


def test_a_task_is_timed_from_ready_to_assigned_and_to_running():
    e = Engine(EngineConfig())
    at(e, 0)
    job = submit(e)
    assert e.take_changes().timings == []  # no provider: it waits
    at(e, 4)
    conn = connect(e, "a")
    assert e.take_changes().timings == [("assigned", 4.0)]
    at(e, 5.5)
    (task_id,) = job.task_ids
    e.report("a", conn, [Report(task_id, 1, ReportKind.STARTED)])
    assert e.take_changes().timings == [("running", 5.5)]  # not a continuation: no restart timed


def test_a_continued_task_is_timed_from_its_providers_loss_to_running_elsewhere():
    e = Engine(EngineConfig())
    at(e, 0)
    conn_a = connect(e, "a")
    job = submit(e)
    (task_id,) = job.task_ids
    e.take_changes()
    e.report("a", conn_a, [Report(task_id, 1, ReportKind.STARTED)])
    e.take_changes()
    at(e, 10)
    e.disconnect("a", conn_a)
    (expire,) = [t.op for t in e.take_changes().timers]
    at(e, 12)
    expire(e)  # the grace is over: a is LOST, its task waits to continue
    lost = e.take_changes()
    assert [len(c.tasks) for c in lost.continuations] == [1] and lost.timings == []
    at(e, 15)
    conn_b = connect(e, "b")
    assert e.take_changes().timings == [("assigned", 3.0)]
    at(e, 16)
    e.report("b", conn_b, [Report(task_id, 2, ReportKind.STARTED)])
    assert sorted(e.take_changes().timings) == [("restarted", 4.0), ("running", 4.0)]
