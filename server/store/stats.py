"""Counts for /metrics: how many jobs, tasks and providers are in each state, one GROUP BY each."""

from __future__ import annotations

from peewee import fn

from .models import JobRow, ProviderRow, TaskRow


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
