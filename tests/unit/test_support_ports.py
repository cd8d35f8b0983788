"""The test suite's own port picking: parallel workers never get the same port or its neighbour
(a server's default agent port), so no test's server fails to listen because another's took it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import support

TAKE = """
import sys
sys.path.insert(0, {tests!r})
from support import free_port
print(" ".join(str(free_port()) for _ in range(300)))
"""


def test_two_processes_picking_ports_at_once_never_share_a_port_or_its_neighbour():
    code = TAKE.format(tests=str(Path(__file__).parents[1]))
    workers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    taken = [set(map(int, w.communicate(timeout=60)[0].split())) for w in workers]
    assert all(len(ports) == 300 for ports in taken)
    first, second = ({p for port in ports for p in (port, port + 1)} for ports in taken)
    assert not first & second


@pytest.mark.parametrize("ephemeral", ["1024 65535", "1024 40000", "10000 20000"])
def test_ports_are_found_whatever_the_kernels_ephemeral_range(tmp_path, monkeypatch, ephemeral):
    # Machines tuned for many connections start the ephemeral range low ("1024 65535"): the
    # suite must still find ports, outside that range when there are any.
    (tmp_path / "ip_local_port_range").write_text(ephemeral + "\n")
    monkeypatch.setattr(support, "EPHEMERAL_RANGE", tmp_path / "ip_local_port_range")
    low, high = map(int, ephemeral.split())

    ports = [support.free_port() for _ in range(5)]

    assert len(set(ports)) == 5
    if high < 65000:  # room above it: port and neighbour both outside the range
        assert all(not low <= p <= high and not low <= p + 1 <= high for p in ports), ports


FORGET = """
import sys
sys.path.insert(0, {tests!r})
import support
support._PORTS.mkdir()
(support._PORTS / "20000").write_text("1")  # held by init: alive, and not this user's
(support._PORTS / "20002").write_text(str({dead}))  # held by a process that has ended
support.release_ports_of_the_dead()
print(" ".join(sorted(mark.name for mark in support._PORTS.iterdir())))
"""


def test_the_ports_of_another_users_live_process_are_kept_and_the_run_starts():
    # The run's first process forgets the ports of ended processes. A pid of an ended worker may
    # since be another user's process (PostgreSQL's backends come and go): that one is alive,
    # and asking about it must not fail (EPERM), or no test run starts.
    python, as_another_user = sys.executable, None
    if os.geteuid() == 0:  # root may signal any process: be nobody, with a Python nobody may run
        python, as_another_user = shutil.which("python3", path="/usr/bin:/bin"), (lambda: os.setuid(65534))
        if python is None:
            pytest.skip("run as root without a /usr/bin/python3 for another user to run")
    ended = subprocess.Popen(["true"])
    ended.wait()
    shared = Path(tempfile.mkdtemp(prefix="jobplane-ports-test."))  # one another user may enter
    try:
        shared.chmod(0o777)
        code = FORGET.format(tests=str(Path(__file__).parents[1]), dead=ended.pid)
        run = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "TMPDIR": str(shared)}, preexec_fn=as_another_user)
    finally:
        shutil.rmtree(shared)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["20000"]
