"""Open the database named by a URL: sqlite:///path (the embedded default) or postgresql://..."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from peewee import Database, PostgresqlDatabase, SqliteDatabase

from ..errors import ConfigError

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    # FULL: a commit is on disk before we acknowledge it, even on power loss.
    "synchronous": "full",
    "busy_timeout": 10_000,
    "foreign_keys": 1,
    "cache_size": -64 * 1024,
}


def open_database(url: str, lease: float = 2.0) -> Database:
    """A peewee Database for `url`; raises ConfigError naming the fix for a bad URL. `lease`
    (replicas on PostgreSQL) bounds how long a lost connection can go unnoticed."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return _sqlite(url[len("sqlite:///"):] if url.startswith("sqlite:///") else parsed.path)
    if parsed.scheme in ("postgres", "postgresql"):
        return _postgres(parsed, lease)
    raise ConfigError(f"--db: unsupported URL {url!r}; use sqlite:///PATH or postgresql://USER@HOST/DB")


def _sqlite(path: str) -> SqliteDatabase:
    if not path:
        raise ConfigError("--db: sqlite URL has no path; use sqlite:///PATH")
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False)


def _postgres(parsed, lease: float) -> PostgresqlDatabase:
    try:
        import psycopg2  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--db: PostgreSQL needs psycopg2; pip install 'jobplane[postgres]'") from exc
    name = parsed.path.lstrip("/")
    if not name:
        raise ConfigError("--db: postgresql URL needs a database name: postgresql://USER@HOST/DB")
    return PostgresqlDatabase(name, user=parsed.username, password=parsed.password, host=parsed.hostname,
                              port=parsed.port, **_liveness(lease))


def _liveness(lease: float) -> dict:
    """Connection settings so that a cut link to PostgreSQL fails within about a lease, rather
    than when TCP gives up minutes later: a deposed leader must find out, and a transaction
    it left open must not hold the lease's row (and so block the takeover) for long."""
    ms = max(1000, int(lease * 1000))
    idle = max(3000, 2 * ms)  # jobplane never leaves a transaction idle: this only ends abandoned ones
    return {"connect_timeout": max(2, int(lease + 0.999)), "keepalives": 1, "keepalives_idle": 1,
            "keepalives_interval": 1, "keepalives_count": 2, "tcp_user_timeout": ms,
            "options": f"-c idle_in_transaction_session_timeout={idle}"}
