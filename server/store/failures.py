"""A database that refuses a write or a read, translated once: the real cause (never the
rollback that failed after it) and what an operator does about it."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from peewee import Database, DatabaseError, InterfaceError, PostgresqlDatabase

from ..errors import StoreFailure

T = TypeVar("T")

_FULL = ("database or disk is full", "no space left on device", "could not extend file", "disk full")
_READ_ONLY = ("readonly database", "read-only file system", "read-only transaction")
_UNREACHABLE = ("could not connect", "connection refused", "server closed the connection",
                "terminating connection", "connection already closed")


def root_cause(exc: BaseException) -> BaseException:
    """The error that started it: SQLite rolls back by itself on a full disk, and then the
    rollback peewee tries on the way out fails with "no transaction is active"."""
    while "no transaction is active" in str(exc) and exc.__context__ is not None:
        exc = exc.__context__
    return exc


def reading(db: Database, fn: Callable[..., T], *args) -> T:
    """Run a read of `db`; a database error becomes StoreFailure (UNAVAILABLE to the caller)
    with its cause and fix, never an UNKNOWN with a traceback. A read error does not stop the
    server: the next read may succeed (a PostgreSQL restart, say)."""
    try:
        return fn(*args)
    except (DatabaseError, InterfaceError) as exc:
        drop_connection(db)
        raise StoreFailure("the database could not be read: " + explain(exc, db, reading=True)) from exc


def explain(exc: BaseException, db: Database, reading: bool = False) -> str:
    """"cause: fix" for a failed write to `db` (or read, with `reading`)."""
    cause = " ".join(str(root_cause(exc)).split()) or type(exc).__name__
    lowered = cause.lower()
    where = where_it_lives(db)
    if reading:
        fix = f"check that the database ({where}) is up and readable, then try again"
    elif any(s in lowered for s in _FULL):
        fix = f"free space under {where} and restart jobplane-server; every acknowledged job is kept"
    elif any(s in lowered for s in _READ_ONLY):
        fix = f"make {where} writable for this user and restart jobplane-server; every acknowledged job is kept"
    elif any(s in lowered for s in _UNREACHABLE):
        fix = f"check that PostgreSQL ({where}) is up and reachable, then restart jobplane-server"
    else:
        fix = f"the server stops rather than diverge from the database ({where}); restart it once it accepts writes"
    return f"{cause}: {fix}"


def where_it_lives(db: Database) -> str:
    if isinstance(db, PostgresqlDatabase):
        params = db.connect_params
        host = params.get("host") or "localhost"
        return f"the PostgreSQL server at {host}:{params.get('port') or 5432}, database {db.database}"
    return os.path.dirname(os.path.abspath(db.database)) or "."


def drop_connection(db: Database) -> None:
    """After a PostgreSQL error, close this thread's connection so that the next call opens a
    new one: after a restart of PostgreSQL the old one is dead, though peewee thinks it open.
    (SQLite's connection is a file handle that stays good: it is kept.)"""
    if not isinstance(db, PostgresqlDatabase):
        return
    try:
        db.close()
    except Exception:  # closing a dead connection, or one whose rollback failed, may fail in turn
        db._state.reset()


class DatabaseThreads(ThreadPoolExecutor):
    """Threads that work on `db` (the writer, the readers): a call that fails with a database
    error closes its thread's connection, so that the thread's next call opens a new one.
    Without it, a connection that sat idle through a PostgreSQL restart stays dead though
    peewee thinks it open, and every call on that thread fails from then on: a follower whose
    writer thread had nothing to do while PostgreSQL restarted could never take the lead."""

    def __init__(self, db: Database, workers: int, name: str) -> None:
        super().__init__(workers, thread_name_prefix=name)
        self._db = db

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future:
        return super().submit(_dropping_on_failure, self._db, fn, *args, **kwargs)


def _dropping_on_failure(db: Database, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except (DatabaseError, InterfaceError):
        drop_connection(db)
        raise
