"""What Slurm's job states and pending reasons mean in jobplane's vocabulary: the default
policy's rules for the `slurm` environment (policies.py puts them in order).

The agent reports Slurm's own words as raw properties: `State` (as squeue and sacct print it,
e.g. PENDING, TIMEOUT) and `Reason` (why a pending job waits, e.g. Resources, JobHeldUser).
The states are the JOB STATE CODES of squeue(1) (a superset of sacct's), the reasons those of
its JOB REASON CODES that say more than "waiting".
"""

from __future__ import annotations

# Every job state Slurm documents -> the normalized status.
STATES: dict[str, str] = {
    "PENDING": "WAITING",  # awaiting resource allocation (the reasons below refine it)
    "CONFIGURING": "WAITING",  # allocated, nodes not ready yet (e.g. booting): not running yet
    "RUNNING": "RUNNING",
    "COMPLETING": "RUNNING",  # some processes may still be active
    "RESIZING": "RUNNING",  # about to change size, still holds its allocation
    "SIGNALING": "RUNNING",  # being signalled, still running
    "STAGE_OUT": "RUNNING",  # staging out files after its script ended
    "COMPLETED": "SUCCESS",
    "FAILED": "FAILURE",  # non-zero exit code or another failure
    "TIMEOUT": "FAILURE",  # past its time limit
    "OUT_OF_MEMORY": "FAILURE",
    "NODE_FAIL": "FAILURE",
    "BOOT_FAIL": "FAILURE",  # its node could not be booted, and it was not requeued
    "DEADLINE": "FAILURE",  # could not finish before its --deadline
    "PREEMPTED": "FAILURE",  # preempted and not requeued (a requeued one shows REQUEUED)
    "CANCELLED": "CANCEL",
    "REVOKED": "CANCEL",  # a federation sibling removed because another cluster started it
    "REQUEUED": "RESTART",  # completing and being requeued (preempted, node failure, scontrol requeue)
    "REQUEUE_FED": "RESTART",
    "REQUEUE_HOLD": "ON_HOLD",  # requeued, and held until released
    "SPECIAL_EXIT": "ON_HOLD",  # requeued in a held state after a special exit value
    "RESV_DEL_HOLD": "ON_HOLD",  # held after its reservation was deleted
    "SUSPENDED": "ON_HOLD",  # execution suspended, CPUs released (preemption, scontrol suspend)
    "STOPPED": "ON_HOLD",  # execution stopped with SIGSTOP, CPUs retained
}

# Reasons a PENDING job waits that mean more than WAITING: held on purpose, or stuck until
# someone changes the job or the cluster. Every other reason (Resources, Priority, Dependency,
# ReqNodeNotAvail, a limit, ...) leaves it WAITING.
PENDING_REASONS: dict[str, str] = {
    "JobHeldUser": "ON_HOLD",  # scontrol hold by its user (or sbatch --hold)
    "JobHeldAdmin": "ON_HOLD",  # scontrol hold by an administrator
    "BeginTime": "ON_HOLD",  # not before its --begin time, as jobplane's own hold_until
    "DependencyNeverSatisfied": "INACTIVE",
    "PartitionDown": "INACTIVE",
    "PartitionInactive": "INACTIVE",
    "InvalidAccount": "INACTIVE",
    "InvalidQOS": "INACTIVE",
    "BadConstraints": "INACTIVE",
    "PartitionNodeLimit": "INACTIVE",
    "PartitionTimeLimit": "INACTIVE",
}

# How an attempt ended when the agent, not Slurm, decided it.
AGENT_ENDS: dict[str, str] = {
    "submit_failed": "FAILURE",  # sbatch refused the job
    "submit_interrupted": "FAILURE",  # the agent died while sbatch ran
    "poll_failed": "FAILURE",  # squeue and sacct kept failing
    "slurm_lost": "FAILURE",  # neither squeue nor sacct knows the job any more
}


def slurm_rules(agent_states: dict[str, str]) -> list[dict[str, object]]:
    """The default policy's rules for `slurm`, in order: the agent's own ends (cancelled,
    timed out, ... whatever Slurm said last), then pending reasons, then job states."""
    return [
        *({"environment": "slurm", "when": {"state": value}, "status": status}
          for value, status in (AGENT_ENDS | agent_states).items()),
        *({"environment": "slurm", "when": {"State": "PENDING", "Reason": reason}, "status": status}
          for reason, status in PENDING_REASONS.items()),
        *({"environment": "slurm", "when": {"State": value}, "status": status} for value, status in STATES.items()),
    ]
