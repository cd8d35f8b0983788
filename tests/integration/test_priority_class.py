"""The priority class on tasks, end to end: a policy rule that sets it (`property =
"priority_class"`) decides each task's class from the raw properties its attempt reported, under
the same policies as its status: alice's own policy for alice, the default for others. Shown by
`tasks get`, `tasks list -o wide` and their JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from jobplane.client import Client

ALICE_RULES = textwrap.dedent("""
    [[rules]]
    environment = "process"
    when = { exit_code = { range = [0, 0] } }
    property = "priority_class"
    value = "HIGH"

    [[rules]]
    environment = "process"
    when = { state = "exited" }
    property = "priority_class"
    value = "low"
""")


def jobplane(cluster, env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "jobplane.client.cli", *args, "--server", cluster.server.address],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_policy_rule_sets_the_priority_class_each_caller_sees_on_tasks(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    rules = tmp_path / "alice.toml"
    rules.write_text(ALICE_RULES)
    jobplane(c, c.server.env(), "policy", "set", "--user", "alice", str(rules))
    alice = {"JOBPLANE_TOKEN": c.client.create_token("submitter", user="alice").secret,
             "JOBPLANE_CA": str(c.server.ca)}
    c.add_agent("a")
    with Client.connect(c.server.address, token=alice["JOBPLANE_TOKEN"], ca=c.server.ca) as client:
        job = client.submit_job({"name": "two", "tasks": [{"name": "ok", "command": ["true"]},
                                                          {"name": "bad", "command": ["sh", "-c", "exit 3"]}]})
        client.wait_job(job.id, timeout=60)

    theirs = {t["name"]: t for t in json.loads(jobplane(c, alice, "tasks", "list", job.id, "-o", "json"))}
    assert {name: t["priority_class"] for name, t in theirs.items()} == {"ok": "HIGH", "bad": "LOW"}
    assert (theirs["ok"]["status"], theirs["bad"]["status"]) == ("SUCCESS", "FAILURE")
    wide = jobplane(c, alice, "tasks", "list", job.id, "-o", "wide").splitlines()
    column = wide[0].index("PRIORITY_CLASS")
    assert sorted(line[column:].split()[0] for line in wide[1:]) == ["HIGH", "LOW"]
    assert "PRIORITY_CLASS" not in jobplane(c, alice, "tasks", "list", job.id)
    shown = jobplane(c, alice, "tasks", "get", theirs["ok"]["id"])
    assert "Priority class  HIGH" in shown, shown

    # The admin has no policy of its own: the default policy in force has no rule for processes.
    admins = json.loads(jobplane(c, c.server.env(), "tasks", "list", job.id, "-o", "json"))
    assert [t["priority_class"] for t in admins] == ["", ""]
