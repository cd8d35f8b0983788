"""One command attempt of the keeper's: spawned by the keeper itself, with no fork of Python.

The keeper spawns each command (a vfork and an exec: nothing of the keeper is copied) in a
session of its own, its stdin /dev/null and its stdout and stderr pipes that the keeper's own
loop pumps into the attempt's log store (logstore.py): watched from _WATCH_AFTER (keeper.py)
after the start, and read to their end as the command ends (most end sooner, and their pipes
are read then only). Where the machine allows, the command is born in a cgroup of its own,
before it can fork. The spawn is agent/_spawn.c's where it was built: the child is born in
the cgroup (clone3) or joins it, and enters the working directory itself before its exec, and
the command's pidfd comes with it. Otherwise os.posix_spawn, the keeper joining both around the
call (it leaves them at once, as cgroup.kill empties the cgroup). Once the attempt has ended,
its emptied cgroup is the next attempt's (keeper.py). The starts the keeper reads at once are
all readied (Launch), then spawned, then answered (keeper.py).

The attempt's directory is made, or renamed into place from an emptied one the agent keeps
(statedir.py: making a directory and a file is what costs most here). The command is the
attempt's leader: its pid names the attempt, on the wire and in the attempt's one state file,
`pid` ("PID TIMEOUT START", and "exit STATUS" appended once it has ended; an older keeper
wrote the status to a file `exit`, which is still read). The keeper learns of the command's
exit through a pidfd and leaves it a zombie until the attempt has ended (what it left killed,
its output drained, its exit status written), so that its pid, and the session that pid
names, cannot be reused meanwhile: an agent process that reads the state file finds the
command alive until its exit status is there. Stdlib only (and the optional _spawn): the
keeper imports it.
"""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import functools
import logging
import os
import resource
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import cgroups, logstore, procs

log = logging.getLogger("jobplane.agent.keeper")

STATE_FILE = "pid"
# In subreaper mode, the command's environment names its attempt, so that a process that left
# the attempt's session (and was reparented to the keeper's guard) is still found to be its.
MARKER = "JOBPLANE_KEEPER_ATTEMPT"
# Signals the command gets with their default disposition, whatever the keeper ignores (Python
# ignores SIGPIPE and SIGXFSZ; the keeper SIGINT).
_RESET = {signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
          signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD}
_READ_BYTES = 64 * 1024
# The spawn in C (agent/_spawn.c, built where a compiler was found at install time), unless
# this says `posix_spawn`: os.posix_spawn then, with the keeper stepping into the command's
# cgroup and cwd around it, as where it was not built.
SPAWN_ENV = "JOBPLANE_KEEPER_SPAWN"
_POSIX_SPAWN_ASKED = os.environ.get(SPAWN_ENV) == "posix_spawn"
try:
    from . import _spawn as _native
except ImportError:
    _native = None
if _POSIX_SPAWN_ASKED:
    _native = None


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
    # An emptied attempt directory beside it, under spare/ (statedir.py), to rename into place
    # instead of making the directory; "" for none.
    spare: str = ""
    # The environment as execve takes it ("NAME=value" by name), where it was made from the
    # agent's cheaply (_native spawns only); None: made from `env` at the spawn.
    encoded: dict[str, bytes] | None = None

    @classmethod
    def of(cls, message: dict, base_env: dict[str, str] | None = None) -> Request:
        """The request in a `start` message: its environment whole (`env`), or how it differs
        from `base_env`, the agent's own (`env_set`, `env_unset`)."""
        encoded = None
        if "env" in message:
            env = _strings(dict(message["env"]), "env")
        else:
            env_set = _strings(dict(message.get("env_set", {})), "env_set")
            env = {**(base_env or {}), **env_set}
            for name in message.get("env_unset", ()):
                env.pop(name, None)
            if _native is not None and base_env is not None and not message.get("env_unset"):
                encoded = {**_encoded(base_env), **{k: _pair(k, v) for k, v in env_set.items()}}
        argv = message["argv"]
        if not argv:
            raise ValueError("a start needs a command: argv is empty")
        if type(argv) is not list or not all(type(arg) is str for arg in argv):
            raise TypeError("argv must be a list of strings")
        directory, cwd = message["dir"], message.get("cwd", "")
        if type(directory) is not str or type(cwd) is not str:
            raise TypeError("dir and cwd must be strings")
        return cls(directory, argv, env, cwd, float(message.get("timeout", 0)),
                   int(message.get("log_max_bytes", 0)), str(message.get("spare", "")), encoded)


