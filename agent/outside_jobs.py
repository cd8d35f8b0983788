"""The agent's outside jobs: external and slurm attempts, which run nothing under the agent
but follow a job in an outside scheduler (external.py, slurm.py).

An attempt either submits its job, or adopts one submitted before it: by an earlier process of
this agent (its record in the state directory, external_record.py) or by an earlier attempt of
the task on another agent, which the server hands on (Assignment.adopt_external_job_id). Either
way the job's id is recorded in the attempt's state directory before the job is followed, and
told to the server on the attempt's STARTED and STATUS reports, so that whoever continues the
attempt after a crash or a loss follows the same job instead of submitting it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from jobplane.logs import attempt_ids
from jobplane.v1 import provider_pb2

from .environment import agent_env, own_env
from .external import JOB_ID_MAX, follow_external, run_external, submit_interrupted
from .external_record import ExternalRecord, SavedSpec, write_record
from .results import AttemptResult, Outcome, Started, StopRequest
from .slurm import SlurmQueue
from .statedir import StateDir

log = logging.getLogger(__name__)

AttemptKey = tuple[str, int]
OnStart = Callable[[Started], None]
OnStatus = Callable[[dict[str, str]], None]


class OutsideJobs:
    """Submits, adopts and follows the outside jobs of the agent's attempts, and knows which
    job each attempt follows."""

    def __init__(self, state: StateDir, slurm: SlurmQueue, *, kill_grace: float) -> None:
        self._state = state
        self._slurm = slurm
        self._kill_grace = kill_grace
        self._jobs: dict[AttemptKey, str] = {}

    def job(self, key: AttemptKey) -> str:
        """The outside job the attempt follows; "" if none (yet)."""
        return self._jobs.get(key, "")

    def told(self, key: AttemptKey) -> str:
        """The job id the attempt's reports tell the server: "" if none, or too long to record."""
        job_id = self.job(key)
        return job_id if len(job_id) <= JOB_ID_MAX else ""

    def forget(self, key: AttemptKey) -> None:
        self._jobs.pop(key, None)

    async def run(self, assignment: provider_pb2.Assignment, *, env: dict[str, str], cwd: str,
                  stop: asyncio.Future[StopRequest], on_start: OnStart, on_status: OnStatus) -> AttemptResult:
        """Submit the attempt's job and follow it, recording it in the attempt's state directory
        before the submit and again with the job id. An attempt that adopts the job of an earlier
        attempt (assignment.adopt_external_job_id) is recorded with that id at once and follows
        the job; it never submits."""
        spec, key = assignment.spec, (assignment.task_id, assignment.attempt)
        slurm, adopt = spec.HasField("slurm"), assignment.adopt_external_job_id
        record = ExternalRecord(
            Path(self._state.attempt_dir(key)), SavedSpec() if slurm else SavedSpec.of(spec.external),
            task_env=own_env(assignment), cwd=cwd, timeout=spec.timeout_seconds, started_wall=time.time(),
            job_id=adopt or None, adapter="slurm" if slurm else "external")
        try:
            await asyncio.to_thread(write_record, record)
        except OSError as exc:
            if not adopt:  # not submitted yet: nothing runs anywhere
                return AttemptResult(Outcome.FAILED, raw={"state": "failed_to_start"}, error=(
                    f"cannot record the external attempt in {record.attempt_dir}: {exc}"))
            log.error("cannot record adopted job %s of task %s attempt %d: %s; an agent restarted "
                      "after a crash would not adopt it again", adopt, *key, exc, extra=attempt_ids(key))
        if adopt:
            log.info("task %s attempt %d adopts %s job %s, submitted by an earlier attempt",
                     *key, record.adapter, adopt, extra=attempt_ids(key))
            return await self._follow(key, record, env=env, timeout=spec.timeout_seconds, stop=stop,
                                      on_start=on_start, on_status=on_status)

        async def submitted(job_id: str, pid: int) -> None:
            self._follows(key, job_id)
            try:
                await asyncio.to_thread(write_record, record.submitted(job_id, pid))
            except OSError as exc:  # the job runs: follow it, though a crash now would lose it
                log.error("cannot record external job %s of task %s attempt %d: %s; an agent "
                          "restarted after a crash would not adopt it", job_id, *key, exc, extra=attempt_ids(key))

        if slurm:
            return await self._slurm.run(
                spec.slurm, name=assignment.task_name, env=env, cwd=cwd, stop=stop,
                comment=f"jobplane task {assignment.task_id} attempt {assignment.attempt}", on_start=on_start,
                on_status=on_status, timeout=spec.timeout_seconds, on_submitted=submitted)
        return await run_external(
            spec.external, env=env, cwd=cwd, stop=stop, on_start=on_start, on_status=on_status,
            kill_grace=self._kill_grace, timeout=spec.timeout_seconds, on_submitted=submitted)

    async def resume(self, key: AttemptKey, record: ExternalRecord, *, stop: asyncio.Future[StopRequest],
                     on_start: OnStart, on_status: OnStatus) -> AttemptResult:
        """Follow the job an earlier process of this agent submitted; never submit it again.
        Without a job id the submit was cut short: the job may or may not exist, so the attempt
        fails saying so."""
        if record.job_id is None:
            log.warning("task %s attempt %d: the agent stopped during its external submit; "
                        "reporting it failed rather than submitting it again", *key, extra=attempt_ids(key))
            return submit_interrupted()
        return await self._follow(key, record, env=agent_env() | dict(record.task_env),
                                  timeout=record.timeout_left(time.time()), stop=stop,
                                  on_start=on_start, on_status=on_status)

    async def _follow(self, key: AttemptKey, record: ExternalRecord, *, env: dict[str, str], timeout: float,
                      stop: asyncio.Future[StopRequest], on_start: OnStart, on_status: OnStatus) -> AttemptResult:
        """Follow the recorded job until it ends or the attempt is stopped."""
        assert record.job_id is not None
        self._follows(key, record.job_id)
        follow = (self._slurm.follow if record.adapter == "slurm"
                  else partial(follow_external, record.spec, kill_grace=self._kill_grace))
        return await follow(record.job_id, env=env, cwd=record.cwd, stop=stop, on_start=on_start,
                            on_status=on_status, timeout=timeout, submit_pid=record.submit_pid)

    def _follows(self, key: AttemptKey, job_id: str) -> None:
        if len(job_id) > JOB_ID_MAX:
            log.warning("task %s attempt %d: the job id %r... is longer than %d characters; the "
                        "server cannot record it, so the job cannot be handed on to another agent",
                        *key, job_id[:40], JOB_ID_MAX, extra=attempt_ids(key))
        self._jobs[key] = job_id
