"""Helper properties on the messages the SDK returns, for the questions asked most.

The SDK returns the `jobplane.v1` messages themselves (so they print, compare, serialize and
travel as protobuf does); importing `jobplane.client` adds these read-only properties to them:

    job.finished / job.succeeded / job.failed / job.cancelled    # from job.state
    job.status_name, job.state_name                              # "SUCCESS", "SUCCEEDED": as the CLI shows them
    job.counts                                                   # (a field) TaskCounts: total, waiting, running, ...
    job.counts.done, job.counts.as_dict()                        # tasks over; {"SUCCESS": 3, "FAILURE": 1, ...}
    task.finished / task.succeeded / task.failed / task.cancelled
    task.status_name, task.state_name
    task.output, task.errors                                     # the last attempt's stdout and stderr (tails)
    task.result, task.checkpoint                                 # result_json / checkpoint_json, parsed (None if unset)

They are computed from the message's fields and never call the server.
"""

from __future__ import annotations

import json
from typing import Any

from jobplane.v1 import job_pb2, status_pb2, task_pb2

JOB_ENDS = {"succeeded": job_pb2.JOB_STATE_SUCCEEDED, "failed": job_pb2.JOB_STATE_FAILED,
            "cancelled": job_pb2.JOB_STATE_CANCELLED}
TASK_ENDS = {"succeeded": task_pb2.TASK_STATE_SUCCEEDED, "failed": task_pb2.TASK_STATE_FAILED,
             "cancelled": task_pb2.TASK_STATE_CANCELLED}
COUNTED = {"WAITING": "waiting", "RUNNING": "running", "SUCCESS": "success", "FAILURE": "failure", "CANCEL": "cancel"}


def short_name(enum: Any, value: int) -> str:
    """`short_name(job_pb2.JobState, 3)` -> "SUCCEEDED" (`enum`: the enum or its descriptor);
    "" for the zero value, the number if unknown."""
    names = getattr(enum, "DESCRIPTOR", enum).values_by_number
    if value == 0:
        return ""
    if value not in names:
        return str(value)
    return names[value].name.removeprefix(names[0].name.removesuffix("UNSPECIFIED"))


def _parsed(field: str) -> property:
    def value(message: Any) -> Any:
        text = getattr(message, field)
        return json.loads(text) if text else None
    return property(value, doc=f"`{field}` parsed (None when empty)")


def _state_is(state: int) -> property:
    return property(lambda message: message.state == state)


def _install(kind: Any, ends: dict[str, int], state_enum: Any) -> None:
    for name, state in ends.items():
        setattr(kind, name, _state_is(state))
    kind.finished = property(lambda message: message.state in ends.values(), doc="succeeded, failed or cancelled")
    kind.status_name = property(lambda message: short_name(status_pb2.NormalizedStatus, message.status),
                                doc='the normalized status as the CLI shows it: "SUCCESS", "ON_HOLD", ...')
    kind.state_name = property(lambda message: short_name(state_enum, message.state),
                               doc='the raw state as the CLI shows it: "RUNNING", "SUCCEEDED", ...')


def install() -> None:
    """Add the helper properties to the message classes (idempotent)."""
    _install(job_pb2.Job, JOB_ENDS, job_pb2.JobState)
    _install(task_pb2.Task, TASK_ENDS, task_pb2.TaskState)
    task_pb2.Task.output = property(lambda task: task.stdout_tail, doc="the latest attempt's stdout (its tail)")
    task_pb2.Task.errors = property(lambda task: task.stderr_tail, doc="the latest attempt's stderr (its tail)")
    task_pb2.Task.result = _parsed("result_json")
    task_pb2.Task.checkpoint = _parsed("checkpoint_json")
    job_pb2.TaskCounts.done = property(lambda counts: counts.success + counts.failure + counts.cancel,
                                       doc="tasks that are over: succeeded, failed or cancelled")
    job_pb2.TaskCounts.as_dict = lambda counts: {status: getattr(counts, field) for status, field in COUNTED.items()}