def _strings(env: dict, what: str) -> dict[str, str]:
    """`env` if its values are strings (a spawn given another type fails in the middle of the
    starts the keeper read at once: it is refused as malformed before anything is taken)."""
    if not all(type(value) is str for value in env.values()):
        raise TypeError(f"{what} must map names to strings")
    return env


class StartFailed(Exception):
    """The command could not be started: {errno, error, stage}."""


class Launch:
    """A command ready to spawn: its directory made (or a spare renamed into place) and its
    output pipes open (the keeper readies all the starts it read at once before it spawns
    them: keeper.py)."""

    def __init__(self, request: Request, cgroup: str | None, marker: str | None,
                 joiner: tuple[int, int] | None = None) -> None:
        """To run in `cgroup` if given (`joiner`: its cgroup.procs and directory, open:
        keeper_cgroups.Pool.joiner), else marked in its environment with `marker`. Raises
        StartFailed (and leaves nothing open)."""
        self.request = request
        self.cgroup = cgroup
        self.marker = marker
        self.joiner = joiner
        self.logs = logstore.log_dir_of(request.directory)
        self.pipes: dict[int, logstore.SegmentWriter] = {}
        self.fresh, self._ends = _prepare(request, self.logs, self.pipes)

    def spawn(self) -> Attempt:
        """Spawn it now, and wait for its exec. Raises StartFailed."""
        before = procs.boot_ns()
        try:
            if _native is not None:
                try:
                    pid, pidfd = _native.spawn(*self._native_args())
                except (OSError, ValueError) as exc:
                    raise _start_failed(exc, getattr(exc, "stage", "exec")) from None
            else:
                request = self.request
                env = request.env if self.marker is None else {**request.env, MARKER: self.marker}
                stdio = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate((_null(), *self._ends))]
                pid, pidfd = _spawn_in(request, self.joiner, env, stdio), None
        except StartFailed as exc:
            raise self._failed(exc) from None
        return self._spawned(pid, pidfd, procs.started_between(pid, before, procs.boot_ns()) or 0)

    def _native_args(self) -> tuple:
        """agent/_spawn.c's arguments for it: the command is born in its cgroup (or joins it)
        and enters its cwd itself (the keeper stays where it is), and its pidfd is made as it is
        born. Raises StartFailed (an argument that cannot be encoded)."""
        request = self.request
        pairs = request.encoded
        if pairs is None:
            pairs = {name: _pair(name, value) for name, value in request.env.items()}
        if self.marker is not None:
            pairs = {**pairs, MARKER: _pair(MARKER, self.marker)}
        procs_fd, into = self.joiner or (-1, -1)
        try:
            argv = [arg.encode(*_FS) for arg in request.argv]
            return (argv[0], argv, list(pairs.values()), request.cwd.encode(*_FS) or None,
                    procs_fd, _null(), self._ends[0], self._ends[1], _to_reset(), into, _nofile)
        except ValueError as exc:
            raise _start_failed(exc, "exec") from None

    def _spawned(self, pid: int, pidfd: int | None, start: int) -> Attempt:
        """It runs: its Attempt (raises StartFailed if it cannot be watched: then it is killed)."""
        self._close_ends()
        return Attempt(self, pid, start, pidfd)

    def _failed(self, exc: StartFailed) -> StartFailed:
        """It did not start: what was opened for it is closed; `exc`."""
        self._close_ends()
        _close(self.pipes)
        return exc

    def _close_ends(self) -> None:
        """The command's ends of its pipes: it has its own now (or is not to be)."""
        for fd in self._ends:
            os.close(fd)
        self._ends = []


