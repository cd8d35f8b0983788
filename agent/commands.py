"""Runs command tasks, contained, with output and exit status kept in the attempt's
directory, so that an agent started again after a crash can adopt them.

The agent's keeper (keeper.py) spawns each command and contains it: the piece that outlives
the agent, as Nomad's executor or Slurm's slurmstepd do. The agent asks over the keeper's
socket, so its event loop never waits on a spawn. The keeper writes the command's pid (and
start time) when it runs and its exit status when the command and everything it started are
gone. A new agent process finds the attempt's directory, checks that the pid is still that
command, and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import logstore, procs
from .environment import find_program
from .errors import KeeperUnavailable
from .keeper_attempts import STATE_FILE, read_state
from .keeper_client import Keeper
from .keeper_wire import KILL_DEADLINE, LOST_FILE
from .pause import Pause
from .command_results import result as _result, tails as _tails
from .results import AttemptLost, AttemptResult, Outcome, Started, StopRequest

log = logging.getLogger(__name__)

# Program paths (argv[0] with a slash) found runnable, by (argv[0], cwd): the next attempt of
# the same command does not check again. One removed (or made unrunnable) since is refused as
# it starts, as the keeper's spawn fails the same way, so a stale entry changes no outcome.
# Emptied when it holds this many.
_CHECKED_MAX = 256
_checked: set[tuple[str, str]] = set()
# Working directories found to be directories: the next attempt in one does not check again. One
# removed since fails the attempt as it starts all the same, at the keeper (its stage `cwd`).
_checked_dirs: set[str] = set()


@dataclass(frozen=True)
class CommandSpec:
    """One command attempt: argv, environment, working directory, timeout and its directory."""

    argv: list[str]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: str = ""
    timeout: float = 0.0
    # Where the pid and exit status go (the output beside it: logstore.log_dir); a temporary
    # directory when empty.
    attempt_dir: str = ""
    # Bytes of each output stream kept on disk (logstore.py); 0: the default.
    log_max_bytes: int = 0
    # An emptied attempt directory (statedir.StateDir.spare) the keeper may rename into place
    # as attempt_dir, rather than make one; "" for none.
    spare: str = ""


@dataclass(frozen=True)
class Leftover:
    """A command an earlier agent process started: its directory and what it left there."""

    attempt_dir: Path
    pid: int | None
    exit_status: int | None
    timeout: float
    started_wall: float
    # The command's start time (with its pid, it names the process for good).
    start: int | None = None
    # The keeper killed it: no agent process held its lease in time.
    lost: bool = False

    def alive(self) -> bool:
        """Whether its command has not ended (and the pid was not reused by another process)."""
        return (self.pid is not None and self.exit_status is None and self.start is not None
                and procs.start_time(self.pid) == self.start)


class _Process:
    """A running attempt: its command's pid, its output files, and a future that resolves when
    the command exits (the attempt has ended once its exit file is written: `returncode`).

    Started by this agent process, it has the keeper's `ended` news (keeper_client.py) to wait
    for, which says how it ended (`summary`); adopted from an earlier one, its command's pidfd,
    and then its files say how it ended."""

    def __init__(self, pid: int, attempt_dir: Path | str, keeper: Keeper | None,
                 start: int | None, ended: asyncio.Future[dict | None] | None = None) -> None:
        self.pid = pid
        self.dir = attempt_dir
        self._keeper = keeper
        self._guard = keeper.guard if keeper is not None else 0
        self._pidfd: int | None = None
        if ended is not None:
            self.exited: asyncio.Future[Any] = ended
            return
        loop = asyncio.get_running_loop()
        self.exited = loop.create_future()
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.exited.set_result(None)  # it has ended already
            return
        if start is None or procs.start_time(pid) != start:
            self._on_exit()  # the pid is another process's now: ours has ended
            return
        loop.add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if not self.exited.done():
            self.exited.set_result(None)

    def stop(self, *, kill: bool) -> None:
        """SIGTERM every process of the attempt (with `kill`, SIGKILL them all), at the keeper."""
        if self._keeper is not None and not self.exited.done():
            self._keeper.signal(self.pid, kill=kill)

    def output_bytes(self) -> int:
        return logstore.written(logstore.log_dir(self.dir))

    @property
    def summary(self) -> dict | None:
        """The keeper's `ended` news of the attempt (keeper_client.Keeper.ended), once it came."""
        if self.exited.done() and isinstance(self.exited.result(), dict):
            return self.exited.result()
        return None

    async def returncode(self) -> int | None:
        """The command's status: its exit code, -N for signal N; None if unknown."""
        if self.summary is not None:
            return self.summary["status"]
        code = read_state(self.dir)[1]
        if code is None and self._keeper is not None:
            # The command exited; the keeper writes it once what it left is gone.
            await self._keeper.settle(self.pid, self._guard)
            code = read_state(self.dir)[1]
        return code

    def close(self) -> None:
        if not self.exited.done():
            self._on_exit()


