"""Runs tasks as Slurm batch jobs: submitted with `sbatch --parsable`, followed, cancelled
with `scancel`. The agent's environment `slurm`, on the same footing as `external`.

Every attempt submits its own job, but the agent follows all of them together: one `squeue`
per poll interval for every job it follows (and one `sacct` for those squeue no longer
lists), never one call per job, so a thousand jobs cost a Slurm controller no more than one.
Each job's raw properties (slurm_commands.py) are the task's raw properties, streamed when
they change; the job's output files are read back as its stdout/stderr tails when it ends.

As for external jobs, the job id is recorded in the attempt's state directory the moment
sbatch returns (external_record.py), so an agent process started after a crash follows the
job with `follow` and never submits it again; and the server is told it, so an attempt
continued on another agent follows (adopts) the same job with `follow`, and the stop that
hands it on leaves it running: no scancel.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .external import CommandFailed, CommandRunner
from .results import TAIL_LIMIT, AttemptResult, Outcome, Started, StopRequest
from .slurm_commands import (
    ERROR, FINAL_STATES, OUTPUT, SlurmJob, ending, parse_sacct, parse_sbatch, parse_squeue, sacct_argv,
    sbatch_argv, scancel_argv, squeue_argv, unknown_job)

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 5.0
# Polls in a row that fail (squeue or sacct erring) before the attempt fails, and the least
# time they must span: a controller restarting is no reason to give up on a job.
POLL_RETRIES = 3
POLL_GIVE_UP_SECONDS = 60.0
# Polls in a row in which neither squeue nor sacct knows the job before it counts as lost.
MISSING_LIMIT = 3
# After scancel, how many polls to wait for Slurm to show the job ended.
CANCEL_POLLS = 10

Observation = dict[str, str] | CommandFailed | None  # raw properties, a failed poll, or unknown job


@dataclass
class _Watch:
    """One job the poller follows: what each poll saw of it, in order."""

    job_id: str
    seen: asyncio.Queue[Observation] = field(default_factory=asyncio.Queue)


class SlurmQueue:
    """The agent's side of a Slurm cluster: submits jobs and follows all of them with one
    squeue (plus one sacct) per `interval` seconds, only while it follows any."""

    def __init__(self, *, interval: float = DEFAULT_POLL_INTERVAL, kill_grace: float = 3.0) -> None:
        self.interval = interval
        self._kill_grace = kill_grace
        self._watches: dict[str, list[_Watch]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def run(
        self, spec: SlurmJob, *, name: str, comment: str, env: Mapping[str, str], cwd: str,
        stop: asyncio.Future[StopRequest], on_start: Callable[[Started], None],
        on_status: Callable[[dict[str, str]], None], timeout: float = 0.0,
        on_submitted: Callable[[str, int], Awaitable[None]] | None = None,
    ) -> AttemptResult:
        """Submit the job and follow it to its end, a stop request or `timeout` (if > 0).
        `on_submitted(job_id, pid)` is awaited as soon as sbatch returns (to record the id)."""
        runner = CommandRunner(env, cwd, self._kill_grace)
        try:
            out, pid = await runner.run(sbatch_argv(spec, name=name, comment=comment), "submit")
            job_id = parse_sbatch(out.decode("utf-8", errors="replace"))
        except (CommandFailed, ValueError) as exc:
            return AttemptResult(Outcome.FAILED, error=f"sbatch failed: {exc}", raw={"state": "submit_failed"})
        log.info("submitted Slurm job %s (%s)", job_id, name)
        if on_submitted is not None:
            await on_submitted(job_id, pid)
        return await self.follow(job_id, env=env, cwd=cwd, stop=stop, on_start=on_start, on_status=on_status,
                                 timeout=timeout, submit_pid=pid)

    async def follow(
        self, job_id: str, *, env: Mapping[str, str], cwd: str, stop: asyncio.Future[StopRequest],
        on_start: Callable[[Started], None], on_status: Callable[[dict[str, str]], None],
        timeout: float = 0.0, submit_pid: int = 0,
    ) -> AttemptResult:
        """Follow a submitted job (this process's, one an earlier agent process submitted, or
        one an earlier attempt of the task submitted) until it ends, a stop request or `timeout`
        (if > 0); never submits."""
        job = _Job(self, job_id, CommandRunner(env, cwd, self._kill_grace), cwd, on_status)
        on_start(Started(submit_pid, lambda: job.polls))  # the polls that keep coming are its progress
        watch = self._watch(job_id)
        try:
            return await job.follow(watch, stop, timeout)
        finally:
            self._unwatch(watch)

    # The poller: one loop for every job followed.

    def _watch(self, job_id: str) -> _Watch:
        watch = _Watch(job_id)
        self._watches.setdefault(job_id, []).append(watch)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_loop(), name="jobplane-agent-slurm-poll")
        return watch

    def _unwatch(self, watch: _Watch) -> None:
        watches = self._watches.get(watch.job_id, [])
        if watch in watches:
            watches.remove(watch)
        if not watches:
            self._watches.pop(watch.job_id, None)

    async def _poll_loop(self) -> None:
        """Every interval, while any job is followed: observe them all, hand each its part."""
        while self._watches:
            await asyncio.sleep(self.interval)
            job_ids = sorted(self._watches, key=lambda job_id: (len(job_id), job_id))
            if not job_ids:
                break
            try:
                seen = await self._observe(job_ids)
            except Exception as exc:  # a bug here must not leave every job unfollowed
                log.exception("polling Slurm failed")
                seen = dict.fromkeys(job_ids, CommandFailed(f"agent error: {exc!r}"))
            for job_id in job_ids:
                for watch in self._watches.get(job_id, []):
                    watch.seen.put_nowait(seen.get(job_id))

    async def _observe(self, job_ids: list[str]) -> dict[str, Observation]:
        """One squeue for all the jobs, one sacct for those it does not list."""
        runner = CommandRunner(dict(os.environ), "", self._kill_grace)
        try:
            out, _ = await runner.run(squeue_argv(job_ids), "poll")
            seen: dict[str, Observation] = dict(parse_squeue(out.decode("utf-8", errors="replace")))
        except CommandFailed as exc:
            if not unknown_job(str(exc)):
                return dict.fromkeys(job_ids, exc)
            seen = {}
        missing = [job_id for job_id in job_ids if job_id not in seen]
        if missing:
            try:
                out, _ = await runner.run(sacct_argv(missing), "poll")
                seen.update(parse_sacct(out.decode("utf-8", errors="replace")))
            except CommandFailed as exc:
                seen.update(dict.fromkeys(missing, exc))
        return seen


class _Job:
    """One followed job: its raw properties as they change, and how it ends."""

    def __init__(self, queue: SlurmQueue, job_id: str, runner: CommandRunner, cwd: str,
                 on_status: Callable[[dict[str, str]], None]) -> None:
        self._queue = queue
        self.id = job_id
        self._runner = runner
        self._cwd = cwd
        self._on_status = on_status
        self.raw: dict[str, str] = {"JobId": job_id}
        self.polls = 0
        self._failures = 0
        self._failing_since = 0.0
        self._missing = 0

    async def follow(self, watch: _Watch, stop: asyncio.Future[StopRequest], timeout: float) -> AttemptResult:
        deadline = time.monotonic() + timeout if timeout > 0 else None
        while True:
            seen = asyncio.ensure_future(watch.seen.get())
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait({seen, stop}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if not seen.done():
                seen.cancel()
                request = stop.result() if stop.done() else StopRequest.timeout(timeout)
                return await self._cancel(watch, request)
            ended = await self._seen(seen.result())
            if ended is not None:
                return ended

    async def _seen(self, observation: Observation) -> AttemptResult | None:
        """Take one poll's observation: the attempt's result if the job is over, else None."""
        self.polls += 1
        if isinstance(observation, CommandFailed):
            return await self._poll_failed(observation)
        self._failures = 0
        if observation is None:
            self._missing += 1
            if self._missing < MISSING_LIMIT:
                return None
            return AttemptResult(Outcome.FAILED, raw={**self.raw, "state": "slurm_lost"}, error=(
                f"Slurm no longer knows job {self.id}: neither squeue nor sacct lists it"))
        self._missing = 0
        if observation != self.raw:
            self.raw = observation
            if observation.get("State") not in FINAL_STATES:
                self._on_status(dict(observation))
        if observation.get("State") in FINAL_STATES:
            return await self._ended()
        return None

    async def _ended(self) -> AttemptResult:
        verdict = ending(self.raw)
        out, err = await asyncio.to_thread(self._tails)
        if verdict.succeeded:
            return AttemptResult(Outcome.SUCCEEDED, exit_code=verdict.exit_code, raw=dict(self.raw),
                                 stdout_tail=out, stderr_tail=err)
        outcome = Outcome.CANCELLED if self.raw.get("State") == "CANCELLED" else Outcome.FAILED
        return AttemptResult(outcome, exit_code=verdict.exit_code, error=verdict.error, raw=dict(self.raw),
                             stdout_tail=out, stderr_tail=err)

    async def _poll_failed(self, exc: CommandFailed) -> AttemptResult | None:
        now = time.monotonic()
        if self._failures == 0:
            self._failing_since = now
        self._failures += 1
        log.warning("cannot see Slurm job %s (%d polls in a row): %s", self.id, self._failures, exc)
        if self._failures <= POLL_RETRIES or now - self._failing_since < POLL_GIVE_UP_SECONDS:
            return None
        await self._scancel()  # best effort: a job we no longer follow must not run on unseen
        return AttemptResult(Outcome.FAILED, raw={**self.raw, "state": "poll_failed"}, error=(
            f"cannot see Slurm job {self.id} for {now - self._failing_since:.0f} s, last: {exc}; "
            "it was cancelled"))

    async def _cancel(self, watch: _Watch, request: StopRequest) -> AttemptResult:
        """scancel the job, wait (a few polls) until Slurm shows it ended, and report the stop;
        unless the stop leaves the job running (another attempt follows it, or the agent is
        leaving): then only stop following it."""
        result = request.result()
        error = result.error
        if request.leaves_running(self.id):
            log.info("stopped following Slurm job %s; it runs on in Slurm", self.id)
            return AttemptResult(result.outcome, error=f"{error}; Slurm job {self.id} left running",
                                 raw={**self.raw, "state": request.raw_state})
        if not await self._scancel():
            error = f"{error}; scancel of Slurm job {self.id} failed"
        for _ in range(CANCEL_POLLS):
            if self.raw.get("State") in FINAL_STATES:
                break
            await self._seen(await watch.seen.get())
        else:
            error = f"{error}; Slurm did not show job {self.id} ended after scancel"
        out, err = await asyncio.to_thread(self._tails)
        return AttemptResult(result.outcome, error=error, raw={**self.raw, "state": request.raw_state},
                             stdout_tail=out, stderr_tail=err)

    async def _scancel(self) -> bool:
        try:
            await self._runner.run(scancel_argv(self.id), "cancel")
            return True
        except CommandFailed as exc:
            log.warning("cannot cancel Slurm job %s: %s", self.id, exc)
            return False

    def _tails(self) -> tuple[str, str]:
        """The last bytes of the job's output files, if this machine can read them."""
        job_id = self.raw.get("JobId") or self.id
        return tuple(_tail(Path(self._cwd or ".") / pattern.replace("%j", job_id))  # type: ignore[return-value]
                     for pattern in (OUTPUT, ERROR))


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_LIMIT))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