def start(launch: Launch) -> Attempt | StartFailed:
    """launch.spawn(), or why it did not start."""
    try:
        return launch.spawn()
    except StartFailed as exc:
        return exc


class Attempt:
    """A command the keeper started: its pid, directory, cgroup, output and what waits on it."""

    def __init__(self, launch: Launch, pid: int, start: int, pidfd: int | None) -> None:
        """The command `launch` spawned as `pid`, started at `start` (clock ticks since boot),
        with its pidfd if the spawn made one. Raises StartFailed if it cannot be watched (it is
        killed then)."""
        request = launch.request
        self.directory = request.directory  # a str: the keeper's hot path makes no Path
        self.timeout = request.timeout
        self.cgroup = launch.cgroup
        self.marker = launch.marker
        self.logs = launch.logs
        self.pipes = launch.pipes
        self.pid, self.start, self._fresh = pid, start, launch.fresh
        self.written = list(self.pipes.values())  # both streams, after their pipes are closed
        try:
            self.pidfd = os.pidfd_open(self.pid) if pidfd is None else pidfd
        except OSError as exc:  # out of file descriptors: it cannot be watched, so it goes
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            _close(self.pipes)
            raise StartFailed({"errno": exc.errno or 0, "stage": "exec",
                               "error": f"cannot watch it: {exc.strerror}"}) from None
        self.watched = False  # its output pipes are registered with the keeper's selector
        self._state: tuple[int, int] | None = None  # the state file, open, and its length
        self.holder = None  # keeper_holders.Holder
        self.orphaned_until: float | None = None
        self.settles: list[tuple[object, int]] = []
        self.killed = ""  # why the keeper killed it (no agent held its lease), if it did
        self.status: int | None = None  # once the command has exited (exit_status)
        self.drain_until: float | None = None  # once what it left is killed: output's last bytes
        self.emptied = False  # every process of it is gone (its cgroup is empty)
        self.stopped: list[int] | None = None  # frozen while it waits for a new agent process
        # Suspended at the server's request (a hold, a lost condition): what was stopped. An
        # adoption does not thaw it; only a `suspend` request with `resume` does.
        self.suspended: list[int] | None = None

    def note_pid(self) -> None:
        """The `pid` file: what an agent process started after a crash adopts. One write to a
        new file: a reader sees the whole line or none of it (read_state takes complete lines)."""
        path = logstore.join(self.directory, STATE_FILE)
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        # None there, or a spare's: cut to its first byte (statedir.py), no line, written over
        # (not truncated: ext4 writes out a file truncated to nothing as it is closed).
        if not self._fresh:  # an attempt directory's name again: a new file, never a rewrite
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            flags |= os.O_EXCL
        fd = os.open(path, flags, 0o644)
        line = f"{self.pid} {self.timeout:g} {self.start}\n".encode()
        try:
            os.pwrite(fd, line, 0)
        except OSError:
            os.close(fd)
            raise
        self._state = (fd, len(line))  # kept open for its exit status: one open per attempt

    def summary(self) -> dict:
        """How it ended, for its holder: its exit status, whether the keeper killed it (and
        why), and how many bytes of each stream it wrote, with the segment size (logstore.py)."""
        writers = {writer.stream: writer for writer in self.written}
        return {"status": self.status, "lost": self.killed,
                "output": {stream: writers[stream].end() for stream in logstore.STREAMS},
                "segment": writers["out"].size}

    def pump(self, fd: int) -> bool:
        """Copy what one output pipe holds into the log store; True at its end (every writer
        closed it)."""
        try:
            chunk = os.read(fd, _READ_BYTES)
        except BlockingIOError:
            return False
        if chunk:
            self.pipes[fd].write(chunk)
            return False
        return True

    def drain(self, fd: int) -> bool:
        """Copy what one output pipe holds into the log store, to its end if every writer has
        closed it: True then; False if one still holds it open."""
        while True:
            try:
                chunk = os.read(fd, _READ_BYTES)
            except BlockingIOError:
                return False
            if not chunk:
                return True
            self.pipes[fd].write(chunk)

    def close_pipe(self, fd: int) -> None:
        os.close(fd)
        self.pipes.pop(fd).close()

    def finish(self) -> None:
        """The attempt has ended: its output complete, its exit status written, the command
        reaped (its cgroup is the keeper's to reuse or remove)."""
        _close(self.pipes)
        if not any(writer.wrote for writer in self.written):
            try:  # (before its exit status, which says its output is complete)
                logstore.note_empty(self.logs)
            except OSError as exc:
                log.error("cannot note that %s wrote no output: %s", self.directory, exc)
        try:
            # The exit status is also what says the output is complete (logstore.is_done): no
            # `done` file for a command attempt.
            if self._state is None:
                note_exit(self.directory, self.status)
            else:  # appended (one write: a reader sees the whole line or none of it)
                os.pwrite(self._state[0], f"exit {self.status}\n".encode(), self._state[1])
        finally:
            if self._state is not None:
                os.close(self._state[0])
                self._state = None
            procs.wait_status(self.pidfd, reap=True)
            os.close(self.pidfd)


