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


# An attempt that ended with no outcome: lost with its provider (engine.lose), its task continued
# elsewhere. No policy maps it: its status is UNKNOWN (how it ended is not known), not RUNNING.
LOST = "LOST"
LOST_RAW = "lost"  # the same, over the raw properties the agent's process and python adapters reported
_AGENT_ENVIRONMENTS = ("process", "python")


def attempt_raw(number: int, started: bool, outcome: int, ended: bool = False) -> dict[str, str]:
    """An attempt the environment said nothing about: assigned, running, how it ended, or
    lost (ended with no outcome)."""
    state = _OUTCOME_STATE.get(outcome)
    if state is None and ended:
        return {"state": LOST, "attempt": str(number)}
    return task_raw(state or (TaskState.RUNNING if started else TaskState.ASSIGNED), number)


def ended_attempt_raw(environment: str, raw: dict[str, str], outcome: int) -> dict[str, str]:
    """What an ended attempt's agent reported last, unless it ended with no outcome (lost with
    its provider): then its state says so, where the agent's adapters report one. An outside
    job's raw properties stay as they are: the next attempt follows that job (adoption.py)."""
    if outcome or environment not in _AGENT_ENVIRONMENTS:
        return raw
    return {**raw, "state": LOST_RAW}
