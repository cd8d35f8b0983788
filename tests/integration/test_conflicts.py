"""Conflicts and holds with a real server and real agents: exclusive jobs never overlap,
shared locks, a held job starting by itself, windows, manual holds, transient reruns,
runtime conditions from the agent's live facts, and learned conflicts."""

from __future__ import annotations

import json

import pytest

from jobplane.client import FailedPrecondition, InvalidArgument
from jobplane.v1 import job_pb2
from support import free_port, wait_until

SUCCEEDED, FAILED = 3, 4
ON_HOLD, LATE_TO_START = 7, 8
EXCLUSIVE, LOCK = 1, 2
READ, WRITE = 1, 2


def sleeper(name: str, seconds: float, cls: str = "", **fields) -> dict:
    """A job file (as a dict) of one task that sleeps; `cls`: its class."""
    job = {"name": name, "tasks": [{"name": "work", "command": ["sleep", str(seconds)]}], **fields}
    return {**job, "class": cls} if cls else job


def intervals(client, job_id: str) -> list[tuple[float, float]]:
    """When each attempt of the job's tasks ran, from the server's own records."""
    return [(a.start_time.ToNanoseconds() / 1e9, a.end_time.ToNanoseconds() / 1e9)
            for t in client.list_tasks(job_id) for a in t.attempts if a.HasField("start_time")]


def overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


def held_reason(client, job_id: str) -> str:
    tasks = [t for t in client.list_tasks(job_id) if t.status == ON_HOLD]
    return tasks[0].reason if tasks else ""


def test_exclusive_jobs_submitted_together_never_overlap_and_both_finish(cluster):
    cluster.add_agent("a", slots=4)
    cluster.client.create_conflict_rule({"name": "one-load", "kind": EXCLUSIVE, "jobs": {"job_class": "load"}})
    first = cluster.client.submit_job(sleeper("load-1", 1.0, cls="load"))
    second = cluster.client.submit_job(sleeper("load-2", 0.5, cls="load"))
    reason = wait_until(lambda: held_reason(cluster.client, second.id), 10, "the second load to be held")
    assert f"held by job {first.id} load-1 (rule one-load)" in reason
    assert cluster.client.get_job(second.id).status == ON_HOLD
    assert cluster.client.wait_job(first.id, timeout=30).state == SUCCEEDED
    assert cluster.client.wait_job(second.id, timeout=30).state == SUCCEEDED
    assert not overlap(intervals(cluster.client, first.id), intervals(cluster.client, second.id))


def test_shared_locks_let_readers_run_together_and_the_writer_alone(sqlite_cluster):
    c = sqlite_cluster
    c.add_agent("a", slots=4)
    c.client.create_conflict_rule({"name": "readers", "kind": LOCK, "jobs": {"job_class": "report"},
                                   "resource": "orders", "mode": READ})
    c.client.create_conflict_rule({"name": "writer", "kind": LOCK, "jobs": {"job_class": "load"},
                                   "resource": "orders", "mode": WRITE})
    r1 = c.client.submit_job(sleeper("r1", 1.0, cls="report"))
    r2 = c.client.submit_job(sleeper("r2", 1.0, cls="report"))
    w = c.client.submit_job(sleeper("w", 0.5, cls="load"))
    for job in (r1, r2, w):
        assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    readers = [intervals(c.client, r1.id), intervals(c.client, r2.id)]
    assert overlap(*readers)  # together
    assert not any(overlap(r, intervals(c.client, w.id)) for r in readers)  # and the writer alone


def test_a_closing_window_makes_a_held_job_late_to_start_then_fails_it(sqlite_cluster):
    c = sqlite_cluster
    c.add_agent("a", slots=4)
    c.client.create_conflict_rule({"name": "etl", "kind": EXCLUSIVE, "jobs": {"job_class": "etl"}})
    long = c.client.submit_job(sleeper("long", 8, cls="etl"))
    windowed = c.client.submit_job(sleeper("windowed", 0.1, cls="etl", give_up_after=3))
    statuses = []
    for event in c.client.watch(windowed.id, timeout=20):
        if event.kind == 1:  # job events: held, late, failed
            statuses.append(event.status)
            if event.raw_status == "FAILED":
                break
    assert statuses.index(ON_HOLD) < statuses.index(LATE_TO_START)
    job = c.client.get_job(windowed.id)
    assert job.state == FAILED
    assert "its window closed at" in job.reason and f"held by job {long.id} long (rule etl)" in job.reason
    c.client.cancel_job(long.id)


