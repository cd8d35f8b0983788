"""What refuses a second jobplane-server where only one may run: one server per data directory,
one per SQLite file (replicas need PostgreSQL). Real processes: the refused one exits 2 saying
who holds it and what to do, and a dead holder (kill -9) keeps no one out."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from support import ServerProc


def start_refused(data_dir: Path, db_url: str) -> subprocess.CompletedProcess:
    """A jobplane-server that is expected not to start: its exit code and output."""
    return subprocess.run([sys.executable, "-m", "jobplane.server", "--listen", "127.0.0.1:0", "--data-dir",
                           str(data_dir), "--db", db_url], capture_output=True, text=True, timeout=60)


def test_a_second_server_on_one_sqlite_file_is_refused_until_the_first_dies(tmp_path):
    database = tmp_path / "shared.db"
    url = f"sqlite:///{database}"
    (tmp_path / "a").mkdir()
    first = ServerProc(tmp_path / "a", url)
    try:
        refused = start_refused(tmp_path / "b" / "data", url)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert (f"jobplane-server: database {database.resolve()} is used by another jobplane-server "
                f"(pid {first.pid}); SQLite serves one server: stop it, or use PostgreSQL "
                "(--db postgresql://...) to run replicas") in refused.stderr
        assert first.alive() and first.client(timeout=10).whoami().identity == "admin"
    finally:
        first.kill()  # kill -9: the kernel lets go of its lock
    (tmp_path / "b" / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "b" / "data" / "admin.token").write_text(first.token)  # the database's admin, made by the first
    second = ServerProc(tmp_path / "b", url)
    try:
        assert second.client(timeout=10).whoami().identity == "admin"
    finally:
        second.stop()


def test_a_second_server_on_one_data_directory_is_refused(tmp_path):
    first = ServerProc(tmp_path, f"sqlite:///{tmp_path / 'one.db'}")
    try:
        refused = start_refused(first.data_dir, f"sqlite:///{tmp_path / 'other.db'}")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert (f"jobplane-server: data directory {first.data_dir} is used by another jobplane-server "
                f"(pid {first.pid}); stop it, or give this server a data directory of its own (--data-dir)"
                ) in refused.stderr
        assert not (tmp_path / "other.db").exists(), "the refused server touched no database"
    finally:
        first.stop()
    again = ServerProc(tmp_path, f"sqlite:///{tmp_path / 'one.db'}")  # stopped: the lock is free
    again.stop()


def test_each_data_directory_keeps_its_own_replica_id_across_restarts(tmp_path):
    ids = []
    for name in ("a", "a", "b"):
        (tmp_path / name).mkdir(exist_ok=True)
        server = ServerProc(tmp_path / name, f"sqlite:///{tmp_path / name / 'jobplane.db'}")
        server.stop()
        ids.append((server.data_dir / "replica-id").read_text().strip())
    assert ids[0] == ids[1] != ids[2]
    assert all(str(uuid.UUID(i)) == i for i in ids)


def test_a_server_whose_address_is_taken_says_so_and_what_to_do(tmp_path):
    # No traceback from gRPC's bind: the operator's line names the address and the way out.
    first = ServerProc(tmp_path, f"sqlite:///{tmp_path / 'one.db'}")
    try:
        taken = first.address
        refused = subprocess.run([sys.executable, "-m", "jobplane.server", "--listen", taken, "--data-dir",
                                  str(tmp_path / "other"), "--db", f"sqlite:///{tmp_path / 'other.db'}"],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"jobplane-server: cannot listen on {taken}: the address is in use" in refused.stderr
        assert "--listen" in refused.stderr and "Traceback" not in refused.stderr
        assert first.alive()
    finally:
        first.stop()
