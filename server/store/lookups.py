"""Filter keys that no column of the listed table holds, each answered through an index all the
same: labels and environments of jobs (job_tag), the promoted raw properties of tasks (an
expression index), when a task's latest attempt started or ended (attempt), a job's raw state
(its state column), a task's job's owner and submit time (job).

Each returns a Lookup: the peewee condition and whether it is `exact`; an inexact one selects a
few rows too many at most (never too few), and the views check the term again on them. None:
the term cannot be answered by an index."""

from __future__ import annotations

from dataclasses import dataclass

from peewee import SQL, fn

from ..domain.model import JobState
from ..domain.query import Term
from .indexes import PROMOTED_RAW, postgres, raw_value
from .models import AttemptRow, JobRow, JobTagRow, TaskRow

RANGE_LIKELIHOOD = 0.01


@dataclass(frozen=True)
class Lookup:
    cond: object
    exact: bool = True
    by_job: bool = False  # tasks chosen by their job: best read job by job (reads.task_select)


def condition(term: Term, column, nullable: bool = False) -> object | None:
    """The term as a peewee condition on `column`; None for a wildcard other than one at the end.
    `nullable`: a row without a value matches != (as on the views)."""
    values = term.values
    if term.op in ("=", "!="):
        if any(isinstance(v, str) and ("*" in v or "?" in v) for v in values):
            prefix = values[0][:-1] if isinstance(values[0], str) else ""
            if len(values) == 1 and term.op == "=" and values[0].endswith("*") and not any(c in prefix for c in "*?"):
                return _prefixed(column, prefix)
            return None
        if term.op == "=":
            return column.in_(list(values))
        return (column.is_null() | column.not_in(list(values))) if nullable else column.not_in(list(values))
    cond = {"<": column < values[0], "<=": column <= values[0], ">": column > values[0],
            ">=": column >= values[0]}[term.op]
    # SQLite guesses a range selects a quarter of the rows and then prefers to scan the table in
    # id order; a filter's range is usually narrow (failed tasks, the last hour): use its index.
    return cond if postgres() else fn.likelihood(cond, SQL(str(RANGE_LIKELIHOOD)))


def _prefixed(column, prefix: str) -> object:
    """Values starting with `prefix`. SQLite compares text by its UTF-8 bytes, so they are the
    range [prefix, prefix with its last character one higher): an index answers it. PostgreSQL
    sorts text by its collation, where no such range is exact: LIKE (a scan of the matches'
    candidates, case-insensitive as peewee's startswith)."""
    if not prefix:
        return column.is_null(False)
    if postgres():
        return column.startswith(prefix)
    if ord(prefix[-1]) >= 0x10FFFF:  # no character after it: no range ends there
        return None
    return (column >= prefix) & (column < prefix[:-1] + chr(ord(prefix[-1]) + 1))


def _tagged(key: str, term: Term) -> object | None:
    """Ids of the jobs with a tag `key` the term's values select (for != : the values it excludes)."""
    numbers = _numbers(term.values)
    if term.op in ("=", "!="):
        inner = condition(Term(key, "=", term.values, term.pos), JobTagRow.value)
    elif numbers is not None:  # as the views do: numbers when both sides are
        inner = condition(Term(key, term.op, numbers, term.pos), JobTagRow.number)
    else:
        inner = condition(term, JobTagRow.value)
    if inner is None:
        return None
    return JobTagRow.select(JobTagRow.job).where((JobTagRow.key == key) & inner)


def job_tag(term: Term) -> Lookup | None:
    """label.KEY and environment of jobs."""
    key = term.key if term.key.startswith("label.") else "environment"
    jobs = _tagged(key, term)
    if jobs is None:
        return None
    return Lookup(JobRow.id.not_in(jobs) if term.op == "!=" else JobRow.id.in_(jobs), exact=term.op in ("=", "!="))


def task_job_tag(term: Term) -> Lookup | None:
    """label.KEY of tasks: their job's."""
    jobs = _tagged(term.key, term)
    if jobs is None:
        return None
    if term.op == "!=":
        return Lookup(TaskRow.job.not_in(jobs))
    return Lookup(TaskRow.job.in_(jobs), exact=term.op == "=", by_job=True)


def job_raw(term: Term) -> Lookup:
    """raw.KEY of jobs: their raw properties are {"state": the state's name}, so raw.state is a
    condition on the state column and any other key is never there."""
    if term.key != "raw.state":
        return Lookup(SQL("1 = 1") if term.op == "!=" else SQL("1 = 0"))
    states = [int(s) for s in JobState if term.matches(s.name)]
    return Lookup(JobRow.state.in_(states) if states else SQL("1 = 0"))


def task_raw(term: Term) -> Lookup | None:
    """raw.KEY of tasks, for the promoted keys (store/indexes.py): numbers compare as numbers,
    text by = and != (and a trailing *)."""
    key = term.key[4:]
    kind = PROMOTED_RAW.get(key)
    if kind is None:
        return None
    if kind == "number":
        numbers = _numbers(term.values)
        if numbers is None:
            return None
        cond = condition(Term(term.key, term.op, numbers, term.pos), raw_value(key), nullable=True)
    elif term.op in ("=", "!="):
        cond = condition(term, raw_value(key), nullable=True)
    else:
        return None
    return None if cond is None else Lookup(cond, exact=False)


def task_time(term: Term) -> Lookup | None:
    """started / ended of tasks (their latest attempt's): the tasks with an attempt in the
    range, from attempt's time indexes; the views keep those whose latest attempt is."""
    if term.op == "!=":
        return None
    column = AttemptRow.start_time if term.key == "started" else AttemptRow.end_time
    return Lookup(TaskRow.id.in_(AttemptRow.select(AttemptRow.task).where(condition(term, column))), exact=False)


def task_of_job(column):
    """owner / submitted of tasks: their job's."""
    def lookup(term: Term) -> Lookup | None:
        inner = condition(term, column)
        return None if inner is None else Lookup(TaskRow.job.in_(JobRow.select(JobRow.id).where(inner)), by_job=True)
    return lookup


def jobs_on_provider(term: Term) -> Lookup | None:
    """Jobs with a task on (or last on) one of the named providers (or on none of them)."""
    inner = condition(Term("provider", "=", term.values, term.pos), TaskRow.provider)
    if inner is None:
        return None
    match = JobRow.id.in_(TaskRow.select(TaskRow.job).where(inner))
    return Lookup(match if term.op == "=" else ~match) if term.op in ("=", "!=") else None


def _numbers(values: tuple) -> tuple[float, ...] | None:
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None

