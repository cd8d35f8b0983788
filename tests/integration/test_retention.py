"""Retention: finished jobs purged with their tasks, attempts and events, by request (`jobplane
jobs purge --before TIME`, admins) or by the server itself past `--job-retention`; jobs that
have not finished stay, other events stay, and no id is handed out twice, even after a restart."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from jobplane.client import Client, DeadlineExceeded, InvalidArgument, NotFound, PermissionDenied
from jobplane.v1 import job_pb2, job_pb2_grpc
from support import admin_channel, jobplane, wait_until

SUCCEEDED, FAILED, RUNNING = 3, 4, 2


def stored_events(client) -> list:
    """Every stored event, oldest first: what a watch from the start replays within 2 s."""
    out = []
    with closing(client.watch(timeout=2)) as events:
        try:
            for event in events:
                out.append(event)
        except DeadlineExceeded:
            pass
    return out


def test_purge_deletes_the_jobs_finished_before_the_time_and_nothing_else(cluster, tmp_path):
    client, gate = cluster.client, tmp_path / "gate"
    cluster.add_agent("a")
    ok = client.submit_job({"name": "ok", "tasks": [{"name": "t", "command": ["true"]}]})
    bad = client.submit_job({"name": "bad", "tasks": [{"name": "t", "command": ["false"]}]})
    busy = client.submit_job({"name": "busy", "tasks": [
        {"name": "t", "command": ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"]}]})
    assert client.wait_job(ok.id, timeout=60).state == SUCCEEDED
    assert client.wait_job(bad.id, timeout=60).state == FAILED
    wait_until(lambda: client.get_job(busy.id).state == RUNNING, 30, "busy to run")
    ok_task = next(iter(client.list_tasks(ok.id))).id

    before = datetime.now(timezone.utc).isoformat()
    r = jobplane("jobs", "purge", "--before", before, "--server", cluster.server.address, env=cluster.server.env())
    assert r.returncode == 0 and r.stdout.startswith("purged 2 jobs that finished before "), r.stdout + r.stderr
    with pytest.raises(NotFound):
        client.get_job(ok.id)
    with pytest.raises(NotFound):
        client.get_task(ok_task)
    assert [j.id for j in client.list_jobs()] == [busy.id]
    events = stored_events(client)
    assert {e.job_id for e in events if e.job_id} == {busy.id}
    assert any(e.provider_id == "a" and not e.job_id for e in events), "events of no job stay"

    gate.touch()
    assert client.wait_job(busy.id, timeout=60).state == SUCCEEDED
    newest_event = max(e.id for e in stored_events(client))
    assert client.purge_jobs(datetime.now(timezone.utc)) == 1  # now every job is gone, and every event of one
    cluster.server.kill()
    cluster.start_server()
    cluster.add_agent("b")
    later = cluster.client.submit_job({"name": "later", "tasks": [{"name": "t", "command": ["true"]}]})
    assert cluster.client.wait_job(later.id, timeout=60).state == SUCCEEDED
    assert int(later.id) > int(busy.id), "a job id is never used twice"
    assert min(e.id for e in stored_events(cluster.client) if e.job_id == later.id) > newest_event


@pytest.mark.server_args("--job-retention", "1")
def test_the_server_purges_jobs_past_the_retention_by_itself(cluster, tmp_path):
    client, gate = cluster.client, tmp_path / "gate"
    cluster.add_agent("a")
    busy = client.submit_job({"name": "busy", "tasks": [
        {"name": "t", "command": ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"]}]})
    done = client.submit_job({"name": "done", "tasks": [{"name": "t", "command": ["true"]}]})
    assert client.wait_job(done.id, timeout=60).state == SUCCEEDED

    def purged() -> bool:
        try:
            client.get_job(done.id)
        except NotFound:
            return True
        return False

    wait_until(purged, 30, "the finished job to be purged")
    assert client.get_job(busy.id).state == RUNNING  # submitted first, but it has not finished
    gate.touch()
    assert client.wait_job(busy.id, timeout=60).state == SUCCEEDED
    wait_until(lambda: list(client.list_jobs()) == [], 30, "the last job to be purged once finished")


def test_purge_refuses_what_it_cannot_do_safely(sqlite_cluster):
    server, admin = sqlite_cluster.server, sqlite_cluster.client
    with admin_channel(server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            jobs.PurgeJobs(job_pb2.PurgeJobsRequest(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith("finished_before: missing; pass the time before which finished jobs")
        for seconds, nanos in [(2**62, 0), (0, -1), (0, 10**9)]:
            request = job_pb2.PurgeJobsRequest()
            request.finished_before.seconds, request.finished_before.nanos = seconds, nanos
            with pytest.raises(grpc.RpcError) as caught:
                jobs.PurgeJobs(request, timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert caught.value.details().startswith("finished_before: ")
    with pytest.raises(InvalidArgument, match="finished_before: .* is in the future; pass a time up to now"):
        admin.purge_jobs(datetime.now(timezone.utc) + timedelta(days=365))
    operator = admin.create_token("operator", user="olga").secret
    with Client.connect(server.address, token=operator, ca=server.ca, timeout=10) as client:
        with pytest.raises(PermissionDenied, match="PurgeJobs needs the role admin; olga has operator"):
            client.purge_jobs(datetime.now(timezone.utc))
    r = jobplane("jobs", "purge", "--before", "last tuesday", "--server", server.address, env=server.env())
    assert r.returncode == 2 and "expected an ISO 8601 time like 2026-09-30T12:00+02:00" in r.stderr
