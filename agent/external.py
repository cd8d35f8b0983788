"""Runs tasks through an outside scheduler: three user-supplied commands that speak JSON.

`submit` prints a JSON object with the job's "id"; `poll ID` prints the job's raw properties
as a JSON object, with "done": true (and "exit_code", or "error") once the job is over;
`cancel ID` asks the scheduler to stop it. Each command runs with the task's environment and
working directory, without a shell, in a process group of its own, for a bounded time and with
its output capped. The scheduler holds the truth about the job; the agent only reads it.

A command must not leave a process holding its standard output: the agent reads it to the end,
and a command still printing after COMMAND_SECONDS is killed with its whole group.

The agent records the job's id in the attempt's state directory the moment the submit returns
(external_record.py), so an agent process started after a crash follows the job with
`follow_external` instead of submitting it a second time; and it tells the server the id, so
that an attempt continued on another agent follows (adopts) the job from it too. A stop that
hands the job on to such an attempt leaves it running: no cancel command.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .commands import signal_group
from .results import TAIL_LIMIT, AttemptResult, Outcome, Started, StopRequest, request_stop

log = logging.getLogger(__name__)

# How long one submit, poll or cancel command may take.
COMMAND_SECONDS = 30.0
# The most a command may print on its standard output.
OUTPUT_LIMIT = 1024 * 1024
# Failed polls in a row that are tried again before the attempt fails.
POLL_RETRIES = 3
# Seconds between polls when the spec leaves it at 0.
DEFAULT_POLL_INTERVAL = 1.0

# Keys of a poll's answer that the agent reads; they stay in the raw properties too.
DONE, EXIT_CODE, ERROR = "done", "exit_code", "error"
# The longest job id the server records (AttemptStarted.external_job_id): a job with a longer one
# is followed here but cannot be handed on to another agent.
JOB_ID_MAX = 256


class ExternalCommands(Protocol):
    """What run_external needs of a job_pb2.ExternalSpec: three argv lists and the interval."""

    @property
    def submit(self) -> Sequence[str]: ...

    @property
    def poll(self) -> Sequence[str]: ...

    @property
    def cancel(self) -> Sequence[str]: ...

    @property
    def poll_interval_seconds(self) -> float: ...


class CommandFailed(Exception):
    """A submit, poll or cancel command did not do its part; the message says how.

    It never leaves this module: run_external turns it into a FAILED attempt.
    """


async def run_external(
    spec: ExternalCommands,
    *,
    env: Mapping[str, str],
    cwd: str,
    stop: asyncio.Future[StopRequest],
    on_start: Callable[[Started], None],
    on_status: Callable[[dict[str, str]], None],
    kill_grace: float = 3.0,
    timeout: float = 0.0,
    on_submitted: Callable[[str, int], Awaitable[None]] | None = None,
) -> AttemptResult:
    """Submit the job, poll it until it is done, stopped or past `timeout` (if > 0), and
    describe how it ended. `on_submitted(job_id, pid)` is awaited as soon as the submit has
    returned, before the first poll (the agent records the id there, see external_record.py);
    `on_status` is told each new set of raw properties while it runs."""
    runner = CommandRunner(env, cwd, kill_grace)
    with _or_timeout(stop, timeout) as stopping:
        try:
            job_id, pid = await _submit(runner, spec.submit)
        except CommandFailed as exc:
            return AttemptResult(Outcome.FAILED, error=f"external submit failed: {exc}",
                                 raw={"state": "submit_failed"})
        if on_submitted is not None:
            await on_submitted(job_id, pid)
        return await _follow(_Job(runner, spec, job_id, on_status), pid, stopping, on_start)


async def follow_external(
    spec: ExternalCommands,
    job_id: str,
    *,
    env: Mapping[str, str],
    cwd: str,
    stop: asyncio.Future[StopRequest],
    on_start: Callable[[Started], None],
    on_status: Callable[[dict[str, str]], None],
    kill_grace: float = 3.0,
    timeout: float = 0.0,
    submit_pid: int = 0,
) -> AttemptResult:
    """Poll a job submitted earlier (by an agent process that died since, or by an earlier
    attempt of the task) until it is done, stopped or past `timeout` (if > 0), as run_external
    does after its submit. Never submits."""
    runner = CommandRunner(env, cwd, kill_grace)
    with _or_timeout(stop, timeout) as stopping:
        return await _follow(_Job(runner, spec, job_id, on_status), submit_pid, stopping, on_start)


def submit_interrupted() -> AttemptResult:
    """The result of an attempt whose agent died while the submit ran: the job may or may not
    be in the outside scheduler, so it is neither submitted again nor followed."""
    return AttemptResult(Outcome.FAILED, raw={"state": "submit_interrupted"}, error=(
        "the agent stopped while the external submit command ran, before it returned a job "
        "id: the outside scheduler may hold the job (check it there); it was not submitted "
        "again"))


async def _follow(job: _Job, pid: int, stop: asyncio.Future[StopRequest],
                  on_start: Callable[[Started], None]) -> AttemptResult:
    # The submit's group is gone by now: what shows progress is the polls that keep coming.
    on_start(Started(pid, lambda: job.polls))
    return await job.follow(stop)


@dataclass(frozen=True)
class CommandRunner:
    """Runs the spec's commands with the task's environment and working directory."""

    env: Mapping[str, str]
    cwd: str
    kill_grace: float

    async def run(self, argv: Sequence[str], what: str) -> tuple[bytes, int]:
        """Run one command to its end; its standard output and pid. CommandFailed if it
        cannot start, runs too long, prints too much or exits with a non-zero status."""
        if not argv:
            raise CommandFailed(f"external.{what} is empty: give the command as an argv list")
        process = await self._start(argv)
        finished = False
        try:
            async with asyncio.timeout(COMMAND_SECONDS):
                out, err, code = await asyncio.gather(
                    _read_capped(process.stdout), _read_tail(process.stderr), process.wait())
            finished = True
        except TimeoutError:
            raise CommandFailed(
                f"{argv[0]!r} did not finish within {COMMAND_SECONDS:g} s") from None
        finally:
            if not finished:
                await self._kill(process)
        if code != 0:
            raise CommandFailed(_exit_message(argv[0], code, err))
        return out, process.pid

    async def _start(self, argv: Sequence[str]) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=dict(self.env), cwd=self.cwd or None, start_new_session=True)
        except OSError as exc:
            raise CommandFailed(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None

    async def _kill(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM the command's group, then SIGKILL it once the grace period is over."""
        signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), self.kill_grace)
        except TimeoutError:
            pass
        signal_group(process.pid, signal.SIGKILL)
        await process.wait()