async def run_command(
    spec: CommandSpec,
    *,
    kill_grace: float = 3.0,
    stop: asyncio.Future[StopRequest] | None = None,
    on_start: Callable[[Started], None] | None = None,
    keeper: Keeper | None = None,
    pause: Pause | None = None,
) -> AttemptResult:
    """Run the command to its end, a timeout or a stop request, and describe how it ended.
    Its timeout counts only the time it was not paused (`pause`: suspended by the server).

    It runs under `keeper` (the agent's); without one, under a keeper of the attempt
    directory's parent, held for the call. Raises AttemptLost if the keeper killed it because
    the lease was not renewed in time.
    """
    if keeper is not None and spec.attempt_dir:  # the agent's every attempt: no context to enter
        return await _run(spec, spec.attempt_dir, keeper, kill_grace, stop, on_start, pause)
    with _attempt_dir(spec.attempt_dir) as directory:
        async with _holding(keeper, os.path.dirname(directory), spawn=True) as held:
            return await _run(spec, directory, held, kill_grace, stop, on_start, pause)


async def _run(spec: CommandSpec, directory: str, keeper: Keeper | None, kill_grace: float,
               stop: asyncio.Future[StopRequest] | None, on_start: Callable[[Started], None] | None,
               pause: Pause | None) -> AttemptResult:
    try:
        process = await _spawn(spec, directory, keeper)
    except (OSError, ValueError, KeeperUnavailable) as exc:
        return _failed_to_start(spec, exc)
    return await _supervise(process, spec.timeout, kill_grace, stop, on_start, pause)


async def resume_command(
    leftover: Leftover,
    *,
    kill_grace: float = 3.0,
    stop: asyncio.Future[StopRequest] | None = None,
    on_start: Callable[[Started], None] | None = None,
    keeper: Keeper | None = None,
    pause: Pause | None = None,
) -> AttemptResult:
    """Adopt a command an earlier agent process started, and see it to its end.

    Without `keeper`, the keeper running it is reached and the attempt adopted from it for
    the call (the agent adopts all of its leftovers at once instead).
    """
    _check_lost(leftover.attempt_dir)
    if leftover.exit_status is not None or leftover.pid is None:
        return _result(leftover.exit_status, None, *_tails(leftover.attempt_dir))
    async with _holding(keeper, leftover.attempt_dir.parent, spawn=False) as held:
        if keeper is None and held is not None:
            await held.adopt([leftover.attempt_dir])
        process = _Process(leftover.pid, leftover.attempt_dir, held, leftover.start)
        timeout = leftover.timeout
        if timeout > 0:
            timeout = max(0.001, timeout - (time.time() - leftover.started_wall))
        return await _supervise(process, timeout, kill_grace, stop, on_start, pause)


def read_leftover(attempt_dir: Path) -> Leftover:
    """What an attempt's directory says about its command."""
    pid, timeout, started, start = None, 0.0, 0.0, None
    fields, status = read_state(attempt_dir)
    try:
        pid, timeout = int(fields[0]), float(fields[1])
        started = (attempt_dir / STATE_FILE).stat().st_mtime
        start = int(fields[2])
    except (OSError, ValueError, IndexError):
        pass
    return Leftover(attempt_dir, pid, status, timeout, started, start,
                    (attempt_dir / LOST_FILE).exists())


