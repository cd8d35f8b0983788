"""The store on each backend: every kind of change persists, and a reload gives the
engine back the unfinished work exactly as it was."""

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import Hello, JobSpec, JobState, ProviderState, Report, ReportKind, TaskSpec, TaskState
from jobplane.server.domain.timing import TimingRule
from jobplane.server.store.db import open_database
from jobplane.server.store.repo import Store, runtime_from_snapshot


def test_changes_round_trip_through_the_database(db_url):
    store = Store(open_database(db_url))
    store.create_schema()
    engine = Engine(EngineConfig())
    engine.begin(1000.0)

    def commit():
        cs = engine.take_changes()
        store.apply(cs)
        return cs

    engine.connect(Hello("a", {"hostname": "h"}, {"zone": "x"}, 2, 1.0, ()), conn_id=1)
    engine.ready_signal("a", 1)
    spec = JobSpec("j", 3, {"team": "t"}, (TaskSpec("first", command=("true",)),
                                           TaskSpec("second", python="m:f", args_json='{"k": 1}', after=("first",)),
                                           TaskSpec("third", command=("sleep", "9"), retry_on=("timeout",))),
                   wait_for_providers=True, continuation_priority=7,
                   continuation_rules=(TimingRule("end_of_month", 2, days=3), TimingRule("cron", 1, "0 * * * *")))
    job = engine.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=2))
    commit()
    first, second, third = (engine.tasks[t] for t in job.task_ids)
    engine.report("a", 1, [Report(first.id, 1, ReportKind.STARTED), Report(third.id, 1, ReportKind.STARTED)])
    engine.report("a", 1, [Report(first.id, 1, ReportKind.FINISHED, 1, 0, "", "", "out", "")])
    engine.report("a", 1, [Report(third.id, 1, ReportKind.CHECKPOINT, checkpoint_json='{"i": 4}')])
    commit()
    engine.disconnect("a", 1)
    (_, expire), = commit().timers
    expire(engine)
    cs = commit()
    assert cs.continuations, "losing the provider hands its running tasks on"

    store.close()
    store = Store(open_database(db_url))
    counters, jobs, tasks, providers, waiting = runtime_from_snapshot(store.load())
    assert counters.event == engine.ids.event and counters.task == engine.ids.task
    (j,) = jobs
    assert (j.id, j.state, j.spec, j.counts) == (job.id, JobState.RUNNING, spec, job.counts)
    by_name = {t.name: t for t in tasks}
    assert by_name["first"].state == TaskState.SUCCEEDED and by_name["first"].stdout_tail == "out"
    assert by_name["second"].state == TaskState.QUEUED and by_name["second"].attempt == 1
    assert by_name["third"].state == TaskState.QUEUED and by_name["third"].spec.retry_on == ("timeout",)
    assert by_name["third"].checkpoint == '{"i": 4}', "the next attempt starts from the checkpoint"
    assert [(w.task_id, w.priority, w.continuation_id) for w in sorted(waiting)] == [
        (second.id, 7, cs.continuations[0].id), (third.id, 7, cs.continuations[0].id)]
    (p,) = providers
    assert (p.id, p.labels, p.facts["hostname"]) == ("a", {"zone": "x"}, "h")
    (cont,) = store.reads.list_continuations("", "", 10).items
    assert cont.provider == "a" and [ct.task_id for ct in cont.tasks] == [second.id, third.id]
    assert [(ct.position, ct.priority, ct.to_provider, ct.restart_time) for ct in cont.tasks] == [
        (1, 7, "", None), (2, 7, "", None)]
    (attempt,) = store.reads.attempts_of([third.id])[third.id]
    assert attempt.checkpoint == '{"i": 4}'
    events = store.reads.events_after(0, job.id, 1000)
    assert [e.id for e in events] == sorted(e.id for e in events) and events[-1].raw_status == "QUEUED"
    store.close()


