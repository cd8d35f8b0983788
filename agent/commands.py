"""Runs command tasks in their own process group, with output and exit status kept in the
attempt's directory, so that an agent started again after a crash can adopt them.

Each command runs under a small shell wrapper that writes its pid when it starts and the
command's exit status when it ends. The wrapper is what Nomad's executor or Slurm's
slurmstepd is to their agents: the piece that outlives the agent. A new agent process finds
the attempt's directory, checks that the pid still runs the wrapper, and waits for it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .results import TAIL_LIMIT, AttemptResult, Outcome, Started, StopRequest

log = logging.getLogger(__name__)

# The wrapper: `$1` is the attempt's directory, `$2` its timeout, the rest the command.
# TERM is caught (not ignored, which the command would inherit), so a command that exits on
# SIGTERM still has its exit status written. Exit statuses above 128 are signals, as in sh.
WRAPPER = (
    'trap : TERM; d=$1; t=$2; shift 2; echo "$$ $t" >"$d/pid"; '
    '"$@"; s=$?; echo $s >"$d/exit"; exit $s'
)
WRAPPER_NAME = "jobplane-task"
_SIGNAL_BASE = 128


@dataclass(frozen=True)
class CommandSpec:
    """One command attempt: argv, environment, working directory, timeout and its directory."""

    argv: list[str]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: str = ""
    timeout: float = 0.0
    # Where the pid, output and exit status go; a temporary directory when empty.
    attempt_dir: str = ""


@dataclass(frozen=True)
class Leftover:
    """A command an earlier agent process started: its directory and what it left there."""

    attempt_dir: Path
    pid: int | None
    exit_status: int | None
    timeout: float
    started_wall: float

    def alive(self) -> bool:
        """Whether its wrapper still runs (and the pid was not reused by another process)."""
        return self.pid is not None and self.exit_status is None and _runs_wrapper(self.pid, self.attempt_dir)


class _Process:
    """A running wrapper: its pid, its output files, and a future that resolves at its exit."""

    def __init__(self, pid: int, attempt_dir: Path, popen: subprocess.Popen | None) -> None:
        self.pid = pid
        self.dir = attempt_dir
        self._popen = popen
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pidfd = os.pidfd_open(pid)  # ProcessLookupError if it is gone already
        asyncio.get_running_loop().add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        if not self.exited.done():
            self.exited.set_result(None)

    def output_bytes(self) -> int:
        return sum(_size(self.dir / name) for name in ("out", "err"))

    def returncode(self) -> int | None:
        """The wrapper's status as asyncio encodes it (-N for a signal); None if unknown."""
        if self._popen is not None:
            return self._popen.poll()
        return _read_int(self.dir / "exit")

    def close(self) -> None:
        if not self.exited.done():
            self._on_exit()


async def run_command(
    spec: CommandSpec,
    *,
    kill_grace: float = 3.0,
    stop: asyncio.Future[StopRequest] | None = None,
    on_start: Callable[[Started], None] | None = None,
) -> AttemptResult:
    """Run the command to its end, a timeout or a stop request, and describe how it ended."""
    with _attempt_dir(spec.attempt_dir) as directory:
        try:
            process = _spawn(spec, directory)
        except (OSError, ValueError) as exc:
            return _failed_to_start(spec, exc)
        return await _supervise(process, spec.timeout, kill_grace, stop, on_start)


async def resume_command(
    leftover: Leftover,
    *,
    kill_grace: float = 3.0,
    stop: asyncio.Future[StopRequest] | None = None,
    on_start: Callable[[Started], None] | None = None,
) -> AttemptResult:
    """Adopt a command an earlier agent process started, and see it to its end."""
    if leftover.exit_status is not None or leftover.pid is None:
        return _result(leftover.exit_status, None, *_tails(leftover.attempt_dir))
    try:
        process = _Process(leftover.pid, leftover.attempt_dir, None)
    except ProcessLookupError:
        return _result(_read_int(leftover.attempt_dir / "exit"), None,
                       *_tails(leftover.attempt_dir))
    timeout = leftover.timeout
    if timeout > 0:
        timeout = max(0.001, timeout - (time.time() - leftover.started_wall))
    return await _supervise(process, timeout, kill_grace, stop, on_start)


def read_leftover(attempt_dir: Path) -> Leftover:
    """What an attempt's directory says about its command."""
    pid, timeout, started = None, 0.0, 0.0
    pid_file = attempt_dir / "pid"
    try:
        fields = pid_file.read_text().split()
        pid, timeout, started = int(fields[0]), float(fields[1]), pid_file.stat().st_mtime
    except (OSError, ValueError, IndexError):
        pass
    return Leftover(attempt_dir, pid, _read_int(attempt_dir / "exit"), timeout, started)


async def _supervise(
    process: _Process,
    timeout: float,
    kill_grace: float,
    stop: asyncio.Future[StopRequest] | None,
    on_start: Callable[[Started], None] | None,
) -> AttemptResult:
    if on_start is not None:
        on_start(Started(process.pid, process.output_bytes))
    try:
        stopped = await _wait(process.pid, process.exited, timeout, stop, kill_grace)
    finally:
        # Whatever the task left behind in its group goes with it: no orphan outlives it.
        signal_group(process.pid, signal.SIGKILL)
        process.close()
    return _result(process.returncode(), stopped, *_tails(process.dir))


