"""A PostgreSQL cluster of a test's own (initdb + pg_ctl in a throwaway directory), for faults
that touch the database server itself: a restart, a partition between a replica and it.
Run as the `postgres` user when the tests run as root, as .ci/run does."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

from support import free_port


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found and shutil.which("initdb"):
        found = [shutil.which("initdb")]
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A PostgreSQL server of our own on a free loopback port, fsync off (a crash of the
    machine is not a fault we test), with `restart()` and `stop()`.

    Skips the test when PostgreSQL is not installed, fails it under CI=true."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        if bindir is None:
            if os.environ.get("CI") == "true":
                pytest.fail("PostgreSQL's initdb/pg_ctl are not installed: CI must run the replica tests")
            pytest.skip("the replica tests need PostgreSQL installed (initdb, pg_ctl)")
        self.bin = bindir
        # Not under pytest's tmp_path: the postgres user cannot enter root's 0700 directories.
        self.dir = Path(tempfile.mkdtemp(prefix="jobplane-pg."))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        argv = [str(self.bin / tool), *args]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                                 f"\n{self.log()}")

    def _options(self) -> str:
        return (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o", self._options(), "start")

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is closed, open transactions roll back."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-m", "fast",
                  "-o", self._options(), "restart")

    def stop(self, *, keep: bool = False) -> None:
        """Stop the server and remove its files, or with `keep` leave them for a post-mortem
        (`pg_ctl -D DIR/data start` as the postgres user brings the database back)."""
        if self.data.exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast" if keep else "immediate", "-w", "stop")
            except AssertionError:
                pass
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def create_database(self) -> str:
        """A fresh database on this server; its URL."""
        import psycopg2

        name = f"jobplane_test_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return with_database(self.url, name)


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name`."""
    return urlunparse(urlparse(url)._replace(path=f"/{name}"))


def with_port(url: str, host_port: str) -> str:
    """`url` pointing at HOST:PORT instead (e.g. a proxy in front of the server)."""
    parts = urlparse(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunparse(parts._replace(netloc=f"{user}{host_port}"))
