"""Clients and agents given several server addresses (issue 16), against real jobplane servers.

Replicas that share one database are the server's part of the issue; these tests use what any
server offers: an address where nothing listens is a replica that is down, a server killed and
started again on its port and SQLite file is a replica that came back, and a second server on
its own stands for the replica an agent moves on to. tests/system/test_replicas_failover.py
runs the same clients against real replicas.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

from conftest import Cluster
from support import AgentProc, ServerProc, free_port, jobplane, wait_until

from jobplane.client import AsyncClient, Client, Retry
from jobplane.client.events import is_job_end

SUCCEEDED, CANCELLED = 3, 5  # JOB_STATE_*
ACTIVE = 1  # PROVIDER_STATE_ACTIVE
RUNNING_TASK = 1  # EVENT_KIND_TASK
QUEUED = {"name": "queued", "wait_for_providers": True, "tasks": [{"name": "t", "command": ["true"]}]}


def dead_address() -> str:
    """An address where nothing listens: a replica that is down."""
    return f"127.0.0.1:{free_port()}"


def test_a_client_given_a_dead_address_first_reads_submits_and_changes_through_the_live_one(sqlite_cluster):
    server = sqlite_cluster.server
    existing = sqlite_cluster.client.submit_job(QUEUED)
    replicas = f"{dead_address()},{server.address}"

    with Client.connect(replicas, token=server.token, ca=server.ca) as client:
        cancelled = client.cancel_job(existing.id)  # a change without a request id, first thing
        submitted = client.submit_job(QUEUED)
        listed = [job.id for job in client.list_jobs()]
        assert client.target == replicas

    assert cancelled.state == CANCELLED
    assert sqlite_cluster.client.get_job(existing.id).state == CANCELLED
    assert sorted(listed) == sorted([existing.id, submitted.id])


def test_the_async_client_given_a_dead_address_first_uses_the_live_one(sqlite_cluster):
    server = sqlite_cluster.server
    job = sqlite_cluster.client.submit_job(QUEUED)

    async def main():
        async with AsyncClient.connect(f"{dead_address()},{server.address}", token=server.token,
                                       ca=server.ca) as client:
            return await client.get_job(job.id), await client.cancel_job(job.id)

    got, cancelled = asyncio.run(main())
    assert got.id == job.id and cancelled.state == CANCELLED


def test_the_cli_takes_a_list_of_replicas_from_the_environment(sqlite_cluster):
    server = sqlite_cluster.server
    job = sqlite_cluster.client.submit_job(QUEUED)
    env = {**server.env(), "JOBPLANE_SERVER": f"{dead_address()}, {server.address}"}

    listed = jobplane("jobs", "list", "-o", "json", env=env)
    cancelled = jobplane("cancel", job.id, env=env)

    assert listed.returncode == 0, listed.stderr
    assert f'"id": "{job.id}"' in listed.stdout
    assert cancelled.returncode == 0, cancelled.stderr
    assert sqlite_cluster.client.get_job(job.id).state == CANCELLED


def test_the_cli_names_every_replica_it_could_not_reach(sqlite_cluster):
    first, second = dead_address(), dead_address()
    result = jobplane("jobs", "list", "--server", f"{first},{second}", env=sqlite_cluster.server.env())
    assert result.returncode == 3
    assert f"cannot reach any of the jobplane servers at {first}, {second} (from --server)" in result.stderr


def test_servers_list_of_a_single_server_shows_it_leading(sqlite_cluster):
    server = sqlite_cluster.server
    result = jobplane("servers", "list", "--server", server.address, env=server.env())
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if server.address in line]
    assert "LEADER" in row.upper()


def test_a_watch_resumes_after_its_server_is_killed_and_restarted_without_gap_or_duplicate(
        tmp_path, sqlite_url, caplog):
    caplog.set_level(logging.INFO, logger="jobplane.client")
    cluster = Cluster(tmp_path, sqlite_url)
    port = free_port()
    gate = tmp_path / "gate"
    try:
        cluster.start_server(port=port, grace=5.0)
        cluster.add_agent("a", slots=2)
        job = cluster.client.submit_job({"name": "gated", "tasks": [
            {"name": f"t{i}", "command": ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"]}
            for i in range(4)]})
        seen, failed = [], []
        patient = Retry(attempts=60, first_pause=0.1, max_pause=0.5)  # a restart takes a few seconds

        def watch() -> None:
            try:
                with cluster.server.client(retry=patient) as client:
                    for event in client.watch(job.id):
                        seen.append(event)
                        if is_job_end(event, job.id):
                            return
            except Exception as exc:  # the assertion below shows it
                failed.append(exc)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        wait_until(lambda: failed or any(e.kind == RUNNING_TASK and e.raw_status == "RUNNING" for e in seen), 30,
                   "the watcher to see a task running")
        cluster.server.kill()  # kill -9, in the middle of the job
        cluster.start_server(port=port, grace=5.0)  # the same port and SQLite file
        gate.touch()
        watcher.join(90)

        assert not failed, failed
        assert not watcher.is_alive(), "the watch saw the job end"
        with cluster.server.client() as client:
            everything = []
            for event in client.watch(job.id, timeout=60):
                everything.append(event)
                if is_job_end(event, job.id):
                    break
        assert [e.id for e in seen] == [e.id for e in everything], "no gap, no duplicate"
        assert seen == everything
        assert "resuming the watch after event" in caplog.text, "the watch broke and resumed"
    finally:
        cluster.close()


def test_an_agent_given_a_dead_address_first_enrolls_and_runs_work_through_the_live_one(sqlite_cluster):
    server = sqlite_cluster.server
    agent = AgentProc(sqlite_cluster.workdir, server, "a", address=f"{dead_address()},{server.address}")
    sqlite_cluster.agents["a"] = agent
    sqlite_cluster.wait_active("a")

    job = sqlite_cluster.client.submit_job({"name": "j", "tasks": [{"name": "t", "command": ["true"]}]})

    assert sqlite_cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED


def test_an_agent_leaves_a_frozen_server_for_the_next_one(tmp_path):
    """SIGSTOP keeps the frozen server's connections open: only the agent's keepalive pings,
    unanswered, tell it that nobody is there any more."""
    servers, agent = [], None
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            servers.append(ServerProc(tmp_path / name, f"sqlite:///{tmp_path / name / 'jobplane.db'}", insecure=True))
        frozen, live = servers
        agent = AgentProc(tmp_path, frozen, "x", address=f"{frozen.address},{live.address}")
        with frozen.client() as client:
            wait_until(lambda: any(p.id == "x" and p.state == ACTIVE for p in client.list_providers()), 30,
                       "the agent to connect to the first server")
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            with live.client() as client:
                wait_until(lambda: any(p.id == "x" and p.state == ACTIVE for p in client.list_providers()), 30,
                           "the agent to move on to the second server")
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        assert f"connected to {live.address} as x" in agent.output()
    finally:
        if agent is not None:
            agent.stop()
        for server in servers:
            server.stop()