def test_a_promoted_standby_is_still_promoted_after_a_restart(db_url):
    store = Store(open_database(db_url))
    store.create_schema()
    engine = Engine(EngineConfig())
    engine.begin(1000.0)
    for conn, (name, standby) in enumerate((("a", False), ("s", True)), start=1):
        engine.connect(Hello(name, {}, {}, 1, 1.0, (), standby), conn_id=conn)
        engine.ready_signal(name, conn)
    store.apply(engine.take_changes())
    engine.disconnect("a", 1)
    (_, expire), = (cs := engine.take_changes()).timers
    store.apply(cs)
    expire(engine)
    store.apply(engine.take_changes())
    store.close()

    _, _, _, providers, _ = runtime_from_snapshot(Store(open_database(db_url)).load())
    restarted = Engine(EngineConfig())
    restarted.begin(2000.0)
    restarted.restore([], [], providers)
    restarted.connect(Hello("s", {}, {}, 1, 1.0, (), True), conn_id=7)
    restarted.ready_signal("s", 7)
    assert restarted.providers["s"].state == ProviderState.ACTIVE, "it came back in the lost provider's place"


def _row(store, task_id):
    from jobplane.server.store.models import TaskRow
    return TaskRow.get_by_id(task_id)


def _engine_with_running_task(store):
    engine = Engine(EngineConfig())
    engine.begin(1000.0)
    engine.connect(Hello("a", {}, {}, 1, 1.0, ()), conn_id=1)
    engine.ready_signal("a", 1)
    spec = JobSpec("j", 1, {}, (TaskSpec("t", command=("true",)),))
    job = engine.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    store.apply(engine.take_changes())
    (task,) = (engine.tasks[t] for t in job.task_ids)
    engine.report("a", 1, [Report(task.id, 1, ReportKind.STARTED)])
    store.apply(engine.take_changes())
    return engine, task


def test_each_commit_writes_every_column_that_moved(db_url):
    """Updates set an indexed column only when it changed (store/changed.py): a task moved
    through its states one commit at a time reads back as the engine has it after each."""
    store = Store(open_database(db_url))
    store.create_schema()
    engine, task = _engine_with_running_task(store)
    row = _row(store, task.id)
    assert (row.state, row.provider, row.attempt) == (int(TaskState.RUNNING), "a", 1)
    engine.report("a", 1, [Report(task.id, 1, ReportKind.STATUS, raw={"status": "busy", "queue": "q1"})])
    store.apply(engine.take_changes())
    row = _row(store, task.id)
    assert (row.raw, row.environment) == ('{"status": "busy", "queue": "q1"}', task.spec.environment)
    engine.report("a", 1, [Report(task.id, 1, ReportKind.FINISHED, 2, 3, "", "", "out", "err")])
    store.apply(engine.take_changes())
    row = _row(store, task.id)
    assert (row.state, row.status, row.exit_code, row.stdout_tail) == (
        int(task.state), int(task.status), 3, "out")
    assert task.state == TaskState.FAILED
    store.close()


def test_a_reload_forgets_what_this_store_wrote(db_url):
    """Another leader may write a task while this server is away; after the engine loads anew,
    the next update sets the row whole, not only what moved since this store last wrote it."""
    store = Store(open_database(db_url))
    store.create_schema()
    engine, task = _engine_with_running_task(store)
    store.db.execute_sql("UPDATE task SET provider = 'elsewhere', attempt = 9 WHERE id = " + str(task.id))
    store.load()
    engine.report("a", 1, [Report(task.id, 1, ReportKind.CHECKPOINT, checkpoint_json='{"i": 1}')])
    store.apply(engine.take_changes())
    row = _row(store, task.id)
    assert (row.provider, row.attempt, row.checkpoint) == ("a", 1, '{"i": 1}')
    store.close()


