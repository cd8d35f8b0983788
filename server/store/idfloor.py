"""Ids are never used twice. A restart numbers jobs, tasks, attempts, events and continuations on
from the highest id in each table; once rows are deleted (purged jobs, compacted events) the
highest left may be lower than one used before. So the highest id of each table is recorded
(id_floor) before rows are deleted from it, and a restart numbers on from whichever is higher."""

from __future__ import annotations

from collections.abc import Iterable

from peewee import Database, fn

from .models import AttemptRow, ContinuationRow, EventRow, IdFloorRow, JobRow, TaskRow

NUMBERED = {"job": JobRow, "task": TaskRow, "attempt": AttemptRow, "event": EventRow, "continuation": ContinuationRow}


def record(db: Database, names: Iterable[str] = tuple(NUMBERED)) -> None:
    """Inside a transaction, before rows of these tables are deleted: keep their highest id."""
    sql = ('INSERT INTO id_floor (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = '
           'CASE WHEN excluded.value > id_floor.value THEN excluded.value ELSE id_floor.value END')
    for name in names:
        highest = NUMBERED[name].select(fn.COALESCE(fn.MAX(NUMBERED[name].id), 0)).scalar()
        db.execute_sql(sql.replace("?", db.param), (name, highest))


def highest_ids(db: Database) -> dict[str, int]:
    """The highest id ever used of each numbered table: in it now, or recorded before a delete."""
    floors = {row.name: row.value for row in IdFloorRow.select()}
    return {name: max(model.select(fn.COALESCE(fn.MAX(model.id), 0)).scalar(), floors.get(name, 0))
            for name, model in NUMBERED.items()}


__all__ = ["NUMBERED", "highest_ids", "record"]