@contextmanager
def _attempt_dir(given: str) -> Iterator[Path]:
    """The given directory, or a temporary one removed afterwards."""
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        yield Path(given)
        return
    temp = tempfile.mkdtemp(prefix="jobplane-attempt-")
    try:
        yield Path(temp)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _spawn(spec: CommandSpec, directory: Path) -> _Process:
    """Start the wrapper running the command, in a new session (its own process group)."""
    if not spec.argv:
        raise ValueError("the command is empty (spec.command has no argv)")
    if spec.cwd and not os.path.isdir(spec.cwd):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), spec.cwd)
    program = _resolve(spec.argv[0], spec.env.get("PATH", os.defpath), spec.cwd)
    argv = ["/bin/sh", "-c", WRAPPER, WRAPPER_NAME, str(directory), f"{spec.timeout:g}", program,
            *spec.argv[1:]]
    with open(directory / "out", "wb") as out, open(directory / "err", "wb") as err:
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 cwd=spec.cwd or None, env=dict(spec.env), start_new_session=True)
    try:
        return _Process(popen.pid, directory, popen)
    except ProcessLookupError:  # cannot happen for our own child, even a zombie
        raise OSError(errno.ESRCH, "the process vanished as it started") from None


def _resolve(program: str, path: str, cwd: str) -> str:
    """The executable the command names, so sh runs that file and never a builtin."""
    if "/" in program:
        target = os.path.join(cwd, program) if cwd else program
        if not os.path.exists(target):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(target) or not os.access(target, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        return program
    found = shutil.which(program, path=path)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return found


async def _wait(
    pid: int,
    exited: asyncio.Future[None],
    timeout: float,
    stop: asyncio.Future[StopRequest] | None,
    kill_grace: float,
) -> StopRequest | None:
    """Wait for the process to exit; if it is stopped first, kill it and say why."""
    watched: set[asyncio.Future] = {exited}
    if stop is not None:
        watched.add(stop)
    done, _ = await asyncio.wait(
        watched, timeout=timeout if timeout > 0 else None, return_when=asyncio.FIRST_COMPLETED
    )
    if exited in done:
        return None
    request = stop.result() if stop is not None and stop in done else StopRequest.timeout(timeout)
    await _terminate(pid, exited, kill_grace)
    return request


async def _terminate(pid: int, exited: asyncio.Future[None], kill_grace: float) -> None:
    """SIGTERM the process group, then SIGKILL it if the leader outlives the grace period."""
    signal_group(pid, signal.SIGTERM)
    done, _ = await asyncio.wait({exited}, timeout=kill_grace)
    if not done:
        signal_group(pid, signal.SIGKILL)
        await exited


def signal_group(pgid: int, signum: signal.Signals) -> None:
    """Send a signal to a process group; a group that is gone already is no error."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass  # the whole group is gone already
    except PermissionError:
        log.warning("cannot signal process group %d with %s", pgid, signum.name)


def _runs_wrapper(pid: int, attempt_dir: Path) -> bool:
    """Whether `pid` is a wrapper for this attempt: pids are reused, the arguments are not."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return WRAPPER_NAME.encode() in argv and os.fsencode(str(attempt_dir)) in argv


def _tails(directory: Path) -> tuple[str, str]:
    return _tail(directory / "out"), _tail(directory / "err")


def _tail(path: Path, limit: int = TAIL_LIMIT) -> str:
    """The last `limit` bytes of a file, decoded (a character cut at the front becomes U+FFFD)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - limit))
            return f.read(limit).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _result(
    returncode: int | None, stopped: StopRequest | None, stdout: str, stderr: str
) -> AttemptResult:
    raw, exit_code = _exit_status(returncode)
    if stopped is not None:
        # We ended it, so its exit status is no verdict on the task: it stays in `raw` only.
        return stopped.result(raw, stdout_tail=stdout, stderr_tail=stderr)
    if exit_code == 0:
        outcome, error = Outcome.SUCCEEDED, ""
    elif exit_code is not None:
        outcome, error = Outcome.FAILED, f"exited with code {exit_code}"
    elif "signal" in raw:
        outcome, error = Outcome.FAILED, f"killed by {raw['signal']}"
    else:
        outcome, error = Outcome.FAILED, "ended while the agent was away, leaving no exit status"
        raw = {"state": "unknown"}
    state = "exited" if exit_code is not None else "signaled"
    return AttemptResult(
        outcome=outcome,
        exit_code=exit_code,
        error=error,
        stdout_tail=stdout,
        stderr_tail=stderr,
        raw={"state": state, **raw},
    )


def _exit_status(returncode: int | None) -> tuple[dict[str, str], int | None]:
    """Raw properties and exit code of a wrapper's status: -N is a signal to the wrapper,
    128+N a signal to the command (the shell's convention)."""
    if returncode is None:
        return {}, None
    if returncode < 0:
        return {"signal": _signal_name(-returncode)}, None
    if returncode > _SIGNAL_BASE and _is_signal(returncode - _SIGNAL_BASE):
        return {"signal": _signal_name(returncode - _SIGNAL_BASE)}, None
    return {"exit_code": str(returncode)}, returncode


def _is_signal(number: int) -> bool:
    try:
        signal.Signals(number)
    except ValueError:
        return False
    return True


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _failed_to_start(spec: CommandSpec, exc: OSError | ValueError) -> AttemptResult:
    if not spec.argv:
        return AttemptResult(
            outcome=Outcome.FAILED, error=f"cannot start: {exc}", raw={"state": "failed_to_start"}
        )
    program = spec.argv[0]
    if isinstance(exc, OSError):
        why = exc.strerror or str(exc)
        if spec.cwd and exc.filename == spec.cwd:
            why = f"working directory {spec.cwd!r}: {why}"
    else:
        why = str(exc)
    return AttemptResult(
        outcome=Outcome.FAILED,
        error=f"cannot start {program!r}: {why}",
        raw={"state": "failed_to_start"},
    )
