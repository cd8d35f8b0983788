"""The default policy is stored like the others: the built-in rules are version 1, an operator
stores new versions (`jobplane policy set --default`), every version can be read back, and the
version in force decides how tasks end, for their jobs and `after` dependents, across a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib

import pytest
from google.protobuf import json_format

from support import AgentProc, ServerProc, wait_until

SUCCEEDED, FAILED = 3, 4

# A tool whose exit code 3 means "nothing to do": this site wants that to count as a success.
EXIT_3_IS_FINE = textwrap.dedent("""
    [[rules]]
    environment = "process"
    when = { state = "exited", exit_code = 3 }
    status = "SUCCESS"
""")


def replica(workdir, url: str, token: str = "") -> ServerProc:
    workdir.mkdir()
    if token:  # the admin token is the database's, made by the first replica
        (workdir / "data").mkdir()
        (workdir / "data" / "admin.token").write_text(token)
    return ServerProc(workdir, url, extra=["--lease", "2"])


def jobplane(server, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobplane.client.cli", *args, "--server", server.address],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **(env or server.env())})


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def versions(server) -> list[tuple[int, str, bool]]:
    listed = json.loads(ok(jobplane(server, "policy", "history", "--default", "-o", "json")))
    return [(v["version"], v.get("updated_by", ""), v.get("deleted", False)) for v in listed]


def run_exit_3_then_marker(cluster, marker) -> int:
    """A job whose first task exits 3 and whose second, after it, writes `marker`; its end state."""
    job = cluster.client.submit_job({"name": "exit3", "tasks": [
        {"name": "first", "command": ["sh", "-c", "exit 3"]},
        {"name": "then", "command": ["sh", "-c", f"touch {marker}"], "after": ["first"]}]})
    return cluster.client.wait_job(job.id, timeout=60).state


def test_an_operator_edits_the_default_policy_and_it_decides_how_tasks_end(cluster, tmp_path):
    c = cluster
    assert versions(c.server) == [(1, "", False)], "the built-in rules are version 1"
    builtin = json.loads(ok(jobplane(c.server, "policy", "get", "--default", "-o", "json")))

    edited = tmp_path / "default.toml"
    edited.write_text(EXIT_3_IS_FINE + ok(jobplane(c.server, "policy", "get", "--default")))
    assert "version 2" in ok(jobplane(c.server, "policy", "set", "--default", str(edited)))
    assert versions(c.server) == [(2, "admin", False), (1, "", False)]
    first = json.loads(ok(jobplane(c.server, "policy", "get", "--default", "--version", "1", "-o", "json")))
    assert first["document"] == builtin["document"], "version 1 still reads as the built-in rules"
    tested = json.loads(ok(jobplane(c.server, "policy", "test", "--env", "process", "state=exited", "exit_code=3",
                                    "-o", "json")))
    assert (tested["status"], tested["policy"], tested["rule_index"]) == ("SUCCESS", "default", 0)

    c.add_agent("a")
    assert run_exit_3_then_marker(c, tmp_path / "one") == SUCCEEDED
    assert (tmp_path / "one").exists(), "the dependent ran: the task succeeded by the edited default"

    c.server.kill()  # the stored version is in force after a restart too
    c.start_server()
    c.add_agent("b")
    assert run_exit_3_then_marker(c, tmp_path / "two") == SUCCEEDED

    assert "built-in rules again" in ok(jobplane(c.server, "policy", "delete", "--default"))
    assert versions(c.server) == [(3, "admin", True), (2, "admin", False), (1, "", False)]
    assert run_exit_3_then_marker(c, tmp_path / "three") == FAILED
    assert not (tmp_path / "three").exists(), "back to the built-in rules: exit 3 fails, the dependent never runs"
    again = jobplane(c.server, "policy", "delete", "--default")
    assert again.returncode == 3 and "built-in rules already" in again.stderr, again.stderr


def test_only_operators_change_the_default_policy_and_old_versions_are_named(cluster, tmp_path):
    c = cluster
    bob = {"JOBPLANE_TOKEN": c.client.create_token("submitter", user="bob").secret, "JOBPLANE_CA": str(c.server.ca)}
    rules = tmp_path / "mine.toml"
    rules.write_text(EXIT_3_IS_FINE)
    refused = jobplane(c.server, "policy", "set", "--default", str(rules), env=bob)
    assert refused.returncode == 3 and "changing the default policy needs the role operator or admin" in refused.stderr
    assert versions(c.server) == [(1, "", False)], "nothing was stored"
    ok(jobplane(c.server, "policy", "set", "--user", "bob", str(rules), env=bob))
    missing = jobplane(c.server, "policy", "get", "--user", "bob", "--version", "7", env=bob)
    assert missing.returncode == 3 and "has no version 7; it has versions 1 to 1" in missing.stderr, missing.stderr
    ok(jobplane(c.server, "policy", "delete", "--user", "bob", env=bob))
    shown = ok(jobplane(c.server, "policy", "history", "--user", "bob", env=bob))
    assert [line.split()[0] for line in shown.splitlines()[1:]] == ["2", "1"] and "deleted" in shown, shown
    deleted = ok(jobplane(c.server, "policy", "get", "--user", "bob", "--version", "2", env=bob))
    assert "this version deleted the policy" in deleted and "[[rules]]" not in deleted, deleted


@pytest.mark.postgres
def test_the_default_policy_set_through_a_follower_rules_the_leader(tmp_path, pg_url):
    """SetPolicy is passed on to the leader, whose engine decides by it; ListPolicyVersions and
    GetPolicy are answered by the follower itself, once the leader's POLICY event reaches it."""
    a = replica(tmp_path / "a", pg_url)
    b = replica(tmp_path / "b", pg_url, token=a.token)
    agent = AgentProc(tmp_path, a, "w1")
    try:
        with b.client(timeout=10) as follower, a.client(timeout=10) as leader:
            rules = tomllib.loads(EXIT_3_IS_FINE)["rules"] + list(
                json_format.MessageToDict(follower.get_policy("default").document)["rules"])
            assert follower.set_policy("default", "", {"rules": rules}).version == 2
            wait_until(lambda: [v.version for v in follower.list_policy_versions("default")] == [2, 1], 20,
                       "the follower to read the new version")
            assert follower.get_policy("default", version=1).version == 1
            assert leader.get_policy("default").version == 2
            job = follower.submit_job({"name": "exit3", "wait_for_providers": True,
                                       "tasks": [{"name": "t", "command": ["sh", "-c", "exit 3"]}]})
            assert follower.wait_job(job.id, timeout=60).state == SUCCEEDED, "the leader's engine took the new rules"
    finally:
        agent.stop()
        for server in (a, b):
            server.stop()
