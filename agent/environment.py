"""The environment a task runs with: the agent's, the spec's, and the variables that tell the
task who it is and where it resumes from."""

from __future__ import annotations

import os

from jobplane.v1 import provider_pb2

from .checkpoint import CHECKPOINT_ENV


def agent_env() -> dict[str, str]:
    """The agent's environment as tasks inherit it (the agent reads it once, as it starts)."""
    env = dict(os.environ)
    env.pop(CHECKPOINT_ENV, None)  # the only state to resume from is the assignment's
    return env


def own_env(assignment: provider_pb2.Assignment) -> dict[str, str]:
    """The variables a task's spec and assignment add to the agent's environment."""
    env = dict(assignment.spec.env)
    env.pop(CHECKPOINT_ENV, None)
    return env | task_env(assignment)


def task_env(assignment: provider_pb2.Assignment) -> dict[str, str]:
    """The variables that tell a task who it is, and where it resumes from."""
    env = {
        "JOBPLANE_TASK_ID": assignment.task_id,
        "JOBPLANE_JOB_ID": assignment.job_id,
        "JOBPLANE_ATTEMPT": str(assignment.attempt),
        "JOBPLANE_TASK_NAME": assignment.task_name,
    }
    if assignment.checkpoint_json:
        env[CHECKPOINT_ENV] = assignment.checkpoint_json
    return env


def find_program(name: str, path: str | None = None) -> str | None:
    """The executable `name` as a shell finds it on `path` (os.pathsep-separated; default $PATH):
    the first entry's file that is executable and not a directory; None if none is. What
    shutil.which does, without loading shutil, which imports bz2 and lzma into the agent."""
    if path is None:
        path = os.environ.get("PATH", os.defpath)
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None
