"""The wrapper of one command attempt: it contains the command and everything it starts.

A fork of the keeper (never exec'd), one per attempt, in a session of its own. It is the
subreaper of every process the command starts, so nothing escapes it by double-forking or
starting a session; where the machine allows, the command also runs in a cgroup of its own
(cgroups.py). It writes the attempt's `pid` file once the command runs and its `exit` file
once the command and everything it started are gone: that is what an agent process started
after a crash adopts.

Signals: SIGTERM is passed to every process of the attempt (a timeout or a cancel); SIGUSR1
SIGKILLs them all (the kill grace is over). The keeper's death is a SIGUSR1 as well, so an
attempt never outlives its keeper. Stdlib only.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from jobplane.files import write_atomic

from . import cgroups, logstore, procs

# Signals the agent sends a wrapper: pass SIGTERM on, and SIGKILL everything.
TERMINATE = signal.SIGTERM
KILL = signal.SIGUSR1
NAME = "jobplane-task"
# How long the wrapper keeps killing what the attempt left before it gives up (processes in
# uninterruptible sleep) and ends anyway.
_CLEAN_UP_SECONDS = 10.0
_WATCHED = {signal.SIGCHLD, TERMINATE, KILL}
# Signals the command gets with their default disposition, whatever the keeper ignores (Python
# ignores SIGPIPE and SIGXFSZ; the keeper SIGINT).
_RESET = {signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
          signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD}


@dataclass(frozen=True)
class Request:
    """One command attempt: its directory, argv (argv[0] resolved), environment, cwd, timeout."""

    directory: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    timeout: float = 0.0
    # Bytes of each output stream kept (logstore.py); 0: the default.
    log_max_bytes: int = 0


class _StartFailed(Exception):
    """The command could not be started: {errno, error, stage}."""


def run(request: Request, *, cgroup: Path | None, report_fd: int, keeper_pid: int) -> NoReturn:
    """Run the attempt to its end in this (freshly forked) process; never returns.

    The first line written to `report_fd` says whether the command started: {"pid": PID} or
    {"errno": N, "error": TEXT, "stage": STAGE}.
    """
    code = 1
    try:
        code = _Wrapper(request, cgroup).run(report_fd, keeper_pid)
    except BaseException:  # noqa: B036 - whatever happens, this process must end here
        traceback.print_exc()
    finally:
        os._exit(code)


class _Wrapper:
    def __init__(self, request: Request, cgroup: Path | None) -> None:
        self.request = request
        self.directory = request.directory
        self.cgroup = cgroup
        self.pid = os.getpid()
        self.command: int | None = None
        self.status: int | None = None  # the command's wait status, once reaped
        self.logs = logstore.log_dir(request.directory)
        self.pumps: list[threading.Thread] = []

    def run(self, report_fd: int, keeper_pid: int) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
        procs.die_with_parent(KILL)
        if os.getppid() != keeper_pid:
            return 1  # the keeper died as it forked us: start nothing
        os.setsid()
        procs.become_subreaper()
        procs.set_name(NAME)
        try:
            self.command = self._start()
        except _StartFailed as exc:
            _report(report_fd, exc.args[0])
            self._end()
            return 127
        write_atomic(f"{self.directory}/pid",
                     f"{self.pid} {self.request.timeout:g} {procs.start_time(self.pid)}\n", durable=False)
        _report(report_fd, {"pid": self.pid})
        self._supervise()
        self._end()
        self._drain()
        status = procs.exit_status(self.status) if self.status is not None else -signal.SIGKILL
        write_atomic(f"{self.directory}/exit", f"{status}\n", durable=False)
        return status if status >= 0 else 128 - status

    def _start(self) -> int:
        """Spawn the command (posix_spawn: no copy of this process), its output piped to the
        attempt's log store, in its cwd and cgroup; its pid."""
        request = self.request
        try:
            ends = self._pipes()
        except OSError as exc:
            raise _StartFailed({"errno": exc.errno or 0, "error": f"cannot keep its output: {exc}",
                                "stage": "output"}) from None
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        stdio = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate((null, *ends))]
        stage = "cwd"
        try:
            if request.cwd:
                os.chdir(request.cwd)  # the command's; the wrapper uses absolute paths only
            stage = "cgroup"
            # Born in its cgroup: the wrapper joins it for the spawn and leaves it at once
            # (it must stay outside, as cgroup.kill empties the cgroup).
            home = cgroups.current() if self.cgroup is not None else None
            if self.cgroup is not None:
                cgroups.join(self.cgroup)
            stage = "exec"
            try:
                return os.posix_spawn(request.argv[0], request.argv, request.env,
                                      file_actions=stdio, setsigmask=(), setsigdef=_RESET)
            finally:
                if home is not None:
                    cgroups.join(home)
        except OSError as exc:
            raise _StartFailed({"errno": exc.errno or 0, "error": exc.strerror or str(exc),
                                "stage": stage}) from None
        finally:
            for fd in (*ends, null):
                os.close(fd)

    def _pipes(self) -> tuple[int, int]:
        """A pipe per output stream, both pumped into the log store by one thread of ours (it
        has every signal blocked, as this one); the write ends, for the command."""
        logstore.begin(self.logs, self.request.log_max_bytes)
        pipes, ends = {}, []
        for stream in logstore.STREAMS:
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            pipes[read_end] = logstore.SegmentWriter(self.logs, stream, self.request.log_max_bytes)
            ends.append(write_end)
        pump = threading.Thread(target=logstore.pump, args=(pipes,), daemon=True)
        pump.start()
        self.pumps.append(pump)
        return ends[0], ends[1]

    def _drain(self) -> None:
        """Wait for the output's last bytes (every process holding the pipes is gone), then
        mark it complete."""
        deadline = time.monotonic() + _CLEAN_UP_SECONDS
        for pump in self.pumps:
            pump.join(max(0.0, deadline - time.monotonic()))
        logstore.finish(self.logs)

    def _supervise(self) -> None:
        """Until the command ends: pass SIGTERM on, SIGKILL everything on SIGUSR1."""
        self._reap()
        while self.status is None:
            signum = signal.sigwaitinfo(_WATCHED).si_signo
            if signum == TERMINATE:
                procs.send(self._members(), signal.SIGTERM)
            elif signum == KILL:
                self._kill_all()
            self._reap()

    def _end(self) -> None:
        """Kill whatever the command left running, reap it all, and remove the cgroup."""
        self._reap()
        # Nothing left is the common case, and needs no /proc scan: the subreaper's living
        # descendants all descend from its children, and the cgroup says if it is empty.
        if procs.has_children() or (self.cgroup is not None and cgroups.populated(self.cgroup)):
            self._kill_leftovers()
        if self.cgroup is not None:
            cgroups.remove(self.cgroup)

    def _kill_leftovers(self) -> None:
        deadline = time.monotonic() + _CLEAN_UP_SECONDS
        if not procs.kill_until_gone(self._kill_targets, self._reap, deadline):
            print(f"{NAME} {self.pid}: processes of {self.directory} outlived SIGKILL", flush=True)

    def _members(self) -> list[int]:
        """Every process of the attempt: the subreaper's descendants, and the cgroup's members."""
        found = set(procs.descendants([self.pid], procs.parents()))
        if self.cgroup is not None:
            found.update(cgroups.members(self.cgroup))
        found.discard(self.pid)
        return sorted(found)

    def _kill_targets(self) -> list[int]:
        if self.cgroup is not None:
            cgroups.kill(self.cgroup)
        return self._members()

    def _kill_all(self) -> None:
        if self.cgroup is not None:
            cgroups.kill(self.cgroup)
        procs.send(self._members(), signal.SIGKILL)

    def _reap(self) -> None:
        for pid, status in procs.reap_children().items():
            if pid == self.command:
                self.status = status


def _report(fd: int, message: dict) -> None:
    try:
        os.write(fd, (json.dumps(message) + "\n").encode())
    except OSError:
        pass  # the keeper is gone: KILL is on its way
    finally:
        os.close(fd)
