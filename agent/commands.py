"""Runs command tasks as subprocesses in their own process group, keeping the tail of their output."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .results import TAIL_LIMIT, AttemptResult, Outcome, Started, StopRequest

log = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024
# After the task's process group is gone, how long to wait for its pipes to close; only a
# process that left the group (setsid) while holding them can keep them open longer.
_PIPE_DRAIN_SECONDS = 2.0


@dataclass(frozen=True)
class CommandSpec:
    """One command attempt: argv, the complete environment, working directory and timeout."""

    argv: list[str]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: str = ""
    timeout: float = 0.0


class Tail:
    """The last `limit` bytes written to a stream, however much was written."""

    def __init__(self, limit: int = TAIL_LIMIT) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self.total = 0  # bytes ever fed

    def feed(self, chunk: bytes) -> None:
        """Append a chunk, forgetting what falls off the front."""
        self.total += len(chunk)
        self._buffer += chunk
        if len(self._buffer) > self._limit:
            del self._buffer[: -self._limit]

    async def drain(self, stream: asyncio.StreamReader) -> None:
        """Read the stream to its end, keeping only the tail."""
        while chunk := await stream.read(_READ_CHUNK):
            self.feed(chunk)

    def text(self) -> str:
        """The tail decoded as UTF-8 (a character cut at the front becomes U+FFFD)."""
        return self._buffer.decode("utf-8", errors="replace")


async def run_command(
    spec: CommandSpec,
    *,
    kill_grace: float = 3.0,
    stop: asyncio.Future[StopRequest] | None = None,
    on_start: Callable[[Started], None] | None = None,
) -> AttemptResult:
    """Run the command to its end, a timeout or a stop request, and describe how it ended."""
    try:
        transport, protocol = await _spawn(spec)
    except (OSError, ValueError) as exc:
        return _failed_to_start(spec, exc)
    pid = transport.get_pid()
    stdout, stderr = Tail(), Tail()
    if on_start is not None:
        on_start(Started(pid, lambda: stdout.total + stderr.total))
    readers = [
        asyncio.create_task(stdout.drain(protocol.stdout)),  # type: ignore[arg-type]
        asyncio.create_task(stderr.drain(protocol.stderr)),  # type: ignore[arg-type]
    ]
    try:
        stopped = await _wait(pid, protocol.exited, spec.timeout, stop, kill_grace)
    finally:
        # Whatever the task left behind in its group goes with it, so nothing holds its
        # pipes open and no orphan outlives the attempt.
        _signal_group(pid, signal.SIGKILL)
        await _finish_readers(readers)
        transport.close()
    return _result(transport.get_returncode(), stopped, stdout.text(), stderr.text())


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Stream protocol that also says when the process exits.

    Process.wait() (Python 3.11) returns only once the pipes close too, which a grandchild
    can hold open forever; `exited` resolves when the task's own process ends.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=_READ_CHUNK, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _spawn(spec: CommandSpec) -> tuple[asyncio.SubprocessTransport, _Protocol]:
    """Start the command, as asyncio.create_subprocess_exec does, with our protocol."""
    if not spec.argv:
        raise ValueError("the command is empty (spec.command has no argv)")
    loop = asyncio.get_running_loop()
    return await loop.subprocess_exec(  # type: ignore[return-value]
        lambda: _Protocol(loop),
        *spec.argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=spec.cwd or None,
        env=dict(spec.env),
        # Its own process group: a cancel or timeout signals the whole tree.
        start_new_session=True,
    )


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
    _signal_group(pid, signal.SIGTERM)
    done, _ = await asyncio.wait({exited}, timeout=kill_grace)
    if not done:
        _signal_group(pid, signal.SIGKILL)
        await exited


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass  # the whole group is gone already
    except PermissionError:
        log.warning("cannot signal process group %d with %s", pgid, signum.name)


async def _finish_readers(readers: list[asyncio.Task]) -> None:
    done, pending = await asyncio.wait(readers, timeout=_PIPE_DRAIN_SECONDS)
    for reader in pending:
        log.warning("a process outside the task's group keeps its output open; not waiting")
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


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
    else:
        outcome, error = Outcome.FAILED, f"killed by {raw['signal']}"
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
    """Raw properties and exit code of a wait status; asyncio encodes signals as -N."""
    if returncode is None:
        return {}, None
    if returncode < 0:
        return {"signal": _signal_name(-returncode)}, None
    return {"exit_code": str(returncode)}, returncode


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
