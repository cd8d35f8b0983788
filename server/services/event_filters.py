"""What a filtered watcher sees: the filter grammar's terms checked on each event as it is
streamed (WatchEvents' `filter` and views), the facts of the events' jobs read once per job."""

from __future__ import annotations

from collections.abc import Callable

from ..domain.model import EventKind, Status
from ..domain.query import NUMBER, TEXT, TIME, Field, Term, matches_all
from ..store.records import JobFacts

EVENT_FIELDS: dict[str, Field] = {
    "status": Field("enum", Status), "type": Field("enum", EventKind), "environment": TEXT, "provider": TEXT,
    "raw_status": TEXT, "raw.*": TEXT, "job": NUMBER, "task": TEXT, "attempt": NUMBER, "time": TIME,
    "owner": TEXT, "name": TEXT, "priority": NUMBER, "label.*": TEXT}
_JOB_KEYS = ("owner", "name", "priority")


class EventFilter:
    """The terms a watcher's events must meet. `names_tasks`: `name` is the task's name (a
    view of tasks), else the job's. Facts of jobs are read once per job and kept."""

    def __init__(self, terms: list[Term], names_tasks: bool) -> None:
        self.terms = terms
        self.names_tasks = names_tasks
        self.needs_jobs = any(t.key.startswith("label.") or (t.key in _JOB_KEYS and not (
            t.key == "name" and names_tasks)) for t in terms)
        self._jobs: dict[int, JobFacts | None] = {}

    def kind(self) -> EventKind | None:
        """The one kind of event the filter lets through (a term `type=JOB`), or None: a watcher
        may subscribe to that kind alone, and skip the others before they are converted."""
        for t in self.terms:
            if t.key == "type" and t.op == "=" and len(t.values) == 1:
                return EventKind(t.values[0])
        return None

    def missing_jobs(self, events: list) -> list[int]:
        if not self.needs_jobs:
            return []
        return sorted({int(e.job_id) for e in events if e.job_id and int(e.job_id) not in self._jobs})

    def learn(self, facts: dict[int, JobFacts], asked: list[int]) -> None:
        for job_id in asked:
            self._jobs[job_id] = facts.get(job_id)
        if len(self._jobs) > 100_000:  # a long watch of many jobs: forget, read again when needed
            self._jobs.clear()

    def keep(self, events: list) -> list:
        return [e for e in events if matches_all(self.terms, lambda key: self._value(e, key))]

    def _value(self, e, key: str) -> object:
        if key.startswith("raw."):
            return e.raw.get(key[4:])
        if key == "name" and self.names_tasks:
            return e.task_name or None
        if key.startswith("label.") or key in _JOB_KEYS:
            job = self._jobs.get(int(e.job_id)) if e.job_id else None
            if job is None:
                return None
            return job.labels.get(key[6:]) if key.startswith("label.") else getattr(job, key)
        return _GETTERS[key](e)


# The keys an event answers by itself.
_GETTERS: dict[str, Callable] = {
    "status": lambda e: e.status, "type": lambda e: e.kind, "environment": lambda e: e.environment,
    "provider": lambda e: e.provider_id, "raw_status": lambda e: e.raw_status,
    "job": lambda e: int(e.job_id) if e.job_id else None, "task": lambda e: e.task_name or None,
    "attempt": lambda e: e.attempt, "time": lambda e: e.time.ToNanoseconds() / 1e9}