async def _supervise(
    process: _Process,
    timeout: float,
    kill_grace: float,
    stop: asyncio.Future[StopRequest] | None,
    on_start: Callable[[Started], None] | None,
    pause: Pause | None = None,
) -> AttemptResult:
    if on_start is not None:
        on_start(Started(process.pid, process.output_bytes))
    try:
        stopped = await _wait(process, timeout, stop, kill_grace, pause or Pause())
    finally:
        if not process.exited.done():  # we were cancelled: the attempt does not outlive us
            process.stop(kill=True)
        process.close()
    returncode = await process.returncode()
    _check_lost(process.dir, process.summary)
    return _result(returncode, stopped, *_tails(process.dir, process.summary))


def _check_lost(directory: Path | str, summary: dict | None = None) -> None:
    """Raise AttemptLost if the keeper killed the attempt (its `ended` news says, else its file)."""
    if summary is not None:
        why = summary.get("lost") or ""
    else:
        try:
            with open(os.path.join(directory, LOST_FILE)) as f:
                why = f.read().strip()
        except FileNotFoundError:
            return
    if why:
        raise AttemptLost(f"the agent's keeper killed it: {why}")


@contextlib.asynccontextmanager
async def _holding(keeper: Keeper | None, state_dir: Path | str, *, spawn: bool
                   ) -> AsyncIterator[Keeper | None]:
    """The given keeper; else one of `state_dir` held for the block (None if none runs and
    `spawn` is off)."""
    if keeper is not None:
        yield keeper
        return
    own = Keeper(state_dir)
    if not await own.open(spawn=spawn):
        yield None
        return
    try:
        yield own
    finally:
        await own.close()


@contextmanager
def _attempt_dir(given: str) -> Iterator[str]:
    """The given directory (made by the keeper as it starts the command, off the agent's event
    loop), or a temporary one removed afterwards, with its output (its parent is the keeper's)."""
    if given:
        yield given  # a str: no Path made per attempt
        return
    # Only callers without a state directory (tests) get here: the agent does not load these.
    import shutil
    import tempfile

    temp = Path(tempfile.mkdtemp(prefix="jobplane-attempt-"))
    try:
        (temp / "attempt").mkdir()
        yield str(temp / "attempt")
    finally:
        shutil.rmtree(temp, ignore_errors=True)


async def _spawn(spec: CommandSpec, directory: str, keeper: Keeper | None) -> _Process:
    """Have the keeper start the command."""
    if not spec.argv:
        raise ValueError("the command is empty (spec.command has no argv)")
    if spec.cwd and spec.cwd not in _checked_dirs:
        if not os.path.isdir(spec.cwd):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), spec.cwd)
        if len(_checked_dirs) >= _CHECKED_MAX:
            _checked_dirs.clear()
        _checked_dirs.add(spec.cwd)
    program = _resolve(spec.argv[0], spec.env.get("PATH", os.defpath), spec.cwd)
    assert keeper is not None, "a keeper is always opened (spawned) for a new command"
    if not keeper.makes_dirs:  # a keeper of before
        os.makedirs(directory, exist_ok=True)
    pid, start, ended = await keeper.start({
        "dir": _absolute(directory), "argv": [program, *spec.argv[1:]], "env": spec.env,
        "cwd": _absolute(spec.cwd) if spec.cwd else "", "timeout": spec.timeout,
        "log_max_bytes": spec.log_max_bytes,
        **({"spare": _absolute(spec.spare)} if spec.spare and keeper.takes_spares else {})})
    return _Process(pid, directory, keeper, start, ended)


def _absolute(path: str) -> str:
    """os.path.abspath, without its work for a path that is absolute and normal already (the
    agent's every attempt directory, spare and working directory)."""
    normal = path.startswith("/") and "//" not in path and "/./" not in path and "/../" not in path \
        and not path.endswith(("/", "/.", "/.."))
    return path if normal else os.path.abspath(path)


