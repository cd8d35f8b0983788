"""The Slurm commands the agent runs, with their output formats pinned, and what their output
says: `sbatch --parsable`, `squeue --noheader -O ...`, `sacct --noheader --parsable2 -X` and
`scancel`. Pure functions, so the parsing is tested without a cluster.

A job's raw properties use Slurm's own names, whichever command saw it: JobId, ArrayJobId,
ArrayTaskId, State, Reason, ExitCode and DerivedExitCode (as sacct prints them, "EXIT:SIGNAL"),
Partition and NodeList.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

SBATCH, SQUEUE, SACCT, SCANCEL = "sbatch", "squeue", "sacct", "scancel"
# Where a job's output goes, relative to its working directory (the task's cwd); %j is the
# job id (an array element's own).
OUTPUT, ERROR = "slurm-%j.out", "slurm-%j.err"

# squeue -O field -> raw property. `State` comes from %T, the long form.
_SQUEUE_FIELDS = (("JobID", "JobId"), ("ArrayJobID", "ArrayJobId"), ("ArrayTaskID", "ArrayTaskId"),
                  ("State", "State"), ("Reason", "Reason"), ("exit_code", "ExitCode"),
                  ("DerivedEC", "DerivedExitCode"), ("Partition", "Partition"), ("NodeList", "NodeList"))
# sacct --format fields, in order (JobID is "ARRAYJOB_TASK" for an array element).
_SACCT_FIELDS = ("JobIDRaw", "JobID", "State", "Reason", "ExitCode", "DerivedExitCode", "Partition", "NodeList")
_DELIMITER = "|"
_NO_ARRAY = "N/A"

# Job states after which Slurm does nothing more with the job (squeue(1) JOB STATE CODES);
# every other state may still change. A job being requeued shows REQUEUED, not these.
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "PREEMPTED",
                          "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED"})
OWN_ENDINGS = frozenset({"COMPLETED", "FAILED"})  # final states a job reaches by itself


class SlurmJob(Protocol):
    """What sbatch_argv needs of a job_pb2.SlurmSpec."""

    script: str
    args: Sequence[str]
    wrap: str
    partition: str
    time_limit: str
    cpus: int
    mem: str
    array: str
    account: str
    qos: str
    extra_args: Sequence[str]


def sbatch_argv(spec: SlurmJob, *, name: str, comment: str = "") -> list[str]:
    """`sbatch --parsable ...` for the spec; run it in the task's cwd with its environment."""
    argv = [SBATCH, "--parsable", f"--job-name={name}", f"--output={OUTPUT}", f"--error={ERROR}"]
    options = (("--partition", spec.partition), ("--time", spec.time_limit), ("--mem", spec.mem),
               ("--account", spec.account), ("--qos", spec.qos), ("--array", spec.array),
               ("--cpus-per-task", str(spec.cpus) if spec.cpus else ""), ("--comment", comment))
    argv += [f"{option}={value}" for option, value in options if value]
    argv += list(spec.extra_args)
    if spec.wrap:
        return [*argv, f"--wrap={spec.wrap}"]
    return [*argv, spec.script, *spec.args]


def parse_sbatch(out: str) -> str:
    """The job id `sbatch --parsable` printed ("ID" or "ID;CLUSTER"); ValueError if none."""
    lines = out.strip().splitlines()
    job_id = lines[-1].split(";", 1)[0].strip() if lines else ""
    if not job_id.isdigit():
        raise ValueError(f"sbatch --parsable printed no job id: {out.strip()[:200]!r}")
    return job_id


def squeue_argv(job_ids: Iterable[str]) -> list[str]:
    """One squeue call for these jobs, in any state it still knows (finished ones too, for
    MinJobAge), one line per job."""
    fields = ",".join(f"{name}:{_DELIMITER}" for name, _ in _SQUEUE_FIELDS)
    return [SQUEUE, "--noheader", "--states=all", f"--jobs={','.join(job_ids)}", f"--Format={fields}"]


