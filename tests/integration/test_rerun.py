"""Rerun (`jobplane rerun JOB [--failed]`): a finished job's unsuccessful tasks run again as new
attempts of the same tasks, in the same job, and their cancelled dependents after them. Judged by
what the tasks did (each run appends a line to a file) and what a user sees (the job, its
events, the CLI's exit codes and messages)."""

from __future__ import annotations

from contextlib import closing

import pytest

from jobplane.client import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from support import jobplane, wait_until

SUCCEEDED, FAILED, CANCELLED = 3, 4, 5
T_FAILED, T_CANCELLED = 6, 7  # TaskState


def runs(log) -> list[str]:
    return log.read_text().split() if log.exists() else []


def fails_until(fixed, log, name: str) -> list[str]:
    """A command that records its run as `name` and fails until the file `fixed` exists."""
    return ["sh", "-c", f"echo {name} >> {log}; [ -e {fixed} ]"]


def job_events(client, job_id: str) -> list:
    """The job's stored events up to its end as it stands now."""
    job = client.get_job(job_id)
    out = []
    with closing(client.watch(job_id, timeout=30)) as events:
        for event in events:
            out.append(event)
            if event.kind == 1 and event.time == job.end_time and event.raw_status in ("SUCCEEDED", "FAILED"):
                return out
    raise AssertionError("no end event")


def test_rerun_runs_the_failed_task_and_its_cancelled_dependent_again_in_the_same_job(cluster, tmp_path):
    log, fixed = tmp_path / "runs", tmp_path / "fixed"
    cluster.add_agent("a")
    job = cluster.client.submit_job({"name": "etl", "tasks": [
        {"name": "extract", "command": ["sh", "-c", f"echo extract >> {log}"]},
        {"name": "transform", "after": ["extract"], "command": fails_until(fixed, log, "transform")},
        {"name": "load", "after": ["transform"], "command": ["sh", "-c", f"echo load >> {log}"]}]})
    done = cluster.client.wait_job(job.id, timeout=60)
    assert done.state == FAILED and runs(log) == ["extract", "transform"]
    fixed.touch()

    r = jobplane("rerun", job.id, "--wait", "--server", cluster.server.address, env=cluster.server.env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f'rerun job {job.id} "etl": 2 tasks run again (')
    assert runs(log) == ["extract", "transform", "transform", "load"]  # extract succeeded: not run again
    again = cluster.client.get_job(job.id)
    assert again.state == SUCCEEDED and again.counts.success == 3 and again.counts.failure == 0
    assert [j.id for j in cluster.client.list_jobs()] == [job.id], "the same job, not a new one"
    transform = next(t for t in cluster.client.list_tasks(job.id) if t.name == "transform")
    assert [a.number for a in cluster.client.get_task(transform.id).attempts] == [1, 2]
    messages = [e.message for e in job_events(cluster.client, job.id) if e.kind == 1]
    assert "rerun by admin: 2 tasks run again as new attempts (transform, load)" in messages


def test_rerun_failed_only_leaves_the_tasks_cancelled_on_request(cluster, tmp_path):
    log, fixed, gate = tmp_path / "runs", tmp_path / "fixed", tmp_path / "gate"
    cluster.add_agent("a", slots=2)
    job = cluster.client.submit_job({"name": "mixed", "tasks": [
        {"name": "bad", "command": fails_until(fixed, log, "bad")},
        {"name": "after-bad", "after": ["bad"], "command": ["sh", "-c", f"echo after-bad >> {log}"]},
        {"name": "slow", "command": ["sh", "-c", f"echo slow >> {log}; while [ ! -e {gate} ]; do sleep 0.05; done"]}]})
    wait_until(lambda: cluster.client.get_job(job.id).counts.failure == 1 and "slow" in runs(log), 30,
               "bad to fail while slow runs")
    cluster.client.cancel_job(job.id, reason="enough")
    assert cluster.client.wait_job(job.id, timeout=60).state == CANCELLED
    fixed.touch()

    rerun = cluster.client.rerun_job(job.id, failed_only=True)
    names = {t.id: t.name for t in cluster.client.list_tasks(job.id)}
    assert sorted(names[t] for t in rerun.task_ids) == ["after-bad", "bad"]
    done = cluster.client.wait_job(job.id, timeout=60)
    assert sorted(runs(log)) == ["after-bad", "bad", "bad", "slow"]  # slow did not run again
    assert done.state == CANCELLED and done.counts.success == 2 and done.counts.cancel == 1

    with pytest.raises(FailedPrecondition, match=f"job {job.id} has no failed task to rerun \\(1 task cancelled\\); "
                                                 "rerun it without --failed"):
        cluster.client.rerun_job(job.id, failed_only=True)
    gate.touch()
    assert cluster.client.wait_job(job.id, timeout=60).state == CANCELLED
    cluster.client.rerun_job(job.id)  # the cancelled one, now
    assert cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    assert sorted(runs(log)) == ["after-bad", "bad", "bad", "slow", "slow"]


