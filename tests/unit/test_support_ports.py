"""The test suite's own port picking: parallel workers never get the same port or its neighbour
(a server's default agent port), so no test's server fails to listen because another's took it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
