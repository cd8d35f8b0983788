"""An external attempt's record in its state directory, so a new agent process can adopt it.

The record (`external.json`) is written before the submit command runs, without the outside
scheduler's job id, and written again with the id as soon as the submit returns; an attempt
that adopts the job of an earlier attempt of the task (the server hands it on, see
outside_jobs.py) writes it with the id at once. A new agent process that finds it
(statedir.py) therefore knows one of two things:

- the id: the job runs (or ran) in the outside scheduler; the new process polls it from
  there and never submits again;
- no id: the agent died while the submit ran. Whether the scheduler took the job is unknown,
  and submitting again could run it twice, so the attempt is reported FAILED with that reason
  ("submit_interrupted") and the task's retry policy decides whether it runs again.

A Slurm attempt (slurm.py) keeps the same record with `adapter` "slurm" and no commands: its
job id is all a new process needs to follow it.

The record holds what the poll and cancel commands need: the spec's argv lists and interval,
the task's own environment (the spec's and the task's variables, not the agent's: the new
process adds its own), the working directory, the timeout and when the attempt began.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jobplane.files import write_atomic

from .external import ExternalCommands

RECORD_FILE = "external.json"


@dataclass(frozen=True)
class SavedSpec:
    """An ExternalSpec as the record keeps it; satisfies ExternalCommands."""

    submit: tuple[str, ...] = ()
    poll: tuple[str, ...] = ()
    cancel: tuple[str, ...] = ()
    poll_interval_seconds: float = 0.0

    @classmethod
    def of(cls, spec: ExternalCommands) -> SavedSpec:
        return cls(tuple(spec.submit), tuple(spec.poll), tuple(spec.cancel),
                   spec.poll_interval_seconds)


@dataclass(frozen=True)
class ExternalRecord:
    """One external attempt as its state directory keeps it."""

    attempt_dir: Path
    spec: SavedSpec
    task_env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""
    timeout: float = 0.0
    # Wall-clock time the attempt began: an adopted attempt keeps its original deadline.
    started_wall: float = 0.0
    # The outside scheduler's id, once the submit has returned it; None while it runs.
    job_id: str | None = None
    # The submit command's pid (its process group is gone by the time the record has an id).
    submit_pid: int = 0
    # Which adapter follows the job: "external" (the spec's commands) or "slurm".
    adapter: str = "external"

    def submitted(self, job_id: str, submit_pid: int) -> ExternalRecord:
        """The record once the submit has returned `job_id`."""
        return replace(self, job_id=job_id, submit_pid=submit_pid)

    def timeout_left(self, now: float) -> float:
        """What is left of the timeout at wall-clock time `now` (0: none; never 0 once past it)."""
        if self.timeout <= 0:
            return 0.0
        return max(0.001, self.timeout - (now - self.started_wall))


def has_record(attempt_dir: Path) -> bool:
    """Whether the attempt's directory is an external attempt's."""
    return (attempt_dir / RECORD_FILE).exists()


def write_record(record: ExternalRecord) -> None:
    """Write the record whole (a crash leaves the old one or the new one, never half of one),
    readable by the agent's user only: the task's environment may hold secrets."""
    record.attempt_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(record.attempt_dir / RECORD_FILE, json.dumps(_to_json(record)), mode=0o600, durable=False)


def read_record(attempt_dir: Path) -> ExternalRecord | None:
    """The record in the attempt's directory; None if there is none or it cannot be read."""
    try:
        data = json.loads((attempt_dir / RECORD_FILE).read_text(encoding="utf-8"))
        spec = data["spec"]
        return ExternalRecord(
            attempt_dir=attempt_dir,
            spec=SavedSpec(_argv(spec["submit"]), _argv(spec["poll"]), _argv(spec["cancel"]),
                           float(spec["poll_interval_seconds"])),
            task_env={str(k): str(v) for k, v in data["task_env"].items()},
            cwd=str(data["cwd"]),
            timeout=float(data["timeout"]),
            started_wall=float(data["started_wall"]),
            job_id=None if data["job_id"] is None else str(data["job_id"]),
            submit_pid=int(data["submit_pid"]),
            adapter=str(data.get("adapter", "external")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _to_json(record: ExternalRecord) -> dict[str, Any]:
    spec = record.spec
    return {
        "spec": {"submit": list(spec.submit), "poll": list(spec.poll),
                 "cancel": list(spec.cancel), "poll_interval_seconds": spec.poll_interval_seconds},
        "task_env": dict(record.task_env),
        "cwd": record.cwd,
        "timeout": record.timeout,
        "started_wall": record.started_wall,
        "job_id": record.job_id,
        "submit_pid": record.submit_pid,
        "adapter": record.adapter,
    }


def _argv(value: Sequence[Any]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("an argv list")
    return tuple(str(item) for item in value)
