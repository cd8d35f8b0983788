"""Slurm tasks with a real server and agents, no Slurm needed: they go only to agents started
with --slurm, and a bad `slurm` field is refused naming it (and its line in the job file)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobplane.client import FailedPrecondition, InvalidArgument
from support import wait_until

SLURM_TASK = {"name": "sim", "slurm": {"wrap": "true"}}


def test_a_slurm_task_is_refused_when_no_agent_submits_to_slurm(sqlite_cluster):
    sqlite_cluster.add_agent("plain")
    with pytest.raises(FailedPrecondition, match="slurm"):
        sqlite_cluster.client.submit_job({"name": "j", "tasks": [SLURM_TASK]})


def test_a_slurm_task_waits_for_a_slurm_agent_instead_of_running_on_another(sqlite_cluster):
    sqlite_cluster.add_agent("plain", slots=4)
    job = sqlite_cluster.client.submit_job({"name": "j", "wait_for_providers": True, "tasks": [
        SLURM_TASK, {"name": "local", "command": ["true"]}]})
    wait_until(lambda: {t.name: t.state for t in sqlite_cluster.client.list_tasks(job.id)}["local"] == 5, 20,
               "the local task to succeed on the plain agent")
    tasks = {t.name: t for t in sqlite_cluster.client.list_tasks(job.id)}
    assert tasks["sim"].provider_id == "" and tasks["sim"].state == 2  # QUEUED: nowhere to go
    providers = {p.id: dict(p.labels) for p in sqlite_cluster.client.list_providers()}
    assert "slurm" not in providers["plain"]
    sqlite_cluster.client.cancel_job(job.id)


def test_an_agent_started_with_slurm_advertises_it(sqlite_cluster, tmp_path):
    sbatch = tmp_path / "bin" / "sbatch"
    sbatch.parent.mkdir()
    sbatch.write_text("#!/bin/sh\nexit 1\n")
    sbatch.chmod(0o755)
    sqlite_cluster.add_agent("login", extra=["--slurm"], env={"PATH": f"{sbatch.parent}:/usr/bin:/bin"})
    (provider,) = sqlite_cluster.client.list_providers()
    assert provider.labels["slurm"] == "true"


def test_an_agent_cannot_claim_slurm_without_sbatch(tmp_path):
    done = subprocess.run([sys.executable, "-m", "jobplane.agent", "--insecure", "--slurm"], capture_output=True,
                          text=True, env={"PATH": str(tmp_path)}, timeout=30)
    assert done.returncode == 2
    assert "--slurm: sbatch is not on the PATH" in done.stderr


def test_a_bad_slurm_field_is_named_with_its_line(sqlite_cluster, tmp_path):
    job_file = tmp_path / "sim.toml"
    job_file.write_text('name = "sim"\n\n[[tasks]]\nname = "simulate"\nenvironment = "slurm"\n'
                        'slurm = { script = "run.sh", time_limit = "ten minutes" }\n')
    with pytest.raises(InvalidArgument, match=r"spec.tasks\[0\].slurm.time_limit: 'ten minutes' is not a Slurm time"):
        sqlite_cluster.client.submit_job({"name": "j", "tasks": [
            {"name": "simulate", "slurm": {"script": "run.sh", "time_limit": "ten minutes"}}]})
    done = subprocess.run([sys.executable, "-m", "jobplane.client.cli", "submit", str(job_file)], capture_output=True,
                          text=True, env={**sqlite_cluster.server.env(), "PATH": "/usr/bin:/bin",
                                          "JOBPLANE_SERVER": sqlite_cluster.server.address}, timeout=30)
    assert done.returncode == 2
    assert f"{job_file}:6: tasks[0].slurm.time_limit: 'ten minutes' is not a Slurm time" in done.stderr
