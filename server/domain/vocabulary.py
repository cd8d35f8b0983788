"""The default (enterprise) policy's rules, as data: what the built-in adapters, jobplane's own
states, mainframe and Unix schedulers and Slurm (slurm_states.py) report, and the normalized
status each means. policies.py parses them into DEFAULT_POLICY (every rule ignoring case)."""

from __future__ import annotations

from collections.abc import Mapping

from .slurm_states import slurm_rules


def _states(environment: str, property_name: str, mapping: Mapping[str, str]) -> list[dict[str, object]]:
    """One rule per raw value: {value: status}."""
    return [{"environment": environment, "when": {property_name: value}, "status": status}
            for value, status in mapping.items()]


def _values(environment: str, raw_name: str, property_name: str, mapping: Mapping[str, str]) -> list[dict[str, object]]:
    """One rule per raw value of `raw_name`: {raw value: value of `property_name`}."""
    return [{"environment": environment, "when": {raw_name: raw}, "property": property_name, "value": value}
            for raw, value in mapping.items()]


PRIORITY_CLASS = "priority_class"

# How an attempt ended, as the agent reports it for both built-in adapters.
_AGENT_STATES = {
    "queued": "WAITING", "running": "RUNNING",
    "cancelled": "CANCEL", "timed_out": "FAILURE", "failed_to_start": "FAILURE",
    "agent_shutdown": "FAILURE", "agent_error": "FAILURE",
    "prerequisite_missing": "WAITING",  # the server places the task on another machine
    "unknown": "FAILURE",  # ended while the agent was away; the server counts it as failed
    "terminated": "FAILURE",  # the server ended it at its hard timeout
}

DEFAULT_RULES: list[dict[str, object]] = [
    # process: state + exit_code (or signal)
    {"environment": "process", "when": {"state": "exited", "exit_code": {"range": [0, 0]}}, "status": "SUCCESS"},
    *_states("process", "state", {"exited": "FAILURE", "signaled": "FAILURE", **_AGENT_STATES}),
    # python: state + exception_type
    {"environment": "python", "when": {"state": "raised", "exception_type": "KeyboardInterrupt"},
     "status": "CANCEL"},  # interrupted from outside rather than failing of its own accord
    *_states("python", "state", {"returned": "SUCCESS", "raised": "FAILURE", "crashed": "FAILURE", **_AGENT_STATES}),
    # jobplane's own task and job states; a task queued again after an attempt is restarting
    # (as status.task_status has it).
    {"environment": "jobplane", "when": {"state": "QUEUED", "attempt": {"range": [1, None]}}, "status": "RESTART"},
    {"environment": "jobplane", "when": {"state": "ASSIGNED", "attempt": {"range": [2, None]}}, "status": "RESTART"},
    *_states("jobplane", "state", {
        "BLOCKED": "WAITING", "QUEUED": "WAITING", "ASSIGNED": "WAITING", "RUNNING": "RUNNING",
        "SUCCEEDED": "SUCCESS", "FAILED": "FAILURE", "CANCELLED": "CANCEL"}),
    # external: attempts the agent ended (cancelled, timed out, …) whatever the scheduler said last
    *_states("external", "state", {"submit_failed": "FAILURE", "submit_interrupted": "FAILURE",
                                   "poll_failed": "FAILURE", **_AGENT_STATES}),
    # external, mainframe style (JES, Control-M, CA-7): status, often with a specific code such as S0C7
    *_states("external", "status", {
        "ENDED OK": "SUCCESS", "ENDED NOTOK": "FAILURE", "ENDED NOT OK": "FAILURE", "CC 0000": "SUCCESS",
        "JCL ERROR": "FAILURE", "REQUEUED": "RESTART", "RERUN": "RESTART", "HELD": "ON_HOLD",
        "EXECUTING": "RUNNING", "AWAITING EXECUTION": "WAITING", "WAIT CONDITION": "WAITING",
        "WAIT TIME": "WAITING", "WAIT RESOURCE": "WAITING", "WAIT HOST": "WAITING", "WAIT USER": "ON_HOLD",
        "WAIT CONFIRMATION": "ON_HOLD", "DISABLED": "INACTIVE", "INACTIVE": "INACTIVE"}),
    {"environment": "external", "when": {"status": {"glob": "ABEND*"}}, "status": "FAILURE"},
    {"environment": "external", "when": {"status": {"glob": "CC *"}}, "status": "FAILURE"},  # after CC 0000
    # external, Unix-scheduler style (cron wrappers, LSF, PBS, SGE, Airflow): status + exit_code
    {"environment": "external", "when": {"status": "EXITED", "exit_code": {"range": [0, 0]}}, "status": "SUCCESS"},
    *_states("external", "status", {
        "EXITED": "FAILURE", "EXIT": "FAILURE", "DONE": "SUCCESS", "COMPLETED": "SUCCESS", "SUCCEEDED": "SUCCESS",
        "SUCCESS": "SUCCESS", "FINISHED": "SUCCESS", "FAILED": "FAILURE", "FAILURE": "FAILURE", "ERROR": "FAILURE",
        "TIMEOUT": "FAILURE", "TIMED OUT": "FAILURE", "SUSPENDED": "ON_HOLD", "PSUSP": "ON_HOLD",
        "USUSP": "ON_HOLD", "SSUSP": "ON_HOLD", "HOLD": "ON_HOLD", "ON HOLD": "ON_HOLD", "PENDING": "WAITING",
        "PEND": "WAITING", "QUEUED": "WAITING", "SCHEDULED": "WAITING", "WAITING": "WAITING",
        "RUNNING": "RUNNING", "RUN": "RUNNING", "STARTED": "RUNNING", "RETRY": "RESTART", "RESTARTING": "RESTART",
        "UP_FOR_RETRY": "RESTART", "KILLED": "CANCEL", "CANCELLED": "CANCEL", "CANCELED": "CANCEL",
        "ABORTED": "CANCEL"}),
    # external, with a status none of the rules above knows (or none at all): once it is done,
    # or whenever it reports only an exit code, the exit code decides. A running job's unknown
    # status stays UNKNOWN.
    {"environment": "external", "when": {"state": "external_done", "exit_code": {"range": [0, 0]}},
     "status": "SUCCESS"},
    {"environment": "external", "when": {"state": "external_done"}, "status": "FAILURE"},
    {"environment": "external", "when": {"exit_code": {"range": [0, 0]}}, "status": "SUCCESS"},
    {"environment": "external", "when": {"exit_code": {"range": [None, None]}}, "status": "FAILURE"},
    # slurm: Slurm's job states and pending reasons (slurm_states.py)
    *slurm_rules(_AGENT_STATES),
    # The priority class (another normalized property), from the scheduler's own words: Slurm's
    # QOS (its default QOS is "normal"), LSF's stock queues (lsb.queues: priority, normal, night,
    # idle), PBS/SGE-style queue names.
    *_values("slurm", "QOS", PRIORITY_CLASS, {"high": "HIGH", "urgent": "HIGH", "expedite": "HIGH",
                                               "normal": "NORMAL", "low": "LOW", "scavenger": "LOW",
                                               "standby": "LOW"}),
    *_values("external", "queue", PRIORITY_CLASS, {"priority": "HIGH", "high": "HIGH", "urgent": "HIGH",
                                                    "normal": "NORMAL", "batch": "NORMAL", "night": "LOW",
                                                    "idle": "LOW", "low": "LOW"}),
]

# Raw values come in every case ("Abend", "JCL Error", "Completed"): the built-in rules ignore it.


__all__ = ["DEFAULT_RULES"]
