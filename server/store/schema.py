"""The schema: the tables, columns, indexes and column defaults a database lacks, made as a
server may meet it: a database of an older release, and on PostgreSQL other replicas starting
at once and a leader (perhaps of the release before) writing meanwhile.

On PostgreSQL each table's changes that a running leader could meet (new columns, indexes,
defaults) are made in a transaction of their own: ALTER TABLE locks its table (ACCESS EXCLUSIVE) until
the transaction ends, and one that held a table the leader's batch writes while it waited for
another that batch had written deadlocked with it (a batch writes, say, a notification and then
fences on jobplane_leader), and PostgreSQL aborted one of the two."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from peewee import SQL, Database, Entity, Field, Model, PostgresqlDatabase
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

from . import indexes
from .column_defaults import give_defaults, lacking, wanted
from .models import ALL_MODELS, JobRow, JobTagRow

log = logging.getLogger(__name__)

SCHEMA_LOCK = 0x6A6F62706C616E65  # "jobplane": the advisory lock taken while the schema is made


def create(db: Database) -> None:
    """Make what the database lacks of this release's schema, and only that."""
    with db.connection_context():
        postgres = isinstance(db, PostgresqlDatabase)
        if not postgres:
            _add_columns(db, ALL_MODELS)
            _tables(db)
            for model in ALL_MODELS:
                indexes.make(db, *indexes.missing(db, model))
            return
        for model in ALL_MODELS:
            if _missing_columns(db, model):
                with _locked(db):
                    _add_columns(db, [model])  # (unless another replica did meanwhile)
        with _locked(db):  # replicas starting together: one creates, the others find it made
            made = _tables(db)
            give_defaults(db, made)  # tables this transaction made: it holds them locked already
        for model in ALL_MODELS:  # a busy table's CREATE INDEX waits for the leader's writes
            if any(indexes.missing(db, model)):
                with _locked(db):
                    indexes.make(db, *indexes.missing(db, model))
        for model in lacking(db, ALL_MODELS):  # columns added by releases before the defaults
            with _locked(db):
                give_defaults(db, [model])


@contextlib.contextmanager
def _locked(db: Database) -> Iterator[None]:
    """A transaction under the schema's advisory lock (PostgreSQL)."""
    with db.atomic():
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        yield


def _tables(db: Database) -> list[type[Model]]:
    """The tables that are missing, made with their indexes (and what the others' indexes
    need first); returns their models."""
    missing = [m for m in ALL_MODELS if not db.table_exists(m._meta.table_name)]
    tags_were_missing = JobTagRow in missing and JobRow not in missing
    db.create_tables(missing, safe=True)
    indexes.number_function(db)
    if tags_were_missing:  # job_tag made just now on a database that has jobs: their tags
        indexes.backfill_tags(db)
    return missing


def _missing_columns(db: Database, model: type[Model]) -> list[Field]:
    """The fields of `model` its table lacks (none when there is no table: it is made whole)."""
    table = model._meta.table_name
    if not db.table_exists(table):
        return []
    have = {c.name for c in db.get_columns(table)}
    return [f for f in model._meta.sorted_fields if f.column_name not in have]


def _add_columns(db: Database, models: list[type[Model]]) -> None:
    """A database made by an older jobplane gains the columns added since (each has a
    default). On PostgreSQL a NOT NULL column is added with its default in one statement,
    which since PostgreSQL 11 rewrites no row; peewee's way (add it nullable, fill every row,
    then forbid NULL) rewrote the table and left the column without a default in the
    database."""
    postgres = isinstance(db, PostgresqlDatabase)
    migrator = PostgresqlMigrator(db) if postgres else SqliteMigrator(db)
    for model in models:
        missing = _missing_columns(db, model)
        if not missing:
            continue
        table = model._meta.table_name
        log.info("adding columns %s to table %s", [f.column_name for f in missing], table)
        with_default = [f for f in missing if postgres and wanted(f)]
        migrate(*(migrator.add_column(table, f.column_name, f) for f in missing if not (postgres and wanted(f))))
        for field in with_default:
            _add_with_default(db, table, field)  # its index, if any: the table's index pass (create)


def _add_with_default(db: Database, table: str, field: Field) -> None:
    """ALTER TABLE ... ADD COLUMN name TYPE NOT NULL DEFAULT x, in one statement. Written here,
    not by peewee's migrator: its add_column takes `allow_not_null` (the column as is) only in
    later releases (4.5 has it), and this package asks for peewee 3.17 or later (3.17.9's
    refuses the call)."""
    copy = field.clone()
    copy.constraints = [*(field.constraints or ()), SQL("DEFAULT %s", [field.db_value(field.default)])]
    ctx = db.get_sql_context()
    ctx.literal("ALTER TABLE ").sql(Entity(table)).literal(" ADD COLUMN ").sql(copy.ddl(ctx))
    db.execute_sql(*ctx.query())
