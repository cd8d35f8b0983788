"""A full disk under the database: the caller gets UNAVAILABLE with the real cause, the server
stops with the cause and the fix as the last line of its log, and after space returns a restart
has every acknowledged job. Runs on a small tmpfs, so it needs root (CI runs as root)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from support import ServerProc
from support_http import HTTP, get


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        why = f"cannot mount a tmpfs here ({done.stderr.decode().strip()}): the disk-full test needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the disk is full."""
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def job(name: str) -> dict:
    return {"name": name, "wait_for_providers": True, "tasks": [{"name": "t", "command": ["true"]}]}


def test_a_full_disk_is_named_to_the_caller_and_in_the_log_and_a_restart_recovers(small_disk, tmp_path):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from jobplane.client import Retry
    from jobplane.client.errors import Unavailable
    from support import admin_channel

    db_url = f"sqlite:///{small_disk / 'jobplane.db'}"
    server = ServerProc(tmp_path, db_url, extra=list(HTTP))
    acknowledged = []
    fix = f"database or disk is full: free space under {small_disk} and restart jobplane-server"
    try:
        with server.client(timeout=10, retry=Retry(attempts=1)) as client:  # each call once: counted once
            acknowledged += [client.submit_job(job(f"before-{i}")).id for i in range(3)]
            filler = fill(small_disk)
            with pytest.raises(Unavailable) as refused:
                for i in range(500):  # SQLite may still have room in pages it holds
                    acknowledged.append(client.submit_job(job(f"full-{i}-{uuid.uuid4().hex}")).id)
            assert fix in str(refused.value) and "no transaction is active" not in str(refused.value)
            # It stays up to tell every later caller why, and says it is not serving.
            with pytest.raises(Unavailable, match="database or disk is full"):
                list(client.list_jobs())
            with admin_channel(server) as channel:
                health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            http_health = get(server, "/healthz")  # and so do its HTTP health and metrics
            assert http_health.status == 503 and "database or disk is full" in http_health.body
            metrics = get(server, "/metrics").body
            assert "\njobplane_up 0\n" in metrics
            assert 'jobplane_rpcs_total{method="/jobplane.v1.JobService/ListJobs",code="UNAVAILABLE"} 1' in metrics
        assert fix in server.output().strip().splitlines()[-1]
        server.stop()
        assert server.p.returncode == 1
        assert fix in server.output().strip().splitlines()[-1]
    finally:
        server.stop()
    filler.unlink()
    again = ServerProc(tmp_path, db_url)
    try:
        with again.client(timeout=10) as client:
            for job_id in acknowledged:
                assert client.get_job(job_id).id == job_id
            assert client.submit_job(job("after")).id > max(acknowledged)
    finally:
        again.stop()


def test_the_server_explains_a_read_only_or_unreachable_database():
    from peewee import PostgresqlDatabase, SqliteDatabase

    from jobplane.server.store.failures import explain

    sqlite = SqliteDatabase("/srv/jobplane/jobplane.db")
    read_only = explain(Exception("attempt to write a readonly database"), sqlite)
    assert read_only == ("attempt to write a readonly database: make /srv/jobplane writable for this user and "
                         "restart jobplane-server; every acknowledged job is kept")
    masked = Exception("cannot rollback - no transaction is active")
    masked.__context__ = Exception("database or disk is full")
    assert explain(masked, sqlite).startswith("database or disk is full: free space under /srv/jobplane")
    pg = PostgresqlDatabase("jobs", host="db.example", port=5433)
    down = explain(Exception("could not connect to server: Connection refused"), pg)
    assert "check that PostgreSQL (the PostgreSQL server at db.example:5433, database jobs) is up" in down