def note_exit(directory: Path | str, status: int | None) -> None:
    """Append the exit status to the attempt's state file (one write: a reader sees the whole
    line or none of it)."""
    fd = os.open(os.path.join(directory, STATE_FILE), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, f"exit {status}\n".encode())
    finally:
        os.close(fd)


def read_state(directory: Path | str) -> tuple[list[str], int | None]:
    """The fields of an attempt's pid line (none if it has no complete one) and its exit
    status (None while it runs)."""
    try:
        with open(os.path.join(directory, STATE_FILE)) as f:
            lines = f.read().split("\n")
    except OSError:
        lines = [""]
    status = None
    for line in lines[1:-1]:  # complete lines only
        if line.startswith("exit "):
            status = _int(line[5:])
    if status is None:  # as a keeper of before the state file wrote it
        try:
            with open(os.path.join(directory, "exit")) as f:
                status = _int(f.read())
        except OSError:
            pass
    return (lines[0].split() if len(lines) > 1 else []), status


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _prepare(request: Request, logs: str, pipes: dict[int, logstore.SegmentWriter]) -> tuple[bool, list[int]]:
    """Make the command's directory and its output pipes, their read ends (non-blocking) into
    `pipes`: whether its directory was made new, and the command's ends. Raises StartFailed."""
    try:
        fresh = _take_spare(request) or _make_dir(request.directory)
    except OSError as exc:
        raise StartFailed({"errno": exc.errno or 0, "stage": "dir",
                           "error": f"cannot make its directory: {exc}"}) from None
    ends: list[int] = []
    try:
        logstore.prepare(logs)  # its directory is made at its first output, if it writes any
        for stream in logstore.STREAMS:
            read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            os.set_blocking(write_end, True)  # the command's end: it blocks as it would on a tty
            ends.append(write_end)
            pipes[read_end] = logstore.SegmentWriter(logs, stream, request.log_max_bytes, lazy=True)
    except OSError as exc:
        _close(pipes)
        for fd in ends:
            os.close(fd)
        raise StartFailed({"errno": exc.errno or 0, "error": f"cannot keep its output: {exc}",
                           "stage": "output"}) from None
    return fresh, ends


# The soft limit of open files the commands get (the keeper's before more_files raised it); -1:
# the keeper's own.
_nofile = -1
# The keeper's soft limit of open files, at most (more_files).
_FILES_WANTED = 1 << 16


def more_files() -> None:
    """Raise the keeper's soft limit of open files (commonly 1,024) towards its hard limit: it
    holds about 7 per running attempt and 3 per spare cgroup. Only with the C spawn, which
    gives each command the soft limit the keeper had (posix_spawn cannot)."""
    global _nofile
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, _FILES_WANTED)
    if _native is None or soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    _nofile = soft
    log.info("open files: the keeper may hold %d (its commands get %d)", wanted, soft)


def spawner() -> str:
    """How this process spawns commands, for the keeper's log."""
    if _native is not None:
        return "agent/_spawn.c"
    why = f"{SPAWN_ENV}=posix_spawn" if _POSIX_SPAWN_ASKED else "agent/_spawn.c was not built"
    return f"os.posix_spawn ({why})"


