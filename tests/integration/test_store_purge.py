"""The purge of finished jobs on each backend (store/finished.py): everything of a purged job
goes, in transactions of bounded size with the job's row last; what other jobs share (a
provider's continuation record) stays; and no id is used again after a restart."""

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import Hello, JobSpec, TaskSpec
from jobplane.server.store.db import open_database
from jobplane.server.store.finished import TASKS_PER_STEP, FinishedJobStore
from jobplane.server.store.repo import Store, runtime_from_snapshot


def test_a_purged_job_leaves_nothing_behind_and_its_ids_are_not_used_again(db_url):
    store = Store(open_database(db_url))
    store.create_schema()
    engine = Engine(EngineConfig())
    engine.begin(1000.0)
    engine.connect(Hello("a", {}, {}, 4, 1.0, ()), conn_id=1)
    engine.ready_signal("a", 1)

    def submit(name, n):
        spec = JobSpec(name, 0, {}, (TaskSpec("t", command=("true",), items_json="[" + ",".join(["1"] * n) + "]",
                                              chunk_size=1),), wait_for_providers=True)
        return engine.submit(spec, extract_tasks(spec, max_tasks=5000, default_max_attempts=1))

    kept = submit("kept", 2)  # older, and never finishes
    big = submit("big", TASKS_PER_STEP * 2 + 10)  # newest: the highest ids are its
    store.apply(engine.take_changes())
    engine.disconnect("a", 1)
    (_, expire), = engine.take_changes().timers
    expire(engine)  # both jobs' running tasks are handed on together: one continuation record
    cs = engine.take_changes()
    store.apply(cs)
    (continuation,) = cs.continuations
    assert {t.job_id for t in continuation.tasks} == {kept.id, big.id}
    engine.cancel_job(big.id, "done with it")
    store.apply(engine.take_changes())
    highest = (engine.ids.job - 1, engine.ids.task - 1, engine.ids.event - 1)

    finished = FinishedJobStore(store.db)
    ids = finished.purgeable(2000.0, 100)
    assert ids == [big.id]
    steps = [finished.purge_step(ids)]
    assert steps == [(False, 0)]  # a bounded share of its rows; the job row stays
    assert store.reads.get_job(big.id) is not None
    while steps[-1] == (False, 0):
        steps.append(finished.purge_step(ids))
    assert steps[-1] == (True, 1) and len(steps) == 3  # 2 x TASKS_PER_STEP + 10 tasks: three transactions
    assert store.reads.get_job(big.id) is None
    assert store.reads.list_tasks("", "", "", 10, job_id=big.id).items == []
    assert store.reads.events_after(0, big.id, 10) == []
    assert len(store.reads.list_tasks("", "", "", 10, job_id=kept.id).items) == 2
    assert {t.job_id for t in store.reads.get_continuation(continuation.id).tasks} == {kept.id}
    assert store.reads.events_after(0, kept.id, 100) != []  # its own events stay

    store.close()
    store = Store(open_database(db_url))
    counters = runtime_from_snapshot(store.load())[0]
    assert (counters.job, counters.task, counters.event) == tuple(i + 1 for i in highest)
    store.close()
