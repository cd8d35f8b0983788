"""The keeper's guard: its parent, so that no attempt outlives the keeper, even a kill -9 of it.

The guard is the subreaper of everything below it: the keeper, the commands the keeper spawns,
and what those leave when their parent dies (a double fork), which the kernel hands to the
guard; it reaps those. When the keeper is gone, what was below it is the guard's: it kills all
of it (the keeper's cgroups first), reaps the attempts' commands (zombies the keeper left, or
processes it just killed), and writes the exit status of each attempt of the state directory
whose state file has none and names a command it reaped (the command's real status); then it
exits. It does nothing per attempt while the keeper lives: it learns of the attempts from their
state files, only once the keeper is gone.

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
# While the keeper lives, the exit statuses the guard keeps, of the latest processes it reaped:
# an attempt's command is reaped at most a moment before the keeper (the guard's only once the
# keeper exits), and the orphans reaped over a long life would otherwise pile up.
_KEPT_STATUSES = 1024


def run(state_dir: Path, keeper: int) -> NoReturn:
    """Guard the keeper (this process's child) of `state_dir` until it and everything below it
    are gone."""
    code = 1
    try:
        _Guard(state_dir, keeper).run()
        code = 0
    except BaseException:  # noqa: B036 - whatever happens, this process must end here
        log.exception("the keeper's guard failed")
    finally:
        os._exit(code)


class _Guard:
    def __init__(self, state_dir: Path, keeper: int) -> None:
        procs.set_name(GUARD_NAME)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.state_dir = state_dir
        self.keeper = keeper
        self.statuses: dict[int, int] = {}  # of the latest processes the guard reaped, by pid
        self.keeper_gone = False

    def run(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        selector = selectors.DefaultSelector()
        selector.register(wake_r, selectors.EVENT_READ)
        while not self._reap():
            selector.select()
            _drain(wake_r)
        self._clean_up()

    def _reap(self) -> bool:
        """Reap what ended (orphans, commands once the keeper is gone); whether the keeper is."""
        for pid, status in procs.reap_children().items():
            if pid == self.keeper:
                self.keeper_gone = True
            else:
                self.statuses.pop(pid, None)  # (a pid used again goes last)
                self.statuses[pid] = procs.exit_status(status)
                if len(self.statuses) > _KEPT_STATUSES and not self.keeper_gone:  # (then all are kept)
                    del self.statuses[next(iter(self.statuses))]
        return self.keeper_gone

    def _clean_up(self) -> None:
        """The keeper is gone: kill what it left, and close its attempts' files."""
        mount = cgroups.cgroup2_mount()
        kept = cgroups.keeper_dir(mount / "jobplane", self.keeper) if mount else None
        if kept is not None:
            cgroups.kill(kept)
        deadline = time.monotonic() + _KILL_SECONDS
        procs.kill_until_gone(lambda: procs.descendants([os.getpid()], procs.parents(living=True)),
                              self._reap, deadline)
        self._reap()
        ended = self._unfinished()
        if ended:
            log.error("the keeper (pid %d) is gone: killed its %d attempts", self.keeper, len(ended))
        for directory, status in ended:
            _close(directory, status)
        if kept is not None:
            cgroups.sweep(kept.parent)

    def _unfinished(self) -> list[tuple[Path, int]]:
        """The attempts of the state directory the keeper left without an exit status, whose
        command the guard reaped (every attempt's command is the keeper's child: once the
        keeper is gone, the guard's), with that command's status."""
        found = []
        try:
            entries = list(os.scandir(self.state_dir))
        except OSError as exc:
            log.error("cannot list the attempts of %s: %s", self.state_dir, exc)
            return found
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            fields, status = read_state(entry.path)
            try:
                pid = int(fields[0]) if fields else 0
            except ValueError:
                continue
            if status is None and pid in self.statuses:
                found.append((Path(entry.path), self.statuses[pid]))
        return found


def _close(directory: Path, status: int) -> None:
    """An attempt's exit file and complete output, unless the keeper wrote them."""
    try:
        logstore.complete(logstore.log_dir(directory))
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
