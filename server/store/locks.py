"""The locks that keep a second server away from what one server owns, and the replica's id.

- DATA_DIR/server.lock: one server per data directory (its certificates, admin token, replica id).
- `<database>.lock` beside a SQLite file: one server per SQLite database, whatever its data
  directory. Several replicas share a PostgreSQL database; SQLite serves one.

Each is an exclusive flock(2) held for the life of the process: `release` drops it, and the
kernel drops it when the process dies however it dies (kill -9 too), so a stale lock file never
keeps a server from starting. The file holds the holder's pid, to name it to whoever is refused.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from jobplane.files import write_atomic

from ..errors import ConfigError

log = logging.getLogger(__name__)

DATA_DIR_LOCK = "server.lock"
REPLICA_ID_FILE = "replica-id"


class FileLock:
    """An exclusive flock on one file, held until `release` (or the process ends)."""

    def __init__(self, path: Path, file: IO[str]) -> None:
        self.path = path
        self._file: IO[str] | None = file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the only descriptor drops the flock
            self._file = None


class ServerClaims:
    """What a running server holds: its data directory and, on SQLite, its database file; and
    the replica id kept in that data directory."""

    def __init__(self, locks: list[FileLock], replica_id: str) -> None:
        self.locks = locks
        self.replica_id = replica_id

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()


def claim_server(data_dir: Path, database_url: str) -> ServerClaims:
    """Claim the data directory and, for SQLite, the database file, and read (or make) the
    replica id; ConfigError naming the server that holds either, and what to do."""
    held = [claim_data_dir(data_dir)]
    try:
        database = sqlite_path(database_url)
        if database is not None:
            held.append(claim_sqlite(database))
        return ServerClaims(held, replica_id(data_dir))
    except BaseException:
        for lock in held:
            lock.release()
        raise


def claim_data_dir(path: Path) -> FileLock:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lock = _try_lock(path / DATA_DIR_LOCK)
    if isinstance(lock, FileLock):
        return lock
    raise ConfigError(f"data directory {path} is used by another jobplane-server ({lock}); stop it, or give this "
                      "server a data directory of its own (--data-dir)")


def claim_sqlite(database: Path) -> FileLock:
    database = Path(database)
    database.parent.mkdir(parents=True, exist_ok=True)
    lock = _try_lock(database.with_name(database.name + ".lock"))
    if isinstance(lock, FileLock):
        return lock
    raise ConfigError(f"database {database} is used by another jobplane-server ({lock}); SQLite serves one server: "
                      "stop it, or use PostgreSQL (--db postgresql://...) to run replicas")


def sqlite_path(database_url: str) -> Path | None:
    """The file of a sqlite:/// URL (None for PostgreSQL and for an in-memory database)."""
    if urlparse(database_url).scheme != "sqlite":
        return None
    path = database_url[len("sqlite:///"):] if database_url.startswith("sqlite:///") else urlparse(database_url).path
    return None if path in ("", ":memory:") else Path(path).resolve()


def replica_id(data_dir: Path) -> str:
    """This replica's id: a uuid kept in DATA_DIR/replica-id, made on the first start. Call it
    with the data directory claimed (claim_data_dir), so no other server writes it meanwhile."""
    path = Path(data_dir) / REPLICA_ID_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = str(uuid.uuid4())
        write_atomic(path, text + "\n")
        log.info("this replica's id is %s (in %s)", text, path)
        return text
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ConfigError(f"{path} holds {text[:60]!r}, not a replica id (a uuid); remove the file and this "
                          "server makes a new id at its start") from None


def _try_lock(path: Path) -> FileLock | str:
    """The lock on `path`, or, if another process holds it, who that is ("pid N")."""
    file = open(path, "a+")  # noqa: SIM115 - held open for the life of the lock
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = file.read().strip()
        file.close()
        return f"pid {holder}" if holder.isdigit() else "pid unknown"
    except BaseException:
        file.close()
        raise
    file.seek(0)
    file.truncate()
    file.write(f"{os.getpid()}\n")
    file.flush()
    return FileLock(path, file)