def test_manual_hold_and_release(sqlite_cluster):
    c = sqlite_cluster
    c.add_agent("a", slots=2)
    job = c.client.submit_job({"name": "later", "wait_for_providers": True, "tasks": [
        {"name": "first", "command": ["sleep", "0.5"]},
        {"name": "second", "command": ["true"], "after": ["first"]}]})
    held = c.client.hold_job(job.id, reason="waiting for the DBA")
    assert "waiting for the DBA" in held.hold
    wait_until(lambda: c.client.get_job(job.id).counts.success == 1, 15, "the running task to finish")
    second = next(t for t in c.client.list_tasks(job.id) if t.name == "second")
    wait_until(lambda: next(t for t in c.client.list_tasks(job.id) if t.name == "second").status == ON_HOLD,
               10, "the next task to be held")
    assert c.client.get_job(job.id).state != SUCCEEDED and second.attempt == 0
    released = c.client.release_job(job.id)
    assert released.hold == ""
    assert c.client.wait_job(job.id, timeout=20).state == SUCCEEDED
    with pytest.raises(FailedPrecondition):
        c.client.release_job(job.id)


def test_a_transient_failure_is_rerun_by_itself_without_using_up_an_attempt(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=2)
    marker = tmp_path / "deadlocked-once"
    job = c.client.submit_job({"name": "victim", "tasks": [{"name": "load", "max_attempts": 1, "command": [
        "sh", "-c", f'if [ ! -e {marker} ]; then touch {marker}; echo deadlock >&2; exit 75; fi; echo loaded']}],
        "transient": {"exit_codes": [75], "backoff": 0.2}})
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    (task,) = c.client.list_tasks(job.id)
    assert task.reruns == 1 and task.attempt == 2
    assert "exit code 75" in task.attempts[0].reason or task.attempts[0].exit_code == 75


def test_a_load_condition_holds_a_task_until_the_reported_load_drops(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"load_average": 9.0}))
    c.add_agent("a", slots=2, extra=["--facts-file", str(facts), "--heartbeat", "0.2"])
    job = c.client.submit_job({"name": "careful", "conditions": ["load_average<2"],
                               "tasks": [{"name": "t", "command": ["true"]}]})
    reason = wait_until(lambda: held_reason(c.client, job.id), 30, "the task to be held for its condition")
    assert "load_average<2 (is 9)" in reason
    facts.write_text(json.dumps({"load_average": 0.1}))
    assert c.client.wait_job(job.id, timeout=20).state == SUCCEEDED


def test_bad_conflict_input_changes_nothing(sqlite_cluster):
    c = sqlite_cluster
    with pytest.raises(InvalidArgument, match="rule.resource"):
        c.client.create_conflict_rule({"name": "x", "kind": LOCK, "jobs": {"job_class": "a"}})
    with pytest.raises(InvalidArgument, match="rule.jobs"):
        c.client.create_conflict_rule({"name": "x", "kind": EXCLUSIVE})
    task = job_pb2.TaskSpec(name="t", command=["true"])
    bad = job_pb2.FactCondition(fact="load is", op=job_pb2.COMPARISON_LESS, value=1)
    with pytest.raises(InvalidArgument, match=r"spec.fact_conditions\[0\].fact: 'load is' is not a fact name"):
        c.client.submit_job(job_pb2.JobSpec(name="j", fact_conditions=[bad], tasks=[task]))
    with pytest.raises(InvalidArgument, match=r"spec.fact_conditions\[0\].op: 0 is not a comparison"):
        c.client.submit_job(job_pb2.JobSpec(name="j", fact_conditions=[job_pb2.FactCondition(fact="x")], tasks=[task]))
    with pytest.raises(InvalidArgument, match=r"spec.conditions\[0\]"):  # the deprecated text, still checked
        c.client.submit_job(job_pb2.JobSpec(name="j", conditions=["load is high"], tasks=[task]))
    assert list(c.client.list_jobs()) == []
    assert list(c.client.list_conflict_rules()) == []


