"""The default policy on Slurm's raw values: the documentation's state list as the table, the
pending reasons that matter, and the attempts the agent ended itself."""

from __future__ import annotations

import pytest

from jobplane.server.domain.model import Status
from jobplane.server.domain.policies import normalize

# squeue(1) JOB STATE CODES (Slurm 22.05 and the current documentation; sacct's are a subset).
SLURM_STATES = {
    "BOOT_FAIL": Status.FAILURE, "CANCELLED": Status.CANCEL, "COMPLETED": Status.SUCCESS,
    "CONFIGURING": Status.WAITING, "COMPLETING": Status.RUNNING, "DEADLINE": Status.FAILURE,
    "FAILED": Status.FAILURE, "NODE_FAIL": Status.FAILURE, "OUT_OF_MEMORY": Status.FAILURE,
    "PENDING": Status.WAITING, "PREEMPTED": Status.FAILURE, "RUNNING": Status.RUNNING,
    "RESV_DEL_HOLD": Status.ON_HOLD, "REQUEUE_FED": Status.RESTART, "REQUEUE_HOLD": Status.ON_HOLD,
    "REQUEUED": Status.RESTART, "RESIZING": Status.RUNNING, "REVOKED": Status.CANCEL,
    "SIGNALING": Status.RUNNING, "SPECIAL_EXIT": Status.ON_HOLD, "STAGE_OUT": Status.RUNNING,
    "STOPPED": Status.ON_HOLD, "SUSPENDED": Status.ON_HOLD, "TIMEOUT": Status.FAILURE,
}


@pytest.mark.parametrize("state, status", SLURM_STATES.items())
def test_every_slurm_job_state_has_its_normalized_status(state, status):
    decision = normalize("slurm", {"JobId": "12", "State": state, "Reason": "None"}, user=None)
    assert decision.status == status, decision.reason
    assert decision.policy == "default"


@pytest.mark.parametrize("reason, status", [
    ("Resources", Status.WAITING), ("Priority", Status.WAITING), ("Dependency", Status.WAITING),
    ("ReqNodeNotAvail", Status.WAITING), ("QOSMaxJobsPerUserLimit", Status.WAITING), ("None", Status.WAITING),
    ("BeginTime", Status.ON_HOLD), ("JobHeldUser", Status.ON_HOLD), ("JobHeldAdmin", Status.ON_HOLD),
    ("DependencyNeverSatisfied", Status.INACTIVE), ("PartitionDown", Status.INACTIVE),
    ("InvalidAccount", Status.INACTIVE), ("PartitionTimeLimit", Status.INACTIVE),
])
def test_a_pending_jobs_reason_refines_waiting(reason, status):
    assert normalize("slurm", {"State": "PENDING", "Reason": reason}, user=None).status == status


def test_a_reason_matters_only_while_the_job_is_pending():
    assert normalize("slurm", {"State": "RUNNING", "Reason": "JobHeldUser"}, user=None).status == Status.RUNNING


@pytest.mark.parametrize("state, status", [
    ("cancelled", Status.CANCEL), ("timed_out", Status.FAILURE), ("agent_shutdown", Status.FAILURE),
    ("submit_failed", Status.FAILURE), ("submit_interrupted", Status.FAILURE), ("poll_failed", Status.FAILURE),
    ("slurm_lost", Status.FAILURE),
])
def test_what_the_agent_ended_wins_over_what_slurm_said_last(state, status):
    assert normalize("slurm", {"state": state, "State": "RUNNING"}, user=None).status == status


def test_an_unknown_slurm_state_is_unknown_not_guessed():
    assert normalize("slurm", {"State": "FROBNICATING"}, user=None).status == Status.UNKNOWN