def test_a_jobs_tasks_are_kept_apart_from_the_row_each_batch_rewrites(db_url):
    """The job row, rewritten with the job's counts in every batch, holds its spec without the
    tasks (job_spec holds the whole); reads, a reload and a job stored whole in its row by an
    older version all give the whole spec back."""
    from jobplane.server.store.codec import dump_job_spec
    from jobplane.server.store.models import JobRow, JobSpecRow

    store = Store(open_database(db_url))
    store.create_schema()
    engine = Engine(EngineConfig())
    engine.begin(1000.0)
    specs = [JobSpec(f"j{n}", 1, {"n": str(n)}, tuple(TaskSpec(f"t{i}", command=("echo", str(i))) for i in range(500)),
                     wait_for_providers=True)
             for n in range(2)]
    jobs = [engine.submit(s, extract_tasks(s, max_tasks=1000, default_max_attempts=1)) for s in specs]
    store.apply(engine.take_changes())
    old = jobs[1].id  # as an older version stored it: whole in its row, nothing in job_spec
    JobRow.update(spec=dump_job_spec(specs[1])).where(JobRow.id == old).execute()
    JobSpecRow.delete().where(JobSpecRow.job == old).execute()
    assert len(JobRow.get_by_id(jobs[0].id).spec) < 500, "the job row carries no task specs"
    for job, spec in zip(jobs, specs):
        assert store.reads.get_job(job.id).spec == spec
    listed = {v.id: v.spec for v in store.reads.list_jobs("", "", "", 10).items}
    assert listed == {job.id: spec for job, spec in zip(jobs, specs)}
    brief = store.reads.list_jobs("", "", "", 10, tasks=False).items
    assert [v.spec.labels for v in brief] == [{"n": "1"}, {"n": "0"}] and all(not v.spec.tasks for v in brief)
    _, loaded, _, _, _ = runtime_from_snapshot(store.load())
    assert {j.id: j.spec for j in loaded} == {job.id: spec for job, spec in zip(jobs, specs)}
    store.close()


def test_a_submit_encodes_each_task_spec_once(db_url, monkeypatch):
    """A task's row and its job's whole spec (job_spec) hold the same encoding of a task that is
    its template: the submit's batch makes it once, and reads give the whole spec back."""
    from jobplane.server.store import codec
    from jobplane.server.store.models import JobSpecRow, TaskRow

    store = Store(open_database(db_url))
    store.create_schema()
    engine = Engine(EngineConfig())
    engine.begin(1000.0)
    spec = JobSpec("j", 1, {}, (TaskSpec("a", command=("echo", "é"), env={"X": "1"}), TaskSpec("b", python="m:f"),
                                TaskSpec("c", command=("true",), matrix=(("n", "[1, 2]"),))), wait_for_providers=True)
    job = engine.submit(spec, extract_tasks(spec, max_tasks=1000, default_max_attempts=1))
    encoded = []
    real = codec._task_dict
    monkeypatch.setattr(codec, "_task_dict", lambda s: encoded.append(s.name) or real(s))
    store.apply(engine.take_changes())
    monkeypatch.undo()
    # a, b: once each (row and whole spec alike); the matrix's template c (whole spec) and its
    # two expanded tasks (their rows, specs named c as well) are three specs: once each
    assert sorted(encoded) == ["a", "b", "c", "c", "c"]
    assert bytes(JobSpecRow.get_by_id(job.id).spec) == codec.dump_job_spec(spec)
    rows = {r.name: bytes(r.spec) for r in TaskRow.select()}
    assert rows["a"] == codec.dump_task_spec(spec.tasks[0]) and rows["a"] in bytes(JobSpecRow.get_by_id(job.id).spec)
    assert store.reads.get_job(job.id).spec == spec
    store.close()


def test_a_read_decodes_each_kind_of_task_spec_once(db_url, monkeypatch):
    """Tasks that differ only by name (a job of copies) are decoded once per kind when their job
    is read, and each comes back as it was submitted: its own name, its own values."""
    from jobplane.server.store import codec

    store = Store(open_database(db_url))
    store.create_schema()
    engine = Engine(EngineConfig())
    engine.begin(1000.0)
    tasks = [TaskSpec(f"p{i}", python="m:f") for i in range(300)]
    tasks += [TaskSpec(f"c{i}", command=("true",), env={"X": str(i % 2)}) for i in range(300)]
    tasks += [TaskSpec("m", command=("echo",), matrix=(("n", "[1, 2]"),))]
    spec = JobSpec("j", 1, {}, tuple(tasks), wait_for_providers=True)
    job = engine.submit(spec, extract_tasks(spec, max_tasks=1000, default_max_attempts=1))
    store.apply(engine.take_changes())
    decoded = []
    real = codec._task
    monkeypatch.setattr(codec, "_task", lambda d: decoded.append(d["name"]) or real(d))
    read = store.reads.get_job(job.id).spec
    monkeypatch.undo()
    assert sorted(decoded) == ["c0", "c1", "m", "p0"]  # python; command with X=0, X=1; the matrix
    assert read == spec and [t.name for t in read.tasks] == [t.name for t in spec.tasks]
    assert {t.env["X"] for t in read.tasks if t.name.startswith("c")} == {"0", "1"}
    store.close()
