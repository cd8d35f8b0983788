"""`submit --watch` and `watch JOB` as a person sees them: in a real pseudo-terminal, one live
line of counts with a progress bar and only the notable events above it; piped, every event
as a line. Real `jobplane` processes against a real server and agent."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from typing import Callable

import pytest

from support import jobplane

TASKS = 12
# Task i=3 fails once then succeeds on its second attempt (a retry); i=7 fails for good, after
# 2.5 s, so the line is drawn (the clock ticks each second) while most tasks are done: an ETA.
JOB = f"""name = "progress"
wait_for_providers = true
[[tasks]]
name = "t"
command = ["sh", "-c", "sleep 0.1; [ {{i}} = 7 ] && sleep 2.5 && exit 7; [ {{i}} = 3 ] && [ ! -e {{marker}}-3 ] && touch {{marker}}-3 && exit 3; exit 0"]
matrix = {{ i = {list(range(TASKS))} }}
max_attempts = 2
retry_backoff = 0.1
"""
CLEAR = "\r\x1b[2K"


def in_pty(argv: list[str], env: dict[str, str], timeout: float = 120,
           once: tuple[str, Callable[[], object]] | None = None) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal (160 columns) as its stdin, stdout and stderr; its exit
    code and everything it wrote. `once=(pattern, action)` calls `action` once, as soon as what
    it wrote matches `pattern`."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                               env={**os.environ, "TERM": "xterm", **env})
    os.close(slave)
    written, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every end of the terminal is closed, the process is gone
                    break
                if not data:
                    break
                written.append(data)
                if once and re.search(once[0], b"".join(written).decode(errors="replace")):
                    once[1]()
                    once = None
        else:
            raise AssertionError(f"{argv} did not end within {timeout}s: {b''.join(written)[-2000:]!r}")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return process.wait(10), b"".join(written).decode(errors="replace").replace("\r\n", "\n")


@pytest.fixture
def job_toml(tmp_path):
    path = tmp_path / "progress.toml"
    path.write_text(JOB.replace("{marker}", str(tmp_path / "failed-once")))
    return path


@pytest.fixture
def job_file(sqlite_cluster, job_toml):
    sqlite_cluster.add_agent("a", slots=4)
    return job_toml


def cli(cluster) -> list[str]:
    return [sys.executable, "-m", "jobplane.client.cli", "--server", cluster.server.address]


def test_on_a_terminal_submit_watch_shows_a_live_line_and_only_notable_events(sqlite_cluster, job_toml):
    waiting = rf"░+ 0/{TASKS}  WAITING {TASKS}  \S+ elapsed\r"
    # The agent joins once the line before any task ran is drawn: it would otherwise start
    # tasks before the CLI draws its first line.
    code, screen = in_pty([*cli(sqlite_cluster), "submit", str(job_toml), "--watch"], sqlite_cluster.server.env(),
                          once=(waiting, lambda: sqlite_cluster.add_agent("a", slots=4)))
    assert code == 1, screen  # a task failed for good
    redraws = [part.split("\n")[0] for part in screen.split(CLEAR)[1:]]
    final = redraws[-1]
    assert re.match(rf"█+ {TASKS}/{TASKS}  SUCCESS {TASKS - 1}  FAILURE 1  \S+ elapsed$", final), final
    assert re.search(waiting, screen), "the line before any task ran"
    assert any(", ETA " in line for line in redraws), "an ETA while it runs"
    printed = [line for line in screen.replace(CLEAR, "\n").split("\n") if line.startswith("#")]
    assert any("task t[i=7]" in line and "FAILURE" in line for line in printed), printed
    assert any("task t[i=3]" in line and "RUNNING" in line and "attempt 2" in line for line in printed), "the retry"
    assert not any("SUCCESS" in line and "task" in line for line in printed), "routine events stay off screen"
    assert "\x1b[?25h" in screen, "the cursor is shown again"
    assert "job " in screen and "FAILED after" in screen  # the task table and outcome, as before


def test_on_a_terminal_watch_job_of_a_finished_job_shows_its_final_line(sqlite_cluster, job_file):
    r = jobplane("submit", str(job_file), "--watch", "--server", sqlite_cluster.server.address,
                 env=sqlite_cluster.server.env())
    job_id = re.search(r"submitted job (\d+)", r.stdout).group(1)
    end = list(sqlite_cluster.client.watch(job_id, timeout=30))[-1].id
    for after in ([], ["--from", str(end - 1)]):  # from its first event; from its last (the tasks as listed)
        code, screen = in_pty([*cli(sqlite_cluster), "watch", job_id, *after], sqlite_cluster.server.env())
        assert code == 0, screen
        final = screen.split(CLEAR)[-1].split("\n")[0]
        assert re.match(rf"█+ {TASKS}/{TASKS}  SUCCESS {TASKS - 1}  FAILURE 1  \S+ elapsed$", final), (after, final)


def test_piped_or_as_json_every_event_is_a_line(sqlite_cluster, job_file):
    r = jobplane("submit", str(job_file), "--watch", "--server", sqlite_cluster.server.address,
                 env=sqlite_cluster.server.env())
    assert r.returncode == 1 and "\x1b" not in r.stdout
    events = [line for line in r.stdout.splitlines() if line.startswith("#")]
    assert len([line for line in events if "SUCCESS" in line and "task" in line]) == TASKS - 1, "each event a line"
    job_id = re.search(r"submitted job (\d+)", r.stdout).group(1)
    code, screen = in_pty([*cli(sqlite_cluster), "-o", "json", "watch", job_id], sqlite_cluster.server.env())
    assert code == 0 and CLEAR not in screen and screen.count('"kind":"TASK"') >= TASKS, screen
