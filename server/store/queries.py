"""Filter terms to peewee conditions: one table of columns per listable resource."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from functools import reduce

from ..domain import query
from ..domain.filters import Term
from ..errors import InvalidArgument
from .models import AuditRow, JobRow, TaskRow

# filter key -> (column, the enum its values name, or None for text with `*` prefixes)
AUDIT_COLUMNS = {"identity": (AuditRow.identity, None), "method": (AuditRow.method, None),
                 "code": (AuditRow.code, None), "target": (AuditRow.target, None)}

AUDIT_FILTER_KEYS = {key: enum for key, (_, enum) in AUDIT_COLUMNS.items()}


def where(terms: list[Term], columns: dict):
    """The conjunction of `terms` over `columns`, or None when there are none."""
    conds = []
    for t in terms:
        column, enum = columns[t.key]
        if enum is not None:
            conds.append(column == int(enum[t.value]))
        else:
            conds.append(column.startswith(t.value) if t.prefix else column == t.value)
    return reduce(operator.and_, conds) if conds else None


# ----- the filter grammar of jobs and tasks (domain/query.py) ------------------------

# filter/sort key -> column, for the keys the database answers (listing.py has the rest)
JOB_COLUMNS = {"status": JobRow.status, "state": JobRow.state, "name": JobRow.name, "owner": JobRow.owner,
               "priority": JobRow.priority, "id": JobRow.id, "submitted": JobRow.submit_time,
               "started": JobRow.start_time, "ended": JobRow.end_time}
TASK_COLUMNS = {"status": TaskRow.status, "state": TaskRow.state, "name": TaskRow.name, "group": TaskRow.group,
                "job": TaskRow.job, "provider": TaskRow.provider, "environment": TaskRow.environment,
                "attempt": TaskRow.attempt, "exit_code": TaskRow.exit_code, "id": TaskRow.id}


def condition(term: query.Term, column) -> object | None:
    """The term as a peewee condition, or None when it must be checked on messages."""
    values = term.values
    if term.op in ("=", "!="):
        if any(isinstance(v, str) and ("*" in v or "?" in v) for v in values):
            prefix = values[0][:-1] if isinstance(values[0], str) else ""
            if len(values) == 1 and term.op == "=" and values[0].endswith("*") and not any(c in prefix for c in "*?"):
                return column.startswith(prefix)
            return None
        if term.op == "!=" and term.key in ("started", "ended", "exit_code", "provider"):
            return None  # NULL never equals: let the messages answer
        return column.in_(list(values)) if term.op == "=" else column.not_in(list(values))
    ops = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
    return ops[term.op](column, values[0])


def conjunction(conds: Iterable) -> object | None:
    conds = [c for c in conds if c is not None]
    return reduce(operator.and_, conds) if conds else None


def jobs_on_provider(term: query.Term) -> object:
    """Jobs with a task on (or last on) one of the named providers (or on none of them)."""
    inner = condition(query.Term("provider", "=", term.values, term.pos), TaskRow.provider)
    if inner is None or term.op not in ("=", "!="):
        raise InvalidArgument("filter", f"position {term.pos}: provider on jobs takes = or != with names "
                                        "(a trailing * for a prefix)")
    match = JobRow.id.in_(TaskRow.select(TaskRow.job).where(inner))
    return match if term.op == "=" else ~match


def tasks_of_owner(term: query.Term) -> object | None:
    inner = condition(term, JobRow.owner)
    return None if inner is None else TaskRow.job.in_(JobRow.select(JobRow.id).where(inner))


def visible_tasks(identity: str) -> object:
    """Tasks of the jobs `identity` submitted."""
    return TaskRow.job.in_(JobRow.select(JobRow.id).where(JobRow.owner == identity))
