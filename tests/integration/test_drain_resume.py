"""Undrain: a drained provider takes no work across restarts of the server and its agent, until
`jobplane providers resume` lets it take work again. Judged by which agent's machine ran what
(each agent's tasks see its own MACHINE)."""

from __future__ import annotations

from contextlib import closing

import grpc
import pytest

from jobplane.client import FailedPrecondition, NotFound
from jobplane.v1 import provider_pb2, provider_pb2_grpc
from support import admin_channel, jobplane, wait_until

ACTIVE, DRAINED, REVOKED = 1, 6, 8
SUCCEEDED, QUEUED = 3, 1


def state_of(client, name: str) -> int:
    return client.get_provider(name).state


def machines(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def first_event(client, wanted):
    """The first stored (or live) event that is `wanted`."""
    with closing(client.watch(timeout=30)) as events:
        return next(e for e in events if wanted(e))


def start_agents(cluster, tmp_path) -> None:
    cluster.add_agent("a", env={"MACHINE": "a"}, wait=False)
    cluster.add_agent("b", env={"MACHINE": "b"}, labels={"box": "b"}, wait=False)


def test_a_drain_outlasts_restarts_until_the_provider_is_resumed(cluster, tmp_path):
    start_agents(cluster, tmp_path)
    cluster.wait_active("a", "b")
    r = jobplane("providers", "drain", "b", "--server", cluster.server.address, env=cluster.server.env())
    assert r.returncode == 0 and "provider b is DRAINED" in r.stdout, r.stdout + r.stderr

    # Everything stops and starts again, as `jobplane up` does: agents first (they say goodbye), then the server.
    for agent in cluster.agents.values():
        agent.stop()
    cluster.server.stop()
    cluster.start_server()
    away = {p.id: p for p in cluster.client.list_providers()}
    assert away["b"].drained and not away["a"].drained  # away (not DRAINED yet), and it says so
    listing = jobplane("providers", "list", "--server", cluster.server.address, env=cluster.server.env()).stdout
    assert [line for line in listing.splitlines() if line.startswith("b ")][0].count("(drained)") == 1, listing
    start_agents(cluster, tmp_path)
    cluster.wait_active("a")
    wait_until(lambda: state_of(cluster.client, "b") == DRAINED, 20, "b to come back DRAINED")

    only_b, anywhere = tmp_path / "only-b", tmp_path / "anywhere"
    waiting = cluster.client.submit_job({"name": "needs-b", "wait_for_providers": True, "tasks": [
        {"name": "t", "requires": {"box": "b"}, "command": ["sh", "-c", f"echo $MACHINE >> {only_b}"]}]})
    barrier = cluster.client.submit_job({"name": "anywhere", "tasks": [
        {"name": f"t{i}", "command": ["sh", "-c", f"echo $MACHINE >> {anywhere}"]} for i in range(4)]})
    assert cluster.client.wait_job(barrier.id, timeout=60).state == SUCCEEDED
    # Dispatched after the job that needs b was queued, so b would have taken it if it took work.
    assert machines(anywhere) == ["a"] * 4
    assert machines(only_b) == [] and cluster.client.get_job(waiting.id).state == QUEUED

    r = jobplane("providers", "resume", "b", "--server", cluster.server.address, env=cluster.server.env())
    assert r.returncode == 0 and "provider b is ACTIVE" in r.stdout, r.stdout + r.stderr
    assert cluster.client.wait_job(waiting.id, timeout=60).state == SUCCEEDED
    assert machines(only_b) == ["b"]


def test_resume_takes_back_a_drain_that_waits_for_running_work(cluster, tmp_path):
    go = tmp_path / "go"
    cluster.add_agent("a", env={"MACHINE": "a"})
    job = cluster.client.submit_job({"name": "slow", "tasks": [
        {"name": "t", "command": ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done; echo $MACHINE > {go}.ran"]}]})
    wait_until(lambda: cluster.client.get_job(job.id).counts.running == 1, 30, "the task to run")
    assert cluster.client.drain_provider("a", wait=True, deadline=600).state == 5  # DRAINING
    assert cluster.client.resume_provider("a").state == ACTIVE
    more = cluster.client.submit_job({"name": "more", "tasks": [{"name": "u", "command": ["true"]}]})
    assert cluster.client.wait_job(more.id, timeout=60).state == SUCCEEDED  # it takes new work again
    go.touch()
    assert cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    assert (tmp_path / "go.ran").read_text() == "a\n"  # the running task was never moved off
    assert first_event(cluster.client, lambda e: e.provider_id == "a" and not e.task_id and "resumed" in e.message
                       ).message == "provider a resumed: taking work"


def test_resume_names_what_is_wrong(sqlite_cluster):
    client = sqlite_cluster.client
    sqlite_cluster.add_agent("a")
    with pytest.raises(NotFound, match="provider 'nobody' not found; `jobplane providers list` shows them"):
        client.resume_provider("nobody")
    assert client.resume_provider("a").state == ACTIVE  # not drained: nothing to undo
    client.revoke_provider("a", reason="retired")
    with pytest.raises(FailedPrecondition, match="provider 'a' was revoked and may not connect again"):
        client.resume_provider("a")
    with admin_channel(sqlite_cluster.server) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            provider_pb2_grpc.ProviderServiceStub(channel).ResumeProvider(
                provider_pb2.ResumeProviderRequest(provider_id=""), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "provider_id: must not be empty; name the provider to resume"