@functools.cache
def _to_reset() -> tuple[int, ...]:
    """The signals a command gets with their default disposition (_spawn.c): _RESET, and any the
    keeper handles, whose handler must not run in the child before its exec (it shares the
    keeper's memory until then). Read at the first spawn, once the keeper's are set."""
    handled = {sig for sig in signal.valid_signals() if callable(signal.getsignal(sig))}
    if faulthandler.is_enabled():  # (PYTHONFAULTHANDLER) its C handlers, which getsignal cannot see
        handled |= {signal.SIGSEGV, signal.SIGFPE, signal.SIGABRT, signal.SIGBUS, signal.SIGILL}
    return tuple(sorted(int(sig) for sig in _RESET | handled))


# os.fsencode's encoding, without its cost per call (a keeper makes a dozen per command).
_FS = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def _pair(name: str, value: str) -> bytes:
    return f"{name}={value}".encode(*_FS)


_base: tuple[dict[str, str], dict[str, bytes]] | None = None


def _encoded(base: dict[str, str]) -> dict[str, bytes]:
    """`base` (an agent's environment, which its starts' are made from) as execve takes it,
    encoded once for as long as it is the same dict."""
    global _base
    if _base is None or _base[0] is not base:
        _base = (base, {k: _pair(k, v) for k, v in base.items()})
    return _base[1]


def _start_failed(exc: Exception, stage: str) -> StartFailed:
    """What a spawn's error says: its errno (EINVAL for a NUL inside an argument, a variable or
    the working directory, which either spawn refuses with ValueError), why, and at what stage."""
    if not isinstance(exc, OSError):
        return StartFailed({"errno": errno.EINVAL, "error": str(exc), "stage": stage})
    return StartFailed({"errno": exc.errno or 0, "error": exc.strerror or str(exc), "stage": stage})


def _spawn_in(request: Request, joiner: tuple[int, int] | None, env: dict[str, str], stdio: list) -> int:
    """posix_spawn in the request's cwd and the cgroup whose cgroup.procs is `joiner`'s: the
    keeper (single-threaded) steps into both for the spawn and back out at once."""
    stage, home_dir, home_cgroup = "cwd", None, None
    try:
        if request.cwd:
            home_dir = _home_dir()
            os.chdir(request.cwd)
        stage = "cgroup"
        if joiner is not None:
            home_cgroup = _home()
            os.write(joiner[0], b"0")
        stage = "exec"
        return os.posix_spawn(request.argv[0], request.argv, env, file_actions=stdio,
                              setsid=True, setsigmask=(), setsigdef=_RESET)
    except OSError as exc:
        raise _start_failed(exc, stage) from None
    except ValueError as exc:  # (raised before anything is spawned)
        raise _start_failed(exc, "exec") from None
    finally:
        if home_cgroup is not None:
            os.write(home_cgroup, b"0")
        if home_dir is not None:
            os.fchdir(home_dir)


def _take_spare(request: Request) -> bool:
    """Rename the request's spare directory into place; whether it was (else the directory is
    made: the spare is gone, or the directory is there already)."""
    if not request.spare or request.spare.rpartition("/")[0] != \
            request.directory.rpartition("/")[0] + "/spare":
        return False
    try:
        os.rename(request.spare, request.directory)
    except OSError:
        return False
    return True


def _make_dir(path: str) -> bool:
    """Make the attempt's directory; whether it is new (not there already)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return False
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)
    return True


@functools.cache
def _null() -> int:
    """/dev/null, opened once: every command's stdin."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


@functools.cache
def _home_dir() -> int:
    """The keeper's working directory (it never moves but for a spawn), opened once."""
    return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


@functools.cache
def _home() -> int:
    """The keeper's own cgroup (it never moves but for a spawn), as the descriptor that moves
    it back there (cgroups.joiner), opened once."""
    return cgroups.joiner(cgroups.current())


def _close(pipes: dict[int, logstore.SegmentWriter]) -> None:
    for fd, writer in pipes.items():
        os.close(fd)
        writer.close()
    pipes.clear()
