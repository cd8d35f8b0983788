"""Column defaults held by PostgreSQL itself, not only by the models.

peewee fills a field's default in at insert time, so the tables it creates, and the columns
releases before this one added, carry no default in the database. A replica of the release
before, still leading while a replica of a newer one migrated the shared database (a rolling
upgrade), inserts rows without the columns it does not know; with no default in the database,
every such insert broke a NOT NULL constraint and the leader's whole batch rolled back. Here
each NOT NULL column whose model has a constant default gets it in the database too, so an
older writer's rows take it (schema.py adds new columns with theirs)."""

from __future__ import annotations

import logging

from peewee import Database, Field, Model

log = logging.getLogger(__name__)

_WITHOUT = ("SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_default IS NULL AND is_nullable = 'NO'")


def wanted(field: Field) -> bool:
    """Whether `field` should have its default in the database: NOT NULL, with a constant default."""
    return not field.null and field.default is not None and not callable(field.default) and not field.primary_key


def lacking(db: Database, models: list[type[Model]]) -> dict[type[Model], list[Field]]:
    """Each of `models` whose table lacks the database default of a NOT NULL column that has a
    constant default in the model, with those fields (PostgreSQL only)."""
    without = {(table, column) for table, column in db.execute_sql(_WITHOUT).fetchall()}
    out = {}
    for model in models:
        table = model._meta.table_name
        fields = [f for f in model._meta.sorted_fields if wanted(f) and (table, f.column_name) in without]
        if fields:
            out[model] = fields
    return out


def give_defaults(db: Database, models: list[type[Model]]) -> None:
    """Set, in one ALTER TABLE per table, the database default of each NOT NULL column of
    `models` whose model default the database lacks. PostgreSQL only; call it under the schema
    lock, after the tables and columns exist. Does nothing once they all have theirs.

    ALTER TABLE locks its table (ACCESS EXCLUSIVE) until the transaction ends: give several
    tables theirs in one transaction only where it holds their locks already (tables it made),
    else one table per transaction (schema.py says why)."""
    for model, fields in lacking(db, models).items():
        table = model._meta.table_name
        log.info("giving columns %s of table %s their defaults", [f.column_name for f in fields], table)
        sets = ", ".join(f'ALTER COLUMN "{f.column_name}" SET DEFAULT %s' for f in fields)
        db.execute_sql(f'ALTER TABLE "{table}" {sets}', [f.db_value(f.default) for f in fields])