class _Job:
    """A submitted job: polled until it is done, or cancelled."""

    def __init__(self, runner: CommandRunner, spec: ExternalCommands, job_id: str,
                 on_status: Callable[[dict[str, str]], None]) -> None:
        self._runner = runner
        self._spec = spec
        self._id = job_id
        self._on_status = on_status
        self._interval = spec.poll_interval_seconds or DEFAULT_POLL_INTERVAL
        self._failures = 0
        # The raw properties of the last successful poll.
        self.raw: dict[str, str] = {}
        # Polls run so far, successful or not: the attempt's progress.
        self.polls = 0

    async def follow(self, stop: asyncio.Future[StopRequest]) -> AttemptResult:
        """Poll until the job is done or the polls keep failing; cancel it on a stop request."""
        while True:
            ended = await self._poll(stop)
            if ended is not None:
                return ended
            done, _ = await asyncio.wait({stop}, timeout=self._interval)
            if done:
                return await self._cancel(stop.result())

    async def _poll(self, stop: asyncio.Future[StopRequest]) -> AttemptResult | None:
        """Poll once: the attempt's result if it is over, None to poll again."""
        poll = asyncio.ensure_future(self._runner.run([*self._spec.poll, self._id], "poll"))
        await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not poll.done():
            poll.cancel()  # the poll's own cleanup kills its process group
            await asyncio.gather(poll, return_exceptions=True)
            return await self._cancel(stop.result())
        self.polls += 1
        try:
            properties = _json_object(poll.result()[0])
        except CommandFailed as exc:
            return self._poll_failed(exc)
        self._failures = 0
        return self._seen(properties)

    def _seen(self, properties: dict[str, Any]) -> AttemptResult | None:
        raw = {key: _text(value) for key, value in properties.items()}
        if properties.get(DONE) is True:
            return _ended(raw)  # the FINISHED report carries these, no STATUS needed
        if raw != self.raw:
            self.raw = raw
            self._on_status(dict(raw))
        return None

    def _poll_failed(self, exc: CommandFailed) -> AttemptResult | None:
        self._failures += 1
        log.warning("poll of external job %s failed (%d in a row): %s", self._id,
                    self._failures, exc)
        if self._failures <= POLL_RETRIES:
            return None
        return AttemptResult(
            Outcome.FAILED, raw={**self.raw, "state": "poll_failed"},
            error=f"external poll failed {self._failures} times in a row, last: {exc}")

    async def _cancel(self, request: StopRequest) -> AttemptResult:
        """Cancel the job (unless the stop leaves it running: another attempt follows it, or
        the agent is leaving), and report the stop request with the last raw properties."""
        result = request.result()
        error = result.error
        if request.leaves_running(self._id):
            log.info("stopped following external job %s; it runs on in the outside scheduler", self._id)
            return replace(result, error=f"{error}; external job {self._id} left running",
                           raw={**self.raw, "state": request.raw_state})
        try:
            await self._runner.run([*self._spec.cancel, self._id], "cancel")
        except CommandFailed as exc:
            log.warning("cannot cancel external job %s: %s", self._id, exc)
            error = f"{error}; external cancel of job {self._id} failed: {exc}"
        return replace(result, error=error, raw={**self.raw, "state": request.raw_state})


