"""What an assignment needs before it runs: whether it may run at all (the spec names one kind
of work, this agent can run that kind, its prerequisites are still on the machine), where it
runs, and the call a Python worker makes of it."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from jobplane.logs import attempt_ids
from jobplane.v1 import provider_pb2

from .config import AgentConfig
from .environment import task_env
from .prerequisites import missing_prerequisites, prerequisite_missing
from .results import AttemptResult, Outcome, StopRequest

if TYPE_CHECKING:
    from .pyworkers import PyCall

log = logging.getLogger(__name__)


async def refusal(assignment: provider_pb2.Assignment, stop: asyncio.Future[StopRequest],
                  config: AgentConfig) -> AttemptResult | None:
    """Why the attempt must not start after all (its result); None if it may."""
    if stop.done():  # cancelled while it waited for a slot
        return stop.result().result()
    spec = assignment.spec
    if [bool(spec.command), bool(spec.python), spec.HasField("external"), spec.HasField("slurm")].count(True) != 1:
        return AttemptResult(Outcome.FAILED, raw={"state": "failed_to_start"}, error=(
            "the task spec must set exactly one of command, python, external and slurm"))
    if spec.HasField("slurm") and not config.slurm:
        return AttemptResult(Outcome.FAILED, raw={"state": "failed_to_start"}, error=(
            "this agent does not submit to Slurm: start it with --slurm"))
    if spec.prerequisites:
        return await _recheck(assignment, stop, config)
    return None


async def _recheck(assignment: provider_pb2.Assignment, stop: asyncio.Future[StopRequest],
                   config: AgentConfig) -> AttemptResult | None:
    """Scan the attempt's prerequisites again, as the machine may have lost one since the
    server's inventory saw it; None if all are here. A cancel or shutdown cuts it short."""
    check = asyncio.ensure_future(missing_prerequisites(assignment.spec.prerequisites, config.scan_limits))
    try:
        await asyncio.wait({check, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        check.cancel()
        await asyncio.gather(check, return_exceptions=True)
    if stop.done():
        return stop.result().result()
    missing = check.result()
    if not missing:
        return None
    key = (assignment.task_id, assignment.attempt)
    log.info("not running task %s attempt %d: prerequisite %d is missing (%s)", *key, *missing[0],
             extra=attempt_ids(key))
    return prerequisite_missing(missing)


def working_dir(config: AgentConfig, cwd: str) -> str:
    """Where a task runs: its spec's cwd, relative to the agent's work dir, else the work dir."""
    return os.path.join(config.work_dir, cwd) if cwd else config.work_dir


def py_call(assignment: provider_pb2.Assignment, config: AgentConfig, log_dir: str) -> PyCall:
    """What a Python worker runs for the assignment, and where its output goes."""
    from .pyworkers import PyCall

    spec = assignment.spec
    env = {**spec.env, **task_env(assignment)}
    return PyCall(spec.python, spec.args_json, env, working_dir(config, spec.cwd), spec.timeout_seconds,
                  assignment.task_id, assignment.job_id, assignment.attempt, assignment.checkpoint_json,
                  log_dir, config.log_max_bytes)