def test_learned_conflicts_suggest_classes_that_keep_failing_together(sqlite_cluster):
    c = sqlite_cluster
    c.add_agent("a", slots=4)
    backup = c.client.submit_job(sleeper("backup", 30, cls="backup"))
    wait_until(lambda: c.client.get_job(backup.id).state == 2, 15, "the backup to run")
    victim = c.client.submit_job({"name": "load", "class": "load", "transient": {
        "exit_codes": [75], "max_reruns": 3, "backoff": 0.1}, "tasks": [{"name": "t", "command": [
            "sh", "-c", "exit 75"]}]})
    assert c.client.wait_job(victim.id, timeout=30).state == FAILED
    (suggestion,) = c.client.suggest_conflicts(min_failures=3)
    assert (suggestion.class_a, suggestion.class_b, suggestion.failures) == ("class=backup", "class=load", 4)
    assert suggestion.command == "jobplane conflicts add backup-vs-load --exclusive --jobs class=backup --other class=load"
    c.client.create_conflict_rule({"name": "backup-vs-load", "kind": EXCLUSIVE, "jobs": {"job_class": "backup"},
                                   "other": {"job_class": "load"}})
    assert c.client.suggest_conflicts(min_failures=3) == []  # covered by a rule now
    check = c.client.check_conflicts(spec={"name": "load", "class": "load",
                                           "tasks": [{"name": "t", "command": ["true"]}]})
    assert check.held and check.blockers[0].job_id == backup.id
    c.client.cancel_job(backup.id)


@pytest.mark.server_args("--learn", "3")
def test_with_learn_a_pair_failing_together_becomes_a_rule_that_holds_the_next_run(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=4)
    backup = c.client.submit_job(sleeper("backup", 60, cls="backup"))
    wait_until(lambda: c.client.get_job(backup.id).state == 2, 15, "the backup to run")
    runs = tmp_path / "runs"
    victim = c.client.submit_job({"name": "load", "class": "load", "transient": {
        "exit_codes": [75], "max_reruns": 2, "backoff": 0.1}, "tasks": [{"name": "t", "command": [
            "sh", "-c", f"echo run >> {runs}; exit 75"]}]})
    assert c.client.wait_job(victim.id, timeout=30).state == FAILED
    assert runs.read_text().splitlines() == ["run"] * 3  # three failures beside the backup
    (rule,) = c.client.list_conflict_rules()
    assert rule.name.startswith("learned-") and rule.created_by == "learned" and rule.kind == EXCLUSIVE
    assert (rule.jobs.job_class, rule.other.job_class) == ("backup", "load")
    event = next(e for e in c.client.watch(filter="type=POLICY", timeout=15) if e.raw.get("scope") == "conflicts")
    assert event.raw_status == "LEARNED" and event.raw["rule"] == rule.name and event.raw["failures"] == "3"
    assert any(a.target == rule.name and a.method == "learn conflict rule" for a in c.client.list_audit_records())
    # The next load job waits for the backup instead of failing beside it.
    nxt = c.client.submit_job({"name": "load", "class": "load", "tasks": [
        {"name": "t", "command": ["sh", "-c", f"echo again >> {runs}"]}]})
    assert rule.name in wait_until(lambda: held_reason(c.client, nxt.id), 15, "the next load job held")
    assert "again" not in runs.read_text()
    c.client.cancel_job(backup.id)
    assert c.client.wait_job(nxt.id, timeout=30).state == SUCCEEDED
    c.client.delete_conflict_rule(rule.name)  # removed like any rule
    assert list(c.client.list_conflict_rules()) == []


def test_holds_survive_a_server_restart(tmp_path, db_url):
    from conftest import Cluster

    cluster = Cluster(tmp_path, db_url)
    port = free_port()
    try:
        cluster.start_server(port=port, grace=5.0)
        cluster.add_agent("a", slots=1)  # third waits for the slot, so it is still queued when held
        cluster.client.create_conflict_rule({"name": "etl", "kind": EXCLUSIVE, "jobs": {"job_class": "etl"}})
        first = cluster.client.submit_job(sleeper("first", 3, cls="etl"))
        second = cluster.client.submit_job(sleeper("second", 0.1, cls="etl"))
        third = cluster.client.submit_job(sleeper("third", 0.1, wait_for_providers=True))
        cluster.client.hold_job(third.id, reason="not yet")
        wait_until(lambda: held_reason(cluster.client, second.id), 10, "the second job to be held")
        cluster.server.kill()  # kill -9: the rule, the holds and the admitted job must survive
        cluster.start_server(port=port, grace=5.0)
        assert [r.name for r in cluster.client.list_conflict_rules()] == ["etl"]
        assert "not yet" in cluster.client.get_job(third.id).hold
        assert cluster.client.wait_job(first.id, timeout=30).state == SUCCEEDED
        assert cluster.client.wait_job(second.id, timeout=30).state == SUCCEEDED
        assert not overlap(intervals(cluster.client, first.id), intervals(cluster.client, second.id))
        assert cluster.client.get_job(third.id).state == 1  # still held, still queued
        cluster.client.release_job(third.id)
        assert cluster.client.wait_job(third.id, timeout=30).state == SUCCEEDED
    finally:
        cluster.close()