def test_each_rerun_task_has_its_attempts_again_across_a_server_restart(cluster, tmp_path):
    log = tmp_path / "runs"
    cluster.add_agent("a")
    job = cluster.client.submit_job({"name": "flaky", "tasks": [
        {"name": "t", "max_attempts": 2, "retry_backoff": 0.1, "command": ["sh", "-c", f"echo t >> {log}; exit 3"]}]})
    assert cluster.client.wait_job(job.id, timeout=60).state == FAILED and runs(log) == ["t", "t"]
    cluster.agents.pop("a").stop()
    cluster.client.rerun_job(job.id)  # queued again, with no agent to run it
    cluster.server.kill()  # kill -9: the rerun was acknowledged, so it is kept
    cluster.start_server()
    cluster.add_agent("a")
    done = cluster.client.wait_job(job.id, timeout=60)
    assert done.state == FAILED and runs(log) == ["t"] * 4  # two more attempts: 3 and 4
    task = next(iter(cluster.client.list_tasks(job.id)))
    assert [a.number for a in cluster.client.get_task(task.id).attempts] == [1, 2, 3, 4]


def test_rerun_is_refused_with_what_to_do(sqlite_cluster, tmp_path):
    client, gate = sqlite_cluster.client, tmp_path / "gate"
    sqlite_cluster.add_agent("a")
    running = client.submit_job({"name": "busy", "tasks": [
        {"name": "t", "command": ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"]}]})
    r = jobplane("rerun", running.id, "--server", sqlite_cluster.server.address, env=sqlite_cluster.server.env())
    assert r.returncode == 3
    assert r.stderr == (f"jobplane: job {running.id} is still running; wait for it to end (`jobplane jobs get "
                        f"{running.id} --wait`) or cancel it (`jobplane cancel {running.id}`), then rerun it\n")
    gate.touch()
    assert client.wait_job(running.id, timeout=60).state == SUCCEEDED
    with pytest.raises(FailedPrecondition, match=f"job {running.id} succeeded: every task did, so there is "
                                                 "nothing to rerun; submit it again to run it anew"):
        client.rerun_job(running.id)
    with pytest.raises(NotFound, match="job 999 not found"):
        client.rerun_job("999")
    with pytest.raises(InvalidArgument, match="job_id: 'x' is not a job id"):
        client.rerun_job("x")


def test_a_submitter_reruns_only_their_own_jobs(sqlite_cluster, tmp_path):
    from jobplane.client import Client

    server, admin = sqlite_cluster.server, sqlite_cluster.client
    sqlite_cluster.add_agent("a")
    theirs = admin.submit_job({"name": "admins", "tasks": [{"name": "t", "command": ["false"]}]})
    assert admin.wait_job(theirs.id, timeout=60).state == FAILED
    alice = admin.create_token("submitter", user="alice").secret
    viewer = admin.create_token("viewer", user="val").secret
    with Client.connect(server.address, token=alice, ca=server.ca, timeout=10) as client:
        mine = client.submit_job({"name": "alices", "tasks": [{"name": "t", "command": ["false"]}]})
        assert client.wait_job(mine.id, timeout=60).state == FAILED
        with pytest.raises(NotFound):
            client.rerun_job(theirs.id)
        assert len(client.rerun_job(mine.id).task_ids) == 1
    with Client.connect(server.address, token=viewer, ca=server.ca, timeout=10) as client:
        with pytest.raises(PermissionDenied, match="RerunJob needs the role admin or operator or submitter"):
            client.rerun_job(theirs.id)
