"""Counts for /metrics: how many jobs, tasks and providers are in each state, one GROUP BY each,
all read from one snapshot of the database."""

from __future__ import annotations

from peewee import PostgresqlDatabase, fn

from .models import JobRow, ProviderRow, TaskRow, database


def all_counts() -> tuple[list, list, list]:
    """(job_counts(), task_counts(), provider_counts()) as of one moment: a scrape between two
    commits must never show a task RUNNING while its job is still WAITING."""
    db = database.obj
    with db.atomic():
        if isinstance(db, PostgresqlDatabase):  # its default, READ COMMITTED, snapshots each statement
            db.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return job_counts(), task_counts(), provider_counts()


def job_counts() -> list[tuple[int, int, int]]:
    """(state, stored normalized status, number of jobs)."""
    q = JobRow.select(JobRow.state, JobRow.status, fn.COUNT(JobRow.id).alias("n"))
    return [(r.state, r.status, r.n) for r in q.group_by(JobRow.state, JobRow.status)]


def task_counts() -> list[tuple[int, int, int]]:
    """(state, stored normalized status, number of tasks)."""
    q = TaskRow.select(TaskRow.state, TaskRow.status, fn.COUNT(TaskRow.id).alias("n"))
    return [(r.state, r.status, r.n) for r in q.group_by(TaskRow.state, TaskRow.status)]


def provider_counts() -> list[tuple[int, int]]:
    """(state, number of providers)."""
    q = ProviderRow.select(ProviderRow.state, fn.COUNT(ProviderRow.id).alias("n"))
    return [(r.state, r.n) for r in q.group_by(ProviderRow.state)]
