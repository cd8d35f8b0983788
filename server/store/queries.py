"""Filter terms to peewee conditions: one table of columns per listable resource."""

from __future__ import annotations

import operator
from functools import reduce

from ..domain.filters import Term
from ..domain.model import JobState, Status, TaskState
from .models import AuditRow, JobRow, TaskRow

# filter key -> (column, the enum its values name, or None for text with `*` prefixes)
JOB_COLUMNS = {"state": (JobRow.state, JobState), "status": (JobRow.status, Status), "name": (JobRow.name, None)}
TASK_COLUMNS = {"state": (TaskRow.state, TaskState), "status": (TaskRow.status, Status),
                "name": (TaskRow.name, None), "provider": (TaskRow.provider, None)}

AUDIT_COLUMNS = {"identity": (AuditRow.identity, None), "method": (AuditRow.method, None),
                 "code": (AuditRow.code, None), "target": (AuditRow.target, None)}

JOB_FILTER_KEYS = {key: enum for key, (_, enum) in JOB_COLUMNS.items()}
AUDIT_FILTER_KEYS = {key: enum for key, (_, enum) in AUDIT_COLUMNS.items()}
TASK_FILTER_KEYS = {key: enum for key, (_, enum) in TASK_COLUMNS.items()}


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
