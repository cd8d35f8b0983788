"""What events and states mean to a client: when a job is over; how long a watch may still run;
how to ask for a continuation plan."""

from __future__ import annotations

import time

from jobplane.v1 import continuation_pb2, event_pb2, job_pb2

TERMINAL_JOB_STATES = frozenset(
    {job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED}
)
# JOB events carry the JobState short name as raw_status.
TERMINAL_JOB_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


def is_job_end(event: event_pb2.Event, job_id: str) -> bool:
    """True for the event that says job `job_id` reached a terminal state."""
    return (
        event.kind == event_pb2.EVENT_KIND_JOB
        and event.job_id == job_id
        and event.raw_status in TERMINAL_JOB_STATUSES
    )


def is_finished(job: job_pb2.Job) -> bool:
    """True once the job succeeded, failed or was cancelled."""
    return job.state in TERMINAL_JOB_STATES


def is_last_end(event: event_pb2.Event, job: job_pb2.Job) -> bool:
    """Whether `event`, an end of `job` (is_job_end), is its end as it stands now, and not an
    end that a rerun (JobService.RerunJob) undid."""
    return is_finished(job) and job.end_time == event.time


class Deadline:
    """A time budget shared by the streams of one watch (None: no limit)."""

    def __init__(self, seconds: float | None) -> None:
        self._end = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self._end is None else max(0.0, self._end - time.monotonic())


def plan_request(provider_id: str, at: float | None) -> continuation_pb2.PlanContinuationRequest:
    """A PlanContinuation request; `at` (Unix seconds) replaces the server's clock for timing rules."""
    request = continuation_pb2.PlanContinuationRequest(provider_id=provider_id)
    if at is not None:
        request.at.FromNanoseconds(int(at * 1e9))
    return request


def fell_behind(error: Exception) -> bool:
    """Whether a RESOURCE_EXHAUSTED ending a watch means it fell behind (and may resume),
    rather than another limit such as the number of open streams."""
    return "fell behind" in str(error)
