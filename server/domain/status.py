"""The built-in normalization of jobplane's own states onto the vocabulary.
Configurable policies (default / group / user) replace this in a later step."""

from __future__ import annotations

from .model import JobState, ProviderState, Status, TaskState

_JOB = {
    JobState.QUEUED: Status.WAITING,
    JobState.RUNNING: Status.RUNNING,
    JobState.SUCCEEDED: Status.SUCCESS,
    JobState.FAILED: Status.FAILURE,
    JobState.CANCELLED: Status.CANCEL,
}

_TASK = {
    TaskState.BLOCKED: Status.WAITING,
    TaskState.QUEUED: Status.WAITING,
    TaskState.ASSIGNED: Status.WAITING,
    TaskState.RUNNING: Status.RUNNING,
    TaskState.SUCCEEDED: Status.SUCCESS,
    TaskState.FAILED: Status.FAILURE,
    TaskState.CANCELLED: Status.CANCEL,
}

_PROVIDER = {
    ProviderState.CONNECTING: Status.WAITING,
    ProviderState.ACTIVE: Status.RUNNING,
    ProviderState.SUSPECT: Status.UNKNOWN,
    ProviderState.LOST: Status.INACTIVE,
    ProviderState.REVOKED: Status.INACTIVE,
    ProviderState.STANDBY: Status.ON_HOLD,
    ProviderState.DRAINING: Status.ON_HOLD,
    ProviderState.DRAINED: Status.INACTIVE,
    ProviderState.STOPPED: Status.INACTIVE,
}

# Buckets of Job.counts, by normalized status.
COUNT_BUCKETS = {
    Status.WAITING: "waiting",
    Status.RESTART: "waiting",
    Status.ON_HOLD: "waiting",
    Status.INACTIVE: "waiting",
    Status.LATE_TO_START: "waiting",
    Status.RUNNING: "running",
    Status.RUNNING_LATE: "running",
    Status.SUCCESS: "success",
    Status.FAILURE: "failure",
    Status.CANCEL: "cancel",
}


def job_status(state: JobState) -> Status:
    return _JOB.get(state, Status.UNKNOWN)


def task_status(state: TaskState, attempt: int) -> Status:
    """A task waiting again after an attempt ended is RESTART, not WAITING."""
    if state in (TaskState.QUEUED, TaskState.ASSIGNED) and attempt >= 1:
        if state == TaskState.QUEUED or attempt > 1:
            return Status.RESTART
    return _TASK.get(state, Status.UNKNOWN)


def provider_status(state: ProviderState) -> Status:
    return _PROVIDER.get(state, Status.UNKNOWN)


# ----- jobplane's own raw properties --------------------------------------------------
# What policies see (environment "jobplane") where no environment reported anything.

def job_raw(state: JobState) -> dict[str, str]:
    return {"state": state.name}


def task_raw(state: TaskState, attempt: int) -> dict[str, str]:
    return {"state": state.name, "attempt": str(attempt)}


_OUTCOME_STATE = {1: TaskState.SUCCEEDED, 2: TaskState.FAILED, 3: TaskState.CANCELLED, 4: TaskState.FAILED}


def attempt_raw(number: int, started: bool, outcome: int) -> dict[str, str]:
    """An attempt the environment said nothing about: assigned, running or how it ended."""
    state = _OUTCOME_STATE.get(outcome) or (TaskState.RUNNING if started else TaskState.ASSIGNED)
    return task_raw(state, number)
