"""The operators' verbs on replicas sharing one PostgreSQL: resume, rerun and purge sent to a
follower are done by the leader, and the retention purge runs on whichever replica leads."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobplane.client import NotFound, Unavailable
from support import AgentProc, ServerProc, wait_until

SUCCEEDED, FAILED, CANCELLED = 3, 4, 5
ACTIVE, DRAINED = 1, 6


def replica(workdir: Path, url: str, token: str = "", extra: tuple[str, ...] = ()) -> ServerProc:
    workdir.mkdir()
    if token:  # the admin token is the database's, made by the first replica
        (workdir / "data").mkdir()
        (workdir / "data" / "admin.token").write_text(token)
    return ServerProc(workdir, url, extra=["--lease", "2", *extra])


def gone(client, job_id: str) -> bool:
    try:
        client.get_job(job_id)
    except NotFound:
        return True
    return False


@pytest.mark.postgres
def test_resume_rerun_and_purge_through_a_follower(tmp_path: Path, pg_url):
    a = replica(tmp_path / "a", pg_url)
    b = replica(tmp_path / "b", pg_url, token=a.token)
    agent = AgentProc(tmp_path, a, "w1")
    fixed = tmp_path / "fixed"
    try:
        with b.client(timeout=10) as client:  # the follower
            wait_until(lambda: list(client.list_providers(filter="state=ACTIVE")), 20, "the agent to join")
            assert client.drain_provider("w1").state == DRAINED
            assert client.resume_provider("w1").state == ACTIVE
            job = client.submit_job({"name": "j", "tasks": [{"name": "t", "command": ["sh", "-c", f"[ -e {fixed} ]"]}]})
            assert client.wait_job(job.id, timeout=60).state == FAILED
            fixed.touch()
            assert len(client.rerun_job(job.id).task_ids) == 1
            assert client.wait_job(job.id, timeout=60).state == SUCCEEDED
            assert client.purge_jobs(datetime.now(timezone.utc)) == 1
            assert gone(client, job.id)
    finally:
        agent.stop()
        for server in (a, b):
            server.stop()


@pytest.mark.postgres
def test_the_retention_purge_runs_on_the_replica_that_leads_now(tmp_path: Path, pg_url):
    a = replica(tmp_path / "a", pg_url, extra=("--job-retention", "1"))
    b = replica(tmp_path / "b", pg_url, token=a.token, extra=("--job-retention", "1"))
    try:
        a.stop()  # a clean stop: b takes over at once
        with b.client(timeout=10) as client:
            def finished_job() -> str | None:
                """A job that finishes with no agent (submitted to wait, then cancelled), once b leads."""
                try:
                    job = client.submit_job({"name": "j", "wait_for_providers": True,
                                             "tasks": [{"name": "t", "command": ["true"]}]})
                except Unavailable:  # no replica leads for a moment
                    return None
                return client.cancel_job(job.id).id

            job_id = wait_until(finished_job, 20, "b to lead and take a job")
            assert client.get_job(job_id).state == CANCELLED
            wait_until(lambda: gone(client, job_id), 30, "the new leader to purge the finished job")
    finally:
        for server in (a, b):
            server.stop()