def parse_squeue(out: str) -> dict[str, dict[str, str]]:
    """Job id -> raw properties, from squeue_argv's output."""
    jobs = {}
    for line in out.splitlines():
        values = line.split(_DELIMITER)
        if len(values) < len(_SQUEUE_FIELDS):
            continue
        raw = {key: value.strip() for (_, key), value in zip(_SQUEUE_FIELDS, values)}
        raw["ExitCode"], raw["DerivedExitCode"] = (_from_wait_status(raw["ExitCode"]),
                                                   _from_wait_status(raw["DerivedExitCode"]))
        jobs[raw["JobId"]] = raw
    return jobs


def sacct_argv(job_ids: Iterable[str]) -> list[str]:
    """One sacct call for these jobs (their allocations, not their steps), from the accounting
    database: what is left of a job once slurmctld has forgotten it."""
    return [SACCT, "--noheader", "--parsable2", "--allocations", f"--jobs={','.join(job_ids)}",
            f"--format={','.join(_SACCT_FIELDS)}"]


def parse_sacct(out: str) -> dict[str, dict[str, str]]:
    """Job id -> raw properties, from sacct_argv's output; the last record of a job wins (a
    requeued job has one per run)."""
    jobs = {}
    for line in out.splitlines():
        values = line.split(_DELIMITER)
        if len(values) < len(_SACCT_FIELDS):
            continue
        row = dict(zip(_SACCT_FIELDS, (value.strip() for value in values)))
        array_job, _, array_task = row["JobID"].partition("_")
        jobs[row["JobIDRaw"]] = {
            "JobId": row["JobIDRaw"], "ArrayJobId": array_job, "ArrayTaskId": array_task or _NO_ARRAY,
            "State": row["State"].split(" ", 1)[0],  # "CANCELLED by 0" -> CANCELLED
            "Reason": row["Reason"], "ExitCode": row["ExitCode"], "DerivedExitCode": row["DerivedExitCode"],
            "Partition": row["Partition"],
            "NodeList": "" if row["NodeList"] == "None assigned" else row["NodeList"],
        }
    return jobs


def scancel_argv(job_id: str) -> list[str]:
    return [SCANCEL, job_id]


def unknown_job(message: str) -> bool:
    """Whether squeue failed only because it knows none of the jobs asked for (it says so
    with an error when asked for one job that slurmctld has forgotten)."""
    return "Invalid job id" in message


@dataclass(frozen=True)
class Ending:
    """How a job in a final state ended, in jobplane's terms."""

    succeeded: bool
    exit_code: int | None
    signal: int | None
    error: str


def ending(raw: Mapping[str, str]) -> Ending:
    """The verdict on a job whose State is final: COMPLETED is success, anything else a
    failure described in Slurm's words (state, exit code or signal, reason)."""
    state, job = raw.get("State", ""), raw.get("JobId", "?")
    code, signal = _exit_code(raw.get("ExitCode", ""))
    if state == "COMPLETED" and not code and not signal:
        return Ending(True, code, signal, "")
    what = [f"Slurm job {job} ended {state}"]
    if signal:
        what.append(f"killed by signal {signal}")
    elif code is not None:
        what.append(f"exit code {code}")
    reason = raw.get("Reason", "")
    if reason and reason != "None":
        what.append(f"reason {reason}")
    # An exit code is the job's own verdict only when it ended by itself (COMPLETED or FAILED);
    # in TIMEOUT, CANCELLED, PREEMPTED, ... Slurm ended it, and a script killed by SIGTERM may
    # exit 143: the task's reason must then name Slurm's state, not "exited with code 143".
    own = state in OWN_ENDINGS and not signal
    return Ending(False, code if own else None, signal, ", ".join(what))


def _exit_code(text: str) -> tuple[int | None, int | None]:
    """("3:0") -> (3, None); ("0:15") -> (0, 15); nonsense -> (None, None)."""
    code, _, signal = text.partition(":")
    try:
        return int(code), (int(signal) or None) if signal else None
    except ValueError:
        return None, None


def _from_wait_status(text: str) -> str:
    """squeue prints a wait status (768); sacct "EXIT:SIGNAL" (3:0): the latter for both."""
    try:
        status = int(text)
    except ValueError:
        return text
    return f"{(status >> 8) & 0xFF}:{status & 0x7F}"