def _resolve(program: str, path: str, cwd: str) -> str:
    """The executable the command names (searched in the task's PATH), so that a missing or
    unrunnable one fails the attempt before anything starts."""
    if "/" in program:
        if (program, cwd) in _checked:
            return program
        target = os.path.join(cwd, program) if cwd else program
        if not os.path.exists(target):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(target) or not os.access(target, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        if len(_checked) >= _CHECKED_MAX:
            _checked.clear()
        _checked.add((program, cwd))
        return program  # exec'd once in the cwd, where a relative path means the same file
    found = find_program(program, path)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return found


async def _wait(
    process: _Process,
    timeout: float,
    stop: asyncio.Future[StopRequest] | None,
    kill_grace: float,
    pause: Pause,
) -> StopRequest | None:
    """Wait for the command to end; if it is stopped first, or its timeout passes (counting
    only the time it was not paused), kill it and say why."""
    if timeout <= 0:  # pauses change nothing to wait for
        await _either(process.exited, stop)
        if process.exited.done() or stop is None:
            return None
        request = stop.result()
        await _terminate(process, kill_grace)
        return request
    start = time.monotonic()
    while True:
        left = None if timeout <= 0 or pause.paused else timeout - pause.ran(start)
        if left is not None and left <= 0:
            request = StopRequest.timeout(timeout)
            break
        changed = asyncio.ensure_future(pause.changed())
        watched: set[asyncio.Future] = {process.exited, changed}
        if stop is not None:
            watched.add(stop)
        try:
            done, _ = await asyncio.wait(watched, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
        if process.exited in done:
            return None
        if stop is not None and stop in done:
            request = stop.result()
            break
    await _terminate(process, kill_grace)
    return request


async def _either(first: asyncio.Future, second: asyncio.Future | None) -> None:
    """Until one of the two is done (what asyncio.wait does, without its task and sets: this
    is every command attempt's wait)."""
    futures = [f for f in (first, second) if f is not None]
    if any(f.done() for f in futures):
        return
    woken = asyncio.get_running_loop().create_future()

    def wake(_: asyncio.Future) -> None:
        if not woken.done():
            woken.set_result(None)

    for future in futures:
        future.add_done_callback(wake)
    try:
        await woken
    finally:
        for future in futures:
            future.remove_done_callback(wake)


async def _terminate(process: _Process, kill_grace: float) -> None:
    """SIGTERM every process of the attempt, then SIGKILL them all if the command outlives the
    grace period (what it leaves is killed as it exits)."""
    process.stop(kill=False)
    done, _ = await asyncio.wait({process.exited}, timeout=kill_grace)
    if done:
        return
    process.stop(kill=True)
    done, _ = await asyncio.wait({process.exited}, timeout=KILL_DEADLINE)
    if not done:  # in uninterruptible sleep, or stopped: the keeper kills it as soon as it can
        log.warning("the command %d did not end on SIGKILL within %gs", process.pid, KILL_DEADLINE)
        await process.exited


def signal_group(pgid: int, signum: signal.Signals) -> None:
    """Send a signal to a process group; a group that is gone already is no error."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass  # the whole group is gone already
    except PermissionError:
        log.warning("cannot signal process group %d with %s", pgid, signum.name)


def _failed_to_start(spec: CommandSpec,
                     exc: OSError | ValueError | KeeperUnavailable) -> AttemptResult:
    if not spec.argv:
        return AttemptResult(
            outcome=Outcome.FAILED, error=f"cannot start: {exc}", raw={"state": "failed_to_start"}
        )
    program = spec.argv[0]
    if isinstance(exc, OSError):
        why = exc.strerror or str(exc)
        if spec.cwd and exc.filename in (spec.cwd, _absolute(spec.cwd)):
            why = f"working directory {spec.cwd!r}: {why}"
    else:
        why = str(exc)
    return AttemptResult(
        outcome=Outcome.FAILED,
        error=f"cannot start {program!r}: {why}",
        raw={"state": "failed_to_start"},
    )
