"""The keeper's guard: its parent, so that no attempt outlives the keeper, even a kill -9 of it.

The guard is the subreaper of everything below it: the keeper, the commands the keeper spawns,
and what those leave when their parent dies (a double fork), which the kernel hands to the
guard; it reaps those. The keeper tells it, through a pipe, which attempts it started (the
command's pid and directory) and which have ended. When the keeper is gone, what was below it
is the guard's: it kills all of it (the keeper's cgroups first), writes the exit file of each
attempt that had none (the command's real status, reaped by the guard), marks their output
complete, and exits. It does nothing per attempt but read a line or two of the pipe.

A killed guard leaves the keeper running (it still contains its attempts as long as it runs).
Stdlib only.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import signal
import time
from pathlib import Path
from typing import NoReturn

from . import cgroups, logstore, procs
from .keeper_attempts import note_exit, read_state
from .keeper_wire import GUARD_NAME

log = logging.getLogger("jobplane.agent.keeper")

_KILL_SECONDS = 10.0


class Notes:
    """The keeper's end of the pipe: lines `S PID DIR` (started) and `E PID` (ended), written
    without ever blocking the keeper (what the pipe does not take waits for the next flush)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._out = bytearray()

    def started(self, pid: int, directory: Path) -> None:
        """(Written at the end of the keeper's round, with the round's other notes.)"""
        self._out += f"S {pid} {directory}\n".encode()

    def ended(self, pid: int) -> None:
        self._out += f"E {pid}\n".encode()

    def flush(self) -> None:
        if self._out and self.fd >= 0:
            try:
                del self._out[:os.write(self.fd, self._out)]
            except BlockingIOError:
                pass
            except OSError:  # the guard is gone
                self._out.clear()
                self.fd = -1


def run(notes: int, keeper: int) -> NoReturn:
    """Guard the keeper (this process's child) until it and everything below it are gone."""
    code = 1
    try:
        _Guard(notes, keeper).run()
        code = 0
    except BaseException:  # noqa: B036 - whatever happens, this process must end here
        log.exception("the keeper's guard failed")
    finally:
        os._exit(code)


class _Guard:
    def __init__(self, notes: int, keeper: int) -> None:
        procs.set_name(GUARD_NAME)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.notes = notes
        self.keeper = keeper
        self.attempts: dict[int, str] = {}  # the keeper's, by their command's pid
        self.statuses: dict[int, int] = {}  # of the attempts' commands the guard reaped
        self._partial = b""

    def run(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        selector = selectors.DefaultSelector()
        selector.register(self.notes, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        while not self._reap():
            for key, _ in selector.select():
                if key.fd != self.notes:
                    _drain(wake_r)
                elif self._read_notes() == 0:
                    selector.unregister(self.notes)  # the keeper closed it: it is ending
        self._clean_up()

    def _read_notes(self) -> int:
        """Take in what the keeper wrote; the bytes read (0 at the pipe's end, -1 if none yet)."""
        try:
            data = os.read(self.notes, 1 << 16)
        except BlockingIOError:
            return -1
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            kind, _, rest = line.decode(errors="replace").partition(" ")
            if kind == "S":
                pid, _, directory = rest.partition(" ")
                self.attempts[int(pid)] = directory
            elif kind == "E":
                self.attempts.pop(int(rest), None)
        return len(data)

    def _reap(self) -> bool:
        """Reap what ended (orphans, commands once the keeper is gone); whether the keeper is."""
        gone = False
        for pid, status in procs.reap_children().items():
            if pid == self.keeper:
                gone = True
            else:
                self.statuses[pid] = procs.exit_status(status)
        return gone

    def _clean_up(self) -> None:
        """The keeper is gone: kill what it left, and close its attempts' files."""
        os.set_blocking(self.notes, False)
        while self._read_notes() > 0:  # the keeper's last notes
            pass
        mount = cgroups.cgroup2_mount()
        kept = cgroups.keeper_dir(mount / "jobplane", self.keeper) if mount else None
        if kept is not None:
            cgroups.kill(kept)
        if self.attempts:
            log.error("the keeper (pid %d) is gone: killing its %d attempts", self.keeper,
                      len(self.attempts))
        deadline = time.monotonic() + _KILL_SECONDS
        procs.kill_until_gone(lambda: procs.descendants([os.getpid()], procs.parents(living=True)),
                              self._reap, deadline)
        self._reap()
        for pid, directory in self.attempts.items():
            _close(Path(directory), self.statuses.get(pid, -signal.SIGKILL))
        if kept is not None:
            cgroups.sweep(kept.parent)


def _close(directory: Path, status: int) -> None:
    """An attempt's exit file and complete output, unless the keeper wrote them."""
    try:
        logstore.finish(logstore.log_dir(directory))
        if read_state(directory)[1] is None:
            note_exit(directory, status)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.error("cannot write the exit status of %s: %s", directory, exc)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
