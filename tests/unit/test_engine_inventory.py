"""Inventory rules through the engine: scans asked for (explicitly or piggy-backed), placement
by fresh inventory, a vanished prerequisite, admission and expiry."""

import pytest

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.inventory import ScanResult
from jobplane.server.domain.model import Hello, JobSpec, Outcome, Report, ReportKind, Status, TaskSpec, TaskState
from jobplane.server.errors import FailedPrecondition

REF = {"kind": "file", "path": "/data/ref.fa"}


def engine(ttl=300.0):
    e = Engine(EngineConfig(inventory_ttl=ttl))
    e.begin(1000.0)
    return e


def connect(e, name, slots=1):
    conn = len(e.providers) + 1
    e.connect(Hello(name, {}, {}, slots, 1.0, (), False), conn_id=conn)
    e.ready_signal(name, conn)
    return conn


def submit(e, *tasks, wait=False):
    spec = JobSpec("j", 0, {}, tuple(tasks), wait_for_providers=wait)
    return e.submit(spec, extract_tasks(spec, max_tasks=100, default_max_attempts=1))


def needs(name, *prerequisites, after=()):
    return TaskSpec(name, command=("true",), prerequisites=tuple(prerequisites), after=after)


def report(e, name, conn, present, sid=None):
    sid = sid or next(iter(e.inventory.signatures))
    e.scan_report(name, conn, [ScanResult(sid, present, {"path": "/data/ref.fa"} if present else {},
                                          "" if present else "no such file", e.now)])


def test_a_task_with_unknown_prerequisites_waits_while_every_candidate_scans():
    e = engine()
    a, b = connect(e, "a"), connect(e, "b")
    job = submit(e, needs("t", REF))
    cs = e.take_changes()
    (task,) = [e.tasks[t] for t in job.task_ids]
    assert not cs.assignments and sorted(cs.scans) == ["a", "b"]
    assert task.state == TaskState.QUEUED and task.reason == "scanning for file /data/ref.fa"
    report(e, "a", a, False)
    report(e, "b", b, True)
    assert {p: [t.id for t, *_ in items] for p, items in e.take_changes().assignments.items()} == {"b": [task.id]}


def test_prerequisites_of_later_work_ride_along_with_an_unrelated_assignment():
    e = engine()
    a = connect(e, "a", slots=2)
    submit(e, needs("first"), needs("second", REF, after=("first",)))
    cs = e.take_changes()
    assert list(cs.assignments) == ["a"] and not cs.scans
    ((sid, signature),) = cs.piggyback["a"]
    assert signature == REF
    report(e, "a", a, True, sid)
    assert e.providers["a"].inventory[sid].source == "piggyback"


def test_absent_everywhere_says_what_is_missing_where_and_later_submits_are_refused():
    e = engine()
    a, b = connect(e, "a"), connect(e, "b")
    job = submit(e, needs("t", REF))
    e.take_changes()
    report(e, "a", a, False)
    report(e, "b", b, False)
    (task,) = [e.tasks[t] for t in job.task_ids]
    assert task.reason == "waiting: no provider has file /data/ref.fa (absent on a, b)"
    assert task.status == Status.ON_HOLD
    with pytest.raises(FailedPrecondition, match=r"spec.tasks\[0\].prerequisites: no connected provider has"):
        submit(e, needs("u", REF))
    submit(e, needs("u", REF), wait=True)  # unless asked to wait


def test_a_vanished_prerequisite_moves_the_task_without_using_an_attempt():
    e = engine()
    a, b = connect(e, "a"), connect(e, "b")
    job = submit(e, needs("t", REF))
    e.take_changes()
    report(e, "a", a, True)
    report(e, "b", b, True)
    cs = e.take_changes()
    (task,) = [e.tasks[t] for t in job.task_ids]
    first = next(iter(cs.assignments))
    other, conn = ("b", b) if first == "a" else ("a", a)
    e.report(first, a if first == "a" else b, [Report(task.id, 1, ReportKind.FINISHED, Outcome.FAILED, None,
                                                      error="prerequisite missing: gone",
                                                      raw={"state": "prerequisite_missing", "missing": "0"})])
    cs = e.take_changes()
    assert [p for p in cs.assignments] == [other] and task.lost_attempts == 1
    assert e.providers[first].inventory[next(iter(e.inventory.signatures))].present is False


def test_a_stale_entry_is_scanned_again_and_does_not_place_work():
    e = engine(ttl=10.0)
    a = connect(e, "a")
    submit(e, needs("t", REF), needs("u", REF))
    e.take_changes()
    report(e, "a", a, True)
    e.take_changes()
    e.begin(e.now + 60)  # the entry expired; the second task must wait for a new scan
    e.report("a", a, [Report(next(iter(e.providers["a"].in_flight)), 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])
    cs = e.take_changes()
    assert not cs.assignments and "a" in cs.scans
