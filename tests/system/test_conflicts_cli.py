"""`jobplane conflicts`, `hold` and `release` end to end: real processes, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support import jobplane, wait_until

ON_HOLD = 7


def test_conflicts_add_list_check_remove_and_the_held_job_starts_by_itself(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=4)
    addr, env = c.server.address, c.server.env()
    r = jobplane("conflicts", "add", "loads", "--exclusive", "--jobs", "class=load", "--server", addr, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = jobplane("conflicts", "add", "orders-w", "--lock", "orders", "--mode", "write", "--jobs", "name=load-*",
                 "--server", addr, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    listed = jobplane("conflicts", "list", "--server", addr, env=env).stdout
    assert "loads" in listed and "orders-w" in listed and "class=load" in listed
    release = tmp_path / "go"  # load-1 runs until the test lets it end (not for a time: CLIs start slowly under load)
    running = c.client.submit_job({"name": "load-1", "class": "load", "tasks": [
        {"name": "t", "command": ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.05; done"]}]})
    wait_until(lambda: c.client.get_job(running.id).state == 2, 15, "the first load to run")
    job_file = tmp_path / "load2.toml"
    job_file.write_text('name = "load-2"\nclass = "load"\n[[tasks]]\nname = "t"\ncommand = ["true"]\n')
    r = jobplane("conflicts", "check", str(job_file), "--server", addr, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "held" in r.stdout and f"job {running.id} load-1" in r.stdout
    watching = subprocess.Popen([sys.executable, "-m", "jobplane.client.cli", "submit", str(job_file), "--watch",
                                 "--server", addr], env={**os.environ, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    wait_until(lambda: any(j.spec.name == "load-2" and j.status == ON_HOLD for j in c.client.list_jobs()), 30,
               "load-2 held behind load-1")
    release.touch()
    out, _ = watching.communicate(timeout=60)
    assert watching.returncode == 0, out  # held, then started by itself once load-1 ended
    assert "ON_HOLD" in out
    r = jobplane("conflicts", "remove", "loads", "--server", addr, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    rules = json.loads(jobplane("conflicts", "list", "--server", addr, "-o", "json", env=env).stdout)
    rules = rules if isinstance(rules, list) else rules.get("rules", [])
    assert [rule["name"] for rule in rules] == ["orders-w"]
    r = jobplane("conflicts", "add", "bad", "--exclusive", "--jobs", "colour=blue", "--server", addr, env=env)
    assert r.returncode == 2 and "colour=blue" in r.stderr


def test_hold_and_release_from_the_cli(sqlite_cluster):
    c = sqlite_cluster
    addr, env = c.server.address, c.server.env()
    job = c.client.submit_job({"name": "later", "wait_for_providers": True,
                               "tasks": [{"name": "t", "command": ["true"]}]})
    r = jobplane("hold", job.id, "--reason", "month-end freeze", "--server", addr, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ON_HOLD" in r.stdout and "month-end freeze" in r.stdout
    c.add_agent("a", slots=1)
    wait_until(lambda: next(iter(c.client.list_tasks(job.id))).status == ON_HOLD, 30, "the task to be on hold")
    r = jobplane("release", job.id, "--server", addr, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert c.client.wait_job(job.id, timeout=20).state == 3
    r = jobplane("release", job.id, "--server", addr, env=env)
    assert r.returncode == 3 and "finished" in r.stderr  # FAILED_PRECONDITION: nothing to release
