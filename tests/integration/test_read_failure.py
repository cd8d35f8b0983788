"""A database that cannot be read answers UNAVAILABLE with the cause, and the server stays up."""

from __future__ import annotations

import pytest

from jobplane.client import Unavailable
from jobplane.server.store.db import open_database


def rename(db_url: str, old: str, new: str) -> None:
    db = open_database(db_url)
    try:
        db.execute_sql(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        db.close()


def test_a_read_the_database_refuses_is_unavailable_with_its_cause_and_the_next_one_works(cluster):
    job = cluster.client.submit_job({"name": "kept", "wait_for_providers": True,
                                     "tasks": [{"name": "t", "command": ["true"]}]})
    rename(cluster.db_url, "job", "job_away")
    try:
        with pytest.raises(Unavailable) as refused:
            list(cluster.client.list_jobs())
        assert "the database could not be read" in str(refused.value)
        assert "job" in str(refused.value) and "then try again" in str(refused.value)
        assert "Traceback" not in cluster.server.output()
    finally:
        rename(cluster.db_url, "job_away", "job")
    assert [j.id for j in cluster.client.list_jobs()] == [job.id], "the server stayed up and reads again"
