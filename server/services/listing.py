"""Filtered, sorted, paged lists of jobs and tasks as one caller sees them.

Terms the database can answer become SQL; the rest (labels, raw properties, environments,
and the normalized status of a caller with personal policies) are checked on the converted
messages, in chunks, on a reader thread. Paging is by id when the default order applies
and by offset when `order_by` is given.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from itertools import accumulate
from dataclasses import dataclass

from jobplane.v1 import job_pb2, task_pb2

from ..domain.model import EventKind, JobState, Status, TaskState
from ..domain.query import NUMBER, TEXT, TIME, Field, Term, matches_all, parse_filter, parse_order
from ..domain.limits import MAX_ID, PAGE_BYTES
from ..errors import FailedPrecondition, InvalidArgument
from ..store.models import JobRow
from ..store.queries import JOB_COLUMNS, TASK_COLUMNS, condition, conjunction, jobs_on_provider, tasks_of_owner
from . import convert

CHUNK = 500  # rows read per round when terms are checked on messages
MAX_SCAN = 20_000  # rows examined for one page before answering with what was found
SORT_CAP = 20_000  # matching rows a sort the database cannot do may hold in memory

JOB_FIELDS: dict[str, Field] = {
    "status": Field("enum", Status), "state": Field("enum", JobState), "name": TEXT, "owner": TEXT,
    "environment": TEXT, "provider": TEXT, "priority": NUMBER, "id": NUMBER, "label.*": TEXT, "raw.*": TEXT,
    "submitted": TIME, "started": TIME, "ended": TIME}

TASK_FIELDS: dict[str, Field] = {
    "status": Field("enum", Status), "state": Field("enum", TaskState), "name": TEXT, "group": TEXT, "job": NUMBER,
    "provider": TEXT, "environment": TEXT, "attempt": NUMBER, "exit_code": NUMBER, "id": NUMBER, "owner": TEXT,
    "label.*": TEXT, "raw.*": TEXT, "started": TIME, "ended": TIME}


def _time(message, name: str) -> float | None:
    return getattr(message, name).ToNanoseconds() / 1e9 if message.HasField(name) else None


def job_value(m: job_pb2.Job, key: str) -> object:
    """The value of filter/sort key `key` for a job message (tuples: any element may match)."""
    if key.startswith("label."):
        return m.spec.labels.get(key[6:])
    if key.startswith("raw."):
        return m.raw.get(key[4:])
    getters: dict[str, Callable[[job_pb2.Job], object]] = {
        "status": lambda j: j.status, "state": lambda j: j.state, "name": lambda j: j.spec.name,
        "owner": lambda j: j.owner, "priority": lambda j: j.spec.priority, "id": lambda j: int(j.id),
        "environment": lambda j: tuple({_environment(t) for t in j.spec.tasks}),
        "submitted": lambda j: _time(j, "submit_time"), "started": lambda j: _time(j, "start_time"),
        "ended": lambda j: _time(j, "end_time")}
    return getters[key](m)


def _environment(spec) -> str:
    if spec.HasField("slurm"):
        return "slurm"
    return "external" if spec.HasField("external") else "python" if spec.python else "process"


def task_value(m: task_pb2.Task, key: str, job: JobRow | None) -> object:
    if key.startswith("raw."):
        return m.raw.get(key[4:])
    if key.startswith("label.") or key == "owner":
        if job is None:
            return None
        return job.owner if key == "owner" else convert.job_labels(job).get(key[6:])
    last = m.attempts[-1] if m.attempts else None
    getters: dict[str, Callable[[task_pb2.Task], object]] = {
        "status": lambda t: t.status, "state": lambda t: t.state, "name": lambda t: t.name, "group": lambda t: t.group,
        "job": lambda t: int(t.job_id), "provider": lambda t: t.provider_id, "environment": lambda t: t.environment,
        "attempt": lambda t: t.attempt, "exit_code": lambda t: t.exit_code if t.HasField("exit_code") else None,
        "id": lambda t: int(t.id), "started": lambda t: _time(last, "start_time") if last else None,
        "ended": lambda t: _time(last, "end_time") if last else None}
    return getters[key](m)


# ----- queries -----------------------------------------------------------------------

@dataclass
class Query:
    """A parsed filter and order for one caller: what SQL answers and what messages must."""

    sql: object | None  # peewee condition
    rest: list[Term]  # checked on messages
    order: list[tuple[str, bool]]
    sql_order: list | None  # peewee ordering when the database can sort, else None

    @property
    def sorted(self) -> bool:
        return bool(self.order)


def compile_query(fields: dict[str, Field], columns: dict, text: str, order_text: str, now: float,
                  personal: bool, special: dict[str, Callable[[Term], object]] | None = None) -> Query:
    """`personal`: the caller has its own policies, so stored statuses are not its statuses.
    `special`: keys answered by SQL in their own way (e.g. a job's providers)."""
    terms = parse_filter(text, fields, now)
    order = parse_order(order_text, fields)
    pushed, rest = [], []
    for term in terms:
        cond = None
        if special and term.key in special:
            cond = special[term.key](term)
        elif term.key in columns and not (personal and term.key == "status"):
            cond = condition(term, columns[term.key])
        (pushed if cond is not None else rest).append(cond if cond is not None else term)
    sql_order = None
    if order and all(k in columns and not (personal and k == "status") for k, _ in order):
        sql_order = [columns[k].desc() if d else columns[k].asc() for k, d in order]
    return Query(conjunction(pushed), rest, order, sql_order)


def job_query(text: str, order_text: str, now: float, personal: bool) -> Query:
    return compile_query(JOB_FIELDS, JOB_COLUMNS, text, order_text, now, personal,
                         special={"provider": jobs_on_provider})


def task_query(text: str, order_text: str, now: float, personal: bool) -> Query:
    return compile_query(TASK_FIELDS, TASK_COLUMNS, text, order_text, now, personal,
                         special={"owner": tasks_of_owner})


# ----- tokens ------------------------------------------------------------------------

def encode(kind: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode(token: str, kind: str) -> int | None:
    if not token:
        return None
    try:
        tag, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if tag == kind and value.isascii() and value.isdigit() and int(value) <= MAX_ID:
            return int(value)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidArgument("page_token", "not a token from a previous response with the same order_by; "
                                        "pass next_page_token as returned")


# ----- scanning ----------------------------------------------------------------------

@dataclass
class Source:
    """How to read and convert one resource: `fetch(cond, after, offset, limit, order)` rows;
    `convert(rows)` messages (in order); `value(message, key)` for checks and sorting."""

    fetch: Callable[[object, int | None, int, int, list | None], list]
    convert: Callable[[list], list]
    value: Callable[[object, str], object]


def page(source: Source, query: Query, token: str, size: int, max_bytes: int = PAGE_BYTES) -> tuple[list, str]:
    """One page of matching messages and the token of the next ("" at the end). A page stops
    early at `max_bytes` of messages (but holds at least one), so big rows never make a
    response too large to send."""
    if query.sorted and query.sql_order is None:
        return _sorted_in_memory(source, query, decode(token, "jp2") or 0, size, max_bytes)
    if query.sorted:
        return _scan(source, query, size, max_bytes, offset=decode(token, "jp2") or 0)
    return _scan(source, query, size, max_bytes, after=decode(token, "jp1"))


def _keeps(source: Source, query: Query):
    return lambda m: matches_all(query.rest, lambda key: source.value(m, key))


def _scan(source: Source, query: Query, size: int, max_bytes: int, after: int | None = None,
          offset: int | None = None):
    keep = _keeps(source, query)
    found: list = []
    scanned = used = 0
    chunk = size + 1 if not query.rest else CHUNK
    while True:
        rows = source.fetch(query.sql, after, offset or 0, chunk, query.sql_order)
        messages = source.convert(rows)
        for i, (row, message) in enumerate(zip(rows, messages)):
            if keep(message):
                used += message.ByteSize()
                if found and used > max_bytes:  # full: the next page starts with this row
                    if offset is not None:
                        return found, encode("jp2", offset + i)
                    return found, encode("jp1", rows[i - 1].id if i else after)
                found.append(message)
            scanned += 1
            if len(found) == size or scanned >= MAX_SCAN:
                more = i + 1 < len(rows) or len(rows) == chunk
                if offset is not None:
                    return found, encode("jp2", offset + i + 1) if more else ""
                return found, encode("jp1", row.id) if more else ""
        if len(rows) < chunk:
            return found, ""
        if offset is not None:
            offset += len(rows)
        else:
            after = rows[-1].id


def _sorted_in_memory(source: Source, query: Query, offset: int, size: int, max_bytes: int):
    rows = source.fetch(query.sql, None, 0, SORT_CAP + 1, None)
    if len(rows) > SORT_CAP:
        raise FailedPrecondition(f"order_by: more than {SORT_CAP} rows match; narrow the filter, or sort by "
                                 "keys the server can sort in the database (not label.*, raw.*, environment)")
    keep = _keeps(source, query)
    messages = [m for m in source.convert(rows) if keep(m)]
    for key, descending in reversed(query.order):
        present = [m for m in messages if _sortable(source.value(m, key)) is not None]
        absent = [m for m in messages if _sortable(source.value(m, key)) is None]
        present.sort(key=lambda m: _sortable(source.value(m, key)), reverse=descending)
        messages = present + absent  # missing values last, either way
    chunk = messages[offset:offset + size]
    sizes = accumulate(m.ByteSize() for m in chunk)
    chunk = chunk[:max(1, sum(1 for used in sizes if used <= max_bytes))]
    end = offset + len(chunk)
    return chunk, encode("jp2", end) if end < len(messages) else ""


def _sortable(value: object) -> object:
    if isinstance(value, tuple):
        value = min(value) if value else None
    if isinstance(value, str):
        try:
            return (0, float(value), "")
        except ValueError:
            return (1, 0.0, value)
    return value


# ----- events ------------------------------------------------------------------------

EVENT_FIELDS: dict[str, Field] = {
    "status": Field("enum", Status), "type": Field("enum", EventKind), "environment": TEXT, "provider": TEXT,
    "raw_status": TEXT, "raw.*": TEXT, "job": NUMBER, "task": TEXT, "attempt": NUMBER, "time": TIME,
    "owner": TEXT, "name": TEXT, "priority": NUMBER, "label.*": TEXT}
_JOB_KEYS = ("owner", "name", "priority")


@dataclass(frozen=True)
class JobFacts:
    """What event filters read from an event's job: fixed for the job's life."""

    owner: str
    name: str
    priority: int
    labels: dict[str, str]


class EventFilter:
    """The terms a watcher's events must meet. `names_tasks`: `name` is the task's name (a
    view of tasks), else the job's. Facts of jobs are read once per job and kept."""

    def __init__(self, terms: list[Term], names_tasks: bool) -> None:
        self.terms = terms
        self.names_tasks = names_tasks
        self.needs_jobs = any(t.key.startswith("label.") or (t.key in _JOB_KEYS and not (
            t.key == "name" and names_tasks)) for t in terms)
        self._jobs: dict[int, JobFacts | None] = {}

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
        getters: dict[str, Callable] = {
            "status": lambda: e.status, "type": lambda: e.kind, "environment": lambda: e.environment,
            "provider": lambda: e.provider_id, "raw_status": lambda: e.raw_status,
            "job": lambda: int(e.job_id) if e.job_id else None, "task": lambda: e.task_name or None,
            "attempt": lambda: e.attempt, "time": lambda: e.time.ToNanoseconds() / 1e9}
        return getters[key]()


def job_facts(rows: dict[int, JobRow]) -> dict[int, JobFacts]:
    return {i: JobFacts(r.owner, r.name, r.priority, convert.job_labels(r)) for i, r in rows.items()}
