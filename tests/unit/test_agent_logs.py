"""The agent's log store: a command's whole output on disk, bounded and rotated, and swept."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from jobplane.agent import logstore
from jobplane.agent.commands import CommandSpec, run_command

# Deterministic bytes of every value, newlines included: 1 MiB + a bit, on stdout; a little on stderr.
WRITE = ("import sys; data = bytes(range(256)) * 4100; sys.stdout.buffer.write(data); "
         "sys.stderr.buffer.write(b'err-' * 1000)")
EXPECTED = bytes(range(256)) * 4100


def whole(directory, stream: str) -> bytes:
    data = b""
    while chunk := logstore.read(directory, stream, len(data)):
        data += chunk
    return data


def test_a_finished_attempt_keeps_its_whole_output_byte_for_byte(tmp_path):
    spec = CommandSpec([sys.executable, "-c", WRITE], attempt_dir=str(tmp_path / "t.1"))
    result = asyncio.run(run_command(spec))
    logs = logstore.log_dir(tmp_path / "t.1")
    assert whole(logs, "out") == EXPECTED
    assert whole(logs, "err") == b"err-" * 1000
    assert logstore.is_done(logs)
    assert result.stdout_tail == EXPECTED[-4096:].decode("utf-8", errors="replace")


def test_a_quick_command_that_writes_more_than_its_pipes_hold_keeps_all_of_it(tmp_path):
    """The keeper watches a command's pipes only once it has run a little (most end sooner, and
    their pipes are read as they end): one that fills them at once waits, and loses nothing."""
    script = "head -c 300000 /dev/zero; head -c 200000 /dev/zero | tr '\\0' e >&2"
    spec = CommandSpec(["/bin/sh", "-c", script], attempt_dir=str(tmp_path / "t.1"))
    result = asyncio.run(run_command(spec))
    assert result.exit_code == 0, result
    logs = logstore.log_dir(tmp_path / "t.1")
    assert whole(logs, "out") == bytes(300000)
    assert whole(logs, "err") == b"e" * 200000


def test_output_past_the_cap_is_rotated_away_and_the_newest_kept(tmp_path):
    cap = logstore.MIN_MAX_BYTES
    spec = CommandSpec([sys.executable, "-c", WRITE], attempt_dir=str(tmp_path / "t.1"), log_max_bytes=cap)
    result = asyncio.run(run_command(spec))
    logs = logstore.log_dir(tmp_path / "t.1")
    kept = logstore.span(logs, "out")
    assert kept.end == len(EXPECTED) and 0 < kept.end - kept.start <= cap
    # The tails come from the spans the keeper reports as the attempt ends, not from the disk.
    assert logstore.span_of(kept.end, kept.size) == kept
    assert result.stdout_tail == EXPECTED[-4096:].decode("utf-8", errors="replace")
    assert result.stderr_tail == ("err-" * 1000)[-4096:]
    on_disk = sum(os.path.getsize(logs / name) for name in os.listdir(logs) if name.startswith("out."))
    assert on_disk <= cap
    with pytest.raises(logstore.Rotated, match="rotated away"):
        logstore.read(logs, "out", 0)
    data = b""
    while chunk := logstore.read(logs, "out", kept.start + len(data)):
        data += chunk
    assert data == EXPECTED[kept.start:]


def test_sweep_removes_logs_older_than_the_retention_but_held_ones(tmp_path):
    for name in ("old.1", "held.1", "new.1"):
        logstore.begin(tmp_path / "logs" / name, 0)
    past = time.time() - 3600
    for name in ("old.1", "held.1"):
        for path in [tmp_path / "logs" / name, *(tmp_path / "logs" / name).iterdir()]:
            os.utime(path, (past, past))
    assert logstore.sweep(tmp_path, 600, keep={"held.1"}) == ["old.1"]
    assert sorted(os.listdir(tmp_path / "logs")) == ["held.1", "new.1"]


def test_a_python_task_keeps_its_whole_output_too(tmp_path):
    from jobplane.agent.pyworkers import PyCall, WorkerPool

    (tmp_path / "chatty.py").write_text(
        "import sys\n"
        "def run():\n"
        "    for i in range(20000):\n"
        "        print(f'line {i}')\n"
        "    print('oops', file=sys.stderr)\n")
    logs = tmp_path / "logs" / "7.1"

    async def call():
        pool = WorkerPool(1, work_dir=str(tmp_path))
        pool.start()
        try:
            return await pool.run(PyCall("chatty:run", log_dir=str(logs)))
        finally:
            await pool.close()

    result = asyncio.run(call())
    expected = "".join(f"line {i}\n" for i in range(20000)).encode()
    assert whole(logs, "out") == expected
    assert whole(logs, "err") == b"oops\n"
    assert logstore.is_done(logs)
    assert result.stdout_tail == expected[-4096:].decode()


def test_a_commands_output_is_complete_once_its_exit_status_is_written(tmp_path):
    """The keeper marks a command's output complete by the exit status it writes last (no
    `done` file): is_done says no while the command runs, yes once it has ended."""
    go = tmp_path / "go"
    script = f"echo hi; while [ ! -e {go} ]; do sleep 0.01; done; echo bye"
    spec = CommandSpec(["/bin/sh", "-c", script], attempt_dir=str(tmp_path / "state" / "t.1"))
    logs = logstore.log_dir(tmp_path / "state" / "t.1")

    async def run():
        running = asyncio.ensure_future(run_command(spec))
        while not (logstore.span(logs, "out") or logstore.Span(0, 0, 0)).end:
            await asyncio.sleep(0.01)
        assert not logstore.is_done(logs)
        go.touch()
        return await running

    result = asyncio.run(run())
    assert result.stdout_tail == "hi\nbye\n"
    assert logstore.is_done(logs)
    assert whole(logs, "out") == b"hi\nbye\n"


def read_bytes() -> int:
    """What this process has read so far (rchar: every read, cached or not)."""
    return int(next(line for line in open("/proc/self/io") if line.startswith("rchar:")).split()[1])


def test_a_running_command_that_wrote_nothing_yet_is_not_looked_for_in_the_listing_of_silent_ones(tmp_path):
    """`logs -f` asks every 0.1 s whether an attempt's output is complete: for a command that runs
    and has written nothing, its state file says no, without reading the listing of the attempts
    that ended silent (EMPTY), which a busy agent makes tens of MB long."""
    asyncio.run(run_command(CommandSpec(["/bin/true"], attempt_dir=str(tmp_path / "state" / "t.0"))))
    (listing,) = (tmp_path / "state" / "logs" / logstore.EMPTY).iterdir()
    with open(listing, "a") as f:
        f.write("".join(f"t{n}.1 1765000000\n" for n in range(500_000)))  # ~10 MB
    go = tmp_path / "go"
    spec = CommandSpec(["/bin/sh", "-c", f"while [ ! -e {go} ]; do sleep 0.01; done"],
                       attempt_dir=str(tmp_path / "state" / "t.1"))
    logs = logstore.log_dir(tmp_path / "state" / "t.1")

    async def run():
        running = asyncio.ensure_future(run_command(spec))
        while not (tmp_path / "state" / "t.1" / "pid").exists():
            await asyncio.sleep(0.01)
        before = read_bytes()
        assert not any(logstore.is_done(logs) for _ in range(20))
        assert read_bytes() - before < 100_000
        go.touch()
        return await running

    assert asyncio.run(run()).exit_code == 0
    assert logstore.is_done(logs) and logstore.span(logs, "out") == logstore.Span(0, 0, logstore.segment_size(0))


def test_the_segment_size_is_written_only_when_it_is_not_the_default(tmp_path):
    logstore.begin(tmp_path / "default", 0)
    logstore.begin(tmp_path / "small", logstore.MIN_MAX_BYTES)
    assert not (tmp_path / "default" / logstore.SEGMENT_FILE).exists()
    assert logstore.span(tmp_path / "default", "out") == logstore.Span(0, 0, logstore.segment_size(0))
    assert logstore.span(tmp_path / "small", "out") == logstore.Span(0, 0, logstore.MIN_MAX_BYTES // logstore.SEGMENTS)
    assert logstore.span(tmp_path / "never-kept", "out") is None


def test_a_command_that_writes_nothing_gets_no_log_directory_yet_reads_as_empty_until_swept(tmp_path):
    # Making a directory costs the keeper more than the spawn: a silent command gets a line instead.
    for name in ("t.1", "t.2"):
        result = asyncio.run(run_command(CommandSpec(["/bin/true"], attempt_dir=str(tmp_path / name))))
        assert result.exit_code == 0 and result.stdout_tail == ""
    logs = logstore.log_dir(tmp_path / "t.1")
    assert not logs.exists() and not logstore.log_dir(tmp_path / "t.2").exists()
    assert logstore.span(logs, "out") == logstore.Span(0, 0, logstore.segment_size(0))
    assert logstore.read(logs, "err", 0) == b"" and logstore.is_done(logs)
    assert logstore.span(logstore.log_dir(tmp_path / "t.3"), "out") is None  # never ran here
    assert logstore.sweep(tmp_path, 3600, keep=set()) == []
    # Once it ended longer ago than the retention, it is not kept: as if its directory were swept.
    (listed,) = (tmp_path / "logs" / logstore.EMPTY).iterdir()
    listed.rename(listed.with_name(str(int(listed.name) - 2 * 3600 // logstore.EMPTY_SPAN)))
    assert logstore.sweep(tmp_path, 3600, keep={"t.2"}) == []  # held: kept
    assert sorted(logstore.sweep(tmp_path, 3600, keep=set())) == ["t.1", "t.2"]
    assert logstore.span(logs, "out") is None
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


def test_output_after_silence_makes_the_directory_with_its_segment_size(tmp_path):
    cap = logstore.MIN_MAX_BYTES
    script = "import sys, time; time.sleep(0.2); sys.stderr.write('late')"
    spec = CommandSpec([sys.executable, "-c", script], attempt_dir=str(tmp_path / "t.1"), log_max_bytes=cap)
    result = asyncio.run(run_command(spec))
    logs = logstore.log_dir(tmp_path / "t.1")
    assert result.stderr_tail == "late"
    assert logstore.span(logs, "err") == logstore.Span(0, 4, cap // logstore.SEGMENTS)
    assert sorted(os.listdir(logs)) == ["err.0", logstore.SEGMENT_FILE]
