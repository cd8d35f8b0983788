"""Filter terms to peewee conditions, one function per listable resource."""

from __future__ import annotations

import operator
from functools import reduce

from ..domain.filters import Term
from ..domain.model import JobState, Status, TaskState
from .models import JobRow, TaskRow


def _match(field, term: Term):
    return field.startswith(term.value) if term.prefix else field == term.value


def _and(conds):
    return reduce(operator.and_, conds) if conds else None


def job_where(terms: list[Term]):
    conds = []
    for t in terms:
        if t.key == "state":
            conds.append(JobRow.state == int(JobState[t.value]))
        elif t.key == "status":
            conds.append(JobRow.status == int(Status[t.value]))
        elif t.key == "name":
            conds.append(_match(JobRow.name, t))
    return _and(conds)


def task_where(terms: list[Term]):
    conds = []
    for t in terms:
        if t.key == "state":
            conds.append(TaskRow.state == int(TaskState[t.value]))
        elif t.key == "status":
            conds.append(TaskRow.status == int(Status[t.value]))
        elif t.key == "name":
            conds.append(_match(TaskRow.name, t))
        elif t.key == "provider":
            conds.append(_match(TaskRow.provider, t))
    return _and(conds)