async def _submit(runner: CommandRunner, argv: Sequence[str]) -> tuple[str, int]:
    """Submit the job: its id, and the pid of the submit command."""
    out, pid = await runner.run(argv, "submit")
    job_id = _json_object(out).get("id")
    if isinstance(job_id, bool) or not isinstance(job_id, (str, int, float)) or job_id == "":
        raise CommandFailed(f'printed no "id" (a string or number) in its JSON object: '
                            f"{_snippet(out)}")
    return _text(job_id), pid


def _ended(raw: dict[str, str]) -> AttemptResult:
    """The result of a job whose poll said it is done."""
    exit_code = _int(raw.get(EXIT_CODE))
    succeeded = exit_code == 0 if EXIT_CODE in raw else ERROR not in raw
    final = {**raw, "state": "external_done"}
    if succeeded:
        return AttemptResult(Outcome.SUCCEEDED, exit_code=exit_code, raw=final)
    return AttemptResult(Outcome.FAILED, exit_code=exit_code, error=_failure(raw), raw=final)


def _failure(raw: dict[str, str]) -> str:
    """What went wrong, in the scheduler's own words: e.g. "external job failed: exit code 12
    (queue=PRINT, status=ABEND, specific=S0C7)"."""
    why = [raw[ERROR]] if ERROR in raw else []
    if EXIT_CODE in raw:
        why.append(f"exit code {raw[EXIT_CODE]}")
    details = ", ".join(f"{k}={v}" for k, v in raw.items() if k not in (DONE, EXIT_CODE, ERROR))
    message = f"external job failed: {'; '.join(why)}"
    return f"{message} ({details})" if details else message


async def _read_capped(stream: asyncio.StreamReader | None) -> bytes:
    """Everything the stream carries; CommandFailed past OUTPUT_LIMIT bytes."""
    data = bytearray()
    while stream is not None and (chunk := await stream.read(64 * 1024)):
        data += chunk
        if len(data) > OUTPUT_LIMIT:
            raise CommandFailed(f"printed more than {OUTPUT_LIMIT} bytes")
    return bytes(data)


async def _read_tail(stream: asyncio.StreamReader | None) -> bytes:
    """The last TAIL_LIMIT bytes the stream carries."""
    data = bytearray()
    while stream is not None and (chunk := await stream.read(64 * 1024)):
        data += chunk
        del data[:-TAIL_LIMIT]
    return bytes(data)


def _json_object(out: bytes) -> dict[str, Any]:
    try:
        value = json.loads(out)
    except ValueError:
        raise CommandFailed(f"printed no JSON object: {_snippet(out)}") from None
    if not isinstance(value, dict):
        raise CommandFailed(f"printed JSON that is not an object: {_snippet(out)}")
    return value


def _exit_message(program: str, code: int, stderr: bytes) -> str:
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    lines = stderr.decode("utf-8", errors="replace").strip().splitlines()
    return f"{program!r} {how}" + (f": {lines[-1]}" if lines else "")


def _text(value: Any) -> str:
    """A raw property as a string: strings as they are, other JSON values as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _snippet(out: bytes, limit: int = 200) -> str:
    text = out.decode("utf-8", errors="replace").strip()
    return repr(text[:limit] + ("..." if len(text) > limit else "")) if text else "(nothing)"


@contextmanager
def _or_timeout(stop: asyncio.Future[StopRequest],
                timeout: float) -> Iterator[asyncio.Future[StopRequest]]:
    """A future resolved by `stop`, or by a timeout's stop request once `timeout` seconds
    (if > 0) have passed."""
    loop = asyncio.get_running_loop()
    merged: asyncio.Future[StopRequest] = loop.create_future()

    def forward(done: asyncio.Future[StopRequest]) -> None:
        if not done.cancelled():
            request_stop(merged, done.result())

    if stop.done():
        forward(stop)
    else:
        stop.add_done_callback(forward)
    timer = None
    if timeout > 0:
        timer = loop.call_later(timeout, request_stop, merged, StopRequest.timeout(timeout))
    try:
        yield merged
    finally:
        stop.remove_done_callback(forward)
        if timer is not None:
            timer.cancel()
