"""Filters and sort orders to SQL: for each listable table, the keys its filter takes
(domain/query.py's grammar) and the columns that answer them. What SQL cannot answer (labels,
raw properties, a caller's own normalized status) is left to be checked on the views."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import reduce

from ..domain.model import JobState, Status, TaskState
from ..domain.query import NUMBER, TEXT, TIME, Field, Term, parse_filter, parse_order
from ..errors import InvalidArgument
from .models import AuditRow, ContinuationRow, JobRow, TaskRow

JOB_FIELDS: dict[str, Field] = {
    "status": Field("enum", Status), "state": Field("enum", JobState), "name": TEXT, "owner": TEXT,
    "environment": TEXT, "provider": TEXT, "priority": NUMBER, "id": NUMBER, "label.*": TEXT, "raw.*": TEXT,
    "submitted": TIME, "started": TIME, "ended": TIME, "schedule": NUMBER}

TASK_FIELDS: dict[str, Field] = {
    "status": Field("enum", Status), "state": Field("enum", TaskState), "name": TEXT, "group": TEXT, "job": NUMBER,
    "provider": TEXT, "environment": TEXT, "attempt": NUMBER, "exit_code": NUMBER, "id": NUMBER, "owner": TEXT,
    "label.*": TEXT, "raw.*": TEXT, "submitted": TIME, "started": TIME, "ended": TIME}

AUDIT_FIELDS: dict[str, Field] = {"identity": TEXT, "method": TEXT, "code": TEXT, "target": TEXT}
CONTINUATION_FIELDS: dict[str, Field] = {"provider": TEXT}

# filter/sort key -> column, for the keys the database answers (the views answer the rest)
JOB_COLUMNS = {"status": JobRow.status, "state": JobRow.state, "name": JobRow.name, "owner": JobRow.owner,
               "priority": JobRow.priority, "id": JobRow.id, "submitted": JobRow.submit_time,
               "started": JobRow.start_time, "ended": JobRow.end_time, "schedule": JobRow.schedule}
TASK_COLUMNS = {"status": TaskRow.status, "state": TaskRow.state, "name": TaskRow.name, "group": TaskRow.group,
                "job": TaskRow.job, "provider": TaskRow.provider, "environment": TaskRow.environment,
                "attempt": TaskRow.attempt, "exit_code": TaskRow.exit_code, "id": TaskRow.id}
AUDIT_COLUMNS = {"identity": AuditRow.identity, "method": AuditRow.method, "code": AuditRow.code,
                 "target": AuditRow.target}
CONTINUATION_COLUMNS = {"provider": ContinuationRow.provider}


@dataclass
class Query:
    """A parsed filter and order: what SQL answers and what the views must."""

    sql: object | None  # peewee condition
    rest: list[Term]  # checked on the views
    order: list[tuple[str, bool]]
    sql_order: list | None  # peewee ordering when the database can sort, else None

    @property
    def sorted(self) -> bool:
        return bool(self.order)

    def narrowed(self, cond: object | None) -> Query:
        """The same query, also holding `cond` (tenancy, one job's tasks)."""
        return Query(conjunction([self.sql, cond]), self.rest, self.order, self.sql_order)


def compile_query(fields: dict[str, Field], columns: dict, text: str, order_text: str, now: float,
                  personal: bool = False, special: dict[str, Callable[[Term], object]] | None = None) -> Query:
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


def job_query(text: str, order_text: str, now: float, personal: bool = False, owner: str | None = None) -> Query:
    """`owner`: only that identity's jobs (a submitter sees only its own)."""
    query = compile_query(JOB_FIELDS, JOB_COLUMNS, text, order_text, now, personal,
                          special={"provider": jobs_on_provider})
    return query if owner is None else query.narrowed(JobRow.owner == owner)


def task_query(text: str, order_text: str, now: float, personal: bool = False, owner: str | None = None,
               job_id: int | None = None) -> Query:
    """`job_id`: that job's tasks only; `owner`: only tasks of that identity's jobs."""
    query = compile_query(TASK_FIELDS, TASK_COLUMNS, text, order_text, now, personal,
                          special={"owner": tasks_of_owner, "submitted": tasks_submitted})
    if job_id is not None:
        query = query.narrowed(TaskRow.job == job_id)
    return query if owner is None else query.narrowed(visible_tasks(owner))


def audit_query(text: str) -> Query:
    return compile_query(AUDIT_FIELDS, AUDIT_COLUMNS, text, "", 0.0)


def continuation_query(text: str) -> Query:
    return compile_query(CONTINUATION_FIELDS, CONTINUATION_COLUMNS, text, "", 0.0)


def condition(term: Term, column) -> object | None:
    """The term as a peewee condition, or None when it must be checked on the views."""
    values = term.values
    if term.op in ("=", "!="):
        if any(isinstance(v, str) and ("*" in v or "?" in v) for v in values):
            prefix = values[0][:-1] if isinstance(values[0], str) else ""
            if len(values) == 1 and term.op == "=" and values[0].endswith("*") and not any(c in prefix for c in "*?"):
                return column.startswith(prefix)
            return None
        if term.op == "!=" and term.key in ("started", "ended", "exit_code", "provider"):
            return None  # NULL never equals: let the views answer
        return column.in_(list(values)) if term.op == "=" else column.not_in(list(values))
    ops = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
    return ops[term.op](column, values[0])


def conjunction(conds: Iterable) -> object | None:
    conds = [c for c in conds if c is not None]
    return reduce(operator.and_, conds) if conds else None


def jobs_on_provider(term: Term) -> object:
    """Jobs with a task on (or last on) one of the named providers (or on none of them)."""
    inner = condition(Term("provider", "=", term.values, term.pos), TaskRow.provider)
    if inner is None or term.op not in ("=", "!="):
        raise InvalidArgument("filter", f"position {term.pos}: provider on jobs takes = or != with names "
                                        "(a trailing * for a prefix)")
    match = JobRow.id.in_(TaskRow.select(TaskRow.job).where(inner))
    return match if term.op == "=" else ~match


def tasks_of_owner(term: Term) -> object | None:
    inner = condition(term, JobRow.owner)
    return None if inner is None else TaskRow.job.in_(JobRow.select(JobRow.id).where(inner))


def tasks_submitted(term: Term) -> object | None:
    """Tasks of the jobs submitted when the term says (a task is submitted with its job)."""
    inner = condition(term, JobRow.submit_time)
    return None if inner is None else TaskRow.job.in_(JobRow.select(JobRow.id).where(inner))


def visible_tasks(identity: str) -> object:
    """Tasks of the jobs `identity` submitted."""
    return TaskRow.job.in_(JobRow.select(JobRow.id).where(JobRow.owner == identity))
