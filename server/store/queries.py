"""Filters and sort orders to SQL: for each listable table, the keys its filter takes
(domain/query.py's grammar) and the columns (or lookups.py's Lookups) that answer them, each
from an index. A listing of every job or task refuses a term no index answers (it would read
the whole table); what only the views know (a caller's own normalized status) and the terms of
one job's tasks no index answers are checked on the views."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import reduce

from peewee import SQL

from ..domain.model import JobState, Status, TaskState
from ..domain.query import NUMBER, TEXT, TIME, Field, Term, parse_filter, parse_order
from ..errors import InvalidArgument
from .indexes import PROMOTED_RAW
from .lookups import (
    Lookup, condition, job_raw, job_tag, jobs_on_provider, task_job_tag, task_of_job, task_raw, task_time)
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
    sql_order: list | None  # (column, descending) keys when the database can sort, else None
    by_job: bool = False  # tasks selected through their jobs: walked job by job (reads.task_select)
    rechecks: bool = False  # `rest` only checks again what SQL answered (nearly all rows it reads pass)

    @property
    def sorted(self) -> bool:
        return bool(self.order)

    def narrowed(self, cond: object | None, by_job: bool = False) -> Query:
        """The same query, also holding `cond` (tenancy, one job's tasks)."""
        return Query(conjunction([self.sql, cond]), self.rest, self.order, self.sql_order, self.by_job or by_job,
                     self.rechecks)


Special = dict[str, Callable[[Term], Lookup | None]]


def compile_query(fields: dict[str, Field], columns: dict, text: str, order_text: str, now: float,
                  personal: bool = False, special: Special | None = None, bounded: bool = True) -> Query:
    """`personal`: the caller has its own policies, so stored statuses are not its statuses.
    `special`: keys (or `label.*`, `raw.*`) answered through a Lookup (lookups.py).
    `bounded`: the rows are few (one job's tasks), so a term no index answers may be checked
    on the views; otherwise such a term is refused, naming the keys that are answered."""
    terms = parse_filter(text, fields, now)
    order = parse_order(order_text, fields)
    pushed, rest, by_job, rechecks = [], [], False, True
    for term in terms:
        if personal and term.key == "status":  # the caller's own statuses: only the views know them
            rest.append(term)
            rechecks = False
            continue
        found = _lookup(term, columns, special or {})
        if found is None and not bounded:
            raise InvalidArgument("filter", f"position {term.pos}: {_shown(term)} is not answered by an index; "
                                            f"filter on {_served(fields, columns, special or {})}")
        if found is not None:
            pushed.append(found.cond)
            by_job = by_job or found.by_job
        if found is None or not found.exact:
            rest.append(term)
            rechecks = rechecks and found is not None
    sql_order = None
    if order and all(k in columns and not (personal and k == "status") for k, _ in order):
        sql_order = [(columns[k], d) for k, d in order]
    return Query(conjunction(pushed), rest, order, sql_order, by_job, rechecks)


def ordering(sort: list[tuple[object, bool]]) -> list:
    """ORDER BY terms for (column, descending) keys: missing values last either way, as the
    views sort them (and the same on SQLite and PostgreSQL, whose NULLs differ)."""
    out = []
    for column, descending in sort:
        if column.null:
            out.append(column.is_null().asc())
        out.append(column.desc() if descending else column.asc())
    return out


def after_keys(sort: list[tuple[object, bool]], tie: tuple[object, bool], last: list) -> object:
    """The rows after the one whose sort key values (then id) are `last`, in the order of `sort`
    then `tie` (the id column, descending or not): keyset pagination."""
    options, same = [], []
    for (column, descending), value in zip([*sort, tie], last):
        if value is None:  # missing values come last: only the missing come after
            after = None
            equal = column.is_null()
        else:
            after = column < value if descending else column > value
            if column.null:
                after = after | column.is_null()
            equal = column == value
        if after is not None:
            options.append(conjunction([*same, after]))
        same.append(equal)
    return reduce(operator.or_, options) if options else SQL("1 = 0")


def _lookup(term: Term, columns: dict, special: Special) -> Lookup | None:
    prefix = next((p for p in ("label.*", "raw.*") if term.key.startswith(p[:-1]) and p in special), None)
    if term.key in special or prefix:
        return special[term.key if term.key in special else prefix](term)
    if term.key in columns:
        cond = condition(term, columns[term.key], nullable=columns[term.key].null)
        return None if cond is None else Lookup(cond)
    return None


def _served(fields: dict[str, Field], columns: dict, special: Special) -> str:
    keys = [k for k in fields if k in columns or k in special]
    if "raw.*" in special and special["raw.*"] is task_raw:
        keys = [k for k in keys if k != "raw.*"] + [f"raw.{k}" for k in PROMOTED_RAW]
    keys = [k.replace(".*", ".KEY") for k in keys]
    return ", ".join(keys) + " (a wildcard only at the end: name=nightly*)"


def _shown(term: Term) -> str:
    values = ",".join(str(v) for v in term.values)
    return f"{term.key}{term.op}{values}"[:80]


def job_query(text: str, order_text: str, now: float, personal: bool = False, owner: str | None = None) -> Query:
    """`owner`: only that identity's jobs (a submitter sees only its own)."""
    query = compile_query(JOB_FIELDS, JOB_COLUMNS, text, order_text, now, personal, special=JOB_LOOKUPS,
                          bounded=False)
    return query if owner is None else query.narrowed(JobRow.owner == owner)


def task_query(text: str, order_text: str, now: float, personal: bool = False, owner: str | None = None,
               job_id: int | None = None) -> Query:
    """`job_id`: that job's tasks only (few: a term no index answers is checked on them); `owner`:
    only tasks of that identity's jobs."""
    query = compile_query(TASK_FIELDS, TASK_COLUMNS, text, order_text, now, personal, special=TASK_LOOKUPS,
                          bounded=job_id is not None)
    if job_id is not None:
        query = query.narrowed(TaskRow.job == job_id)
    return query if owner is None else query.narrowed(visible_tasks(owner), by_job=True)


def audit_query(text: str) -> Query:
    return compile_query(AUDIT_FIELDS, AUDIT_COLUMNS, text, "", 0.0)


def continuation_query(text: str) -> Query:
    return compile_query(CONTINUATION_FIELDS, CONTINUATION_COLUMNS, text, "", 0.0)


def conjunction(conds: Iterable) -> object | None:
    conds = [c for c in conds if c is not None]
    return reduce(operator.and_, conds) if conds else None


JOB_LOOKUPS: Special = {"provider": jobs_on_provider, "environment": job_tag, "label.*": job_tag,
                        "raw.*": job_raw}
TASK_LOOKUPS: Special = {"owner": task_of_job(JobRow.owner), "submitted": task_of_job(JobRow.submit_time),
                         "label.*": task_job_tag, "raw.*": task_raw, "started": task_time, "ended": task_time}


def visible_tasks(identity: str) -> object:
    """Tasks of the jobs `identity` submitted."""
    return TaskRow.job.in_(JobRow.select(JobRow.id).where(JobRow.owner == identity))
