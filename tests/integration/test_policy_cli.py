"""`jobplane policy set|get|test|delete` as an operator runs it against a real server:
versions, validation naming the rule, per-user mapping, a get that set reads back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

ALICE_RULES = textwrap.dedent("""
    [[rules]]
    environment = "external"
    when = { queue = "PRINT", status = "ABEND" }
    status = "ON_HOLD"
""")
BAD_RULES = ALICE_RULES + textwrap.dedent("""
    [[rules]]
    environment = "external"
    when = { status = "S0C7" }
    status = "EXPLODED"
""")


def jobplane(cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobplane.client.cli", *args, "--server", cluster.server.address],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **cluster.server.env()})


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def set_alice(c, tmp_path) -> None:
    rules = tmp_path / "alice.toml"
    rules.write_text(ALICE_RULES)
    ok(jobplane(c, "policy", "set", "--user", "alice", str(rules)))


def decided(c, user: str) -> dict:
    return json.loads(ok(jobplane(c, "policy", "test", "--env", "external", "--user", user,
                                  "queue=PRINT", "status=ABEND", "-o", "json")))


def test_each_set_is_a_new_version_and_a_bad_rule_is_refused_by_name(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    rules = tmp_path / "alice.toml"
    rules.write_text(ALICE_RULES)
    assert "version 1, 1 rule" in ok(jobplane(c, "policy", "set", "--user", "alice", str(rules)))
    assert json.loads(ok(jobplane(c, "policy", "set", "--user", "alice", str(rules), "-o", "json")))["version"] == 2
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_RULES)
    refused = jobplane(c, "policy", "set", "--user", "alice", str(bad))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    line = BAD_RULES.splitlines().index('status = "EXPLODED"') + 1
    assert f"{bad}:{line}: rules[1].status" in refused.stderr and "EXPLODED" in refused.stderr, refused.stderr
    got = json.loads(ok(jobplane(c, "policy", "get", "--user", "alice", "-o", "json")))
    assert got["version"] == 2, "the refused file stored nothing"


def test_policy_test_shows_the_users_own_mapping(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    assert decided(c, "alice")["status"] == "FAILURE", "the default before alice has a policy"
    set_alice(c, tmp_path)
    alice = decided(c, "alice")
    assert (alice["status"], alice["policy"], alice["rule_index"]) == ("ON_HOLD", "user alice", 0)
    shown = ok(jobplane(c, "policy", "test", "--env", "external", "--user", "alice", "queue=PRINT", "status=ABEND"))
    assert "ON_HOLD" in shown and "user alice" in shown
    bob = decided(c, "bob")
    assert (bob["status"], bob["policy"]) == ("FAILURE", "default"), "only alice's mapping changed"
    elsewhere = json.loads(ok(jobplane(c, "policy", "test", "--env", "external", "--user", "alice",
                                       "queue=EXEC", "status=ABEND", "-o", "json")))
    assert elsewhere["policy"] == "default", "both properties must match alice's rule"


def test_get_prints_what_set_reads_back_and_delete_removes_it(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    set_alice(c, tmp_path)
    got = json.loads(ok(jobplane(c, "policy", "get", "--user", "alice", "-o", "json")))
    assert got["document"]["rules"] == [{"environment": "external", "when": {"queue": "PRINT", "status": "ABEND"},
                                         "status": "ON_HOLD"}]
    again = tmp_path / "again.toml"
    again.write_text(ok(jobplane(c, "policy", "get", "--user", "alice")))
    assert "version 2, 1 rule" in ok(jobplane(c, "policy", "set", "--user", "alice", str(again)))
    regot = json.loads(ok(jobplane(c, "policy", "get", "--user", "alice", "-o", "json")))
    assert regot["document"] == got["document"], "what get prints, set reads back unchanged"

    ok(jobplane(c, "policy", "delete", "--user", "alice"))
    gone = jobplane(c, "policy", "get", "--user", "alice")
    assert gone.returncode == 3 and "no user policy 'alice'" in gone.stderr, gone.stderr
    assert decided(c, "alice")["policy"] == "default"


def test_the_readme_example_copies_the_default_to_a_user_and_edits_it(sqlite_cluster, tmp_path):
    """README, as written: `jobplane policy get --default > mine.toml`, edit, then
    `jobplane policy set --user alice mine.toml` (the file names no policy, so any may take it)."""
    c = sqlite_cluster
    env = {**os.environ, **c.server.env(), "JOBPLANE_SERVER": c.server.address}
    cli = f"{sys.executable} -m jobplane.client.cli"

    def shell(line: str) -> str:
        done = subprocess.run(line.replace("jobplane ", f"{cli} ", 1), shell=True, cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{line}: {done.stdout}{done.stderr}"
        return done.stdout

    shell("jobplane policy get --default > mine.toml")
    mine = tmp_path / "mine.toml"
    mine.write_text(mine.read_text().replace('when = { status = { glob = "ABEND*" } }\nstatus = "FAILURE"',
                                             'when = { status = { glob = "ABEND*" } }\nstatus = "ON_HOLD"', 1))
    assert 'status = "ON_HOLD"' in mine.read_text(), "the edit found the ABEND rule"
    assert "version 1" in shell("jobplane policy set --user alice mine.toml")
    alice = json.loads(ok(jobplane(c, "policy", "test", "--env", "external", "--user", "alice", "status=Abend",
                                   "-o", "json")))
    assert (alice["status"], alice["policy"]) == ("ON_HOLD", "user alice")
    assert decided(c, "bob")["status"] == "FAILURE", "the default itself is unchanged"


def test_policy_test_shows_the_priority_class_a_users_policy_gives(sqlite_cluster, tmp_path):
    """priority_class, another property of the vocabulary, end to end: a rule in a policy file,
    stored by set, decided by test (after the built-in default's reading)."""
    c = sqlite_cluster
    before = json.loads(ok(jobplane(c, "policy", "test", "--env", "external", "--user", "alice", "queue=PRINT",
                                    "-o", "json")))
    assert [(p["name"], p.get("value", "")) for p in before["properties"]] == [("priority_class", "")]
    rules = tmp_path / "alice.toml"
    rules.write_text(textwrap.dedent("""
        [[rules]]
        environment = "external"
        when = { queue = "PRINT" }
        property = "priority_class"
        value = "high"
    """))
    ok(jobplane(c, "policy", "set", "--user", "alice", str(rules)))
    got = json.loads(ok(jobplane(c, "policy", "get", "--user", "alice", "-o", "json")))
    assert got["document"]["rules"][0] == {"environment": "external", "when": {"queue": "PRINT"},
                                           "property": "priority_class", "value": "HIGH"}
    after = json.loads(ok(jobplane(c, "policy", "test", "--env", "external", "--user", "alice", "queue=PRINT",
                                   "status=EXECUTING", "-o", "json")))
    (prop,) = after["properties"]
    assert (prop["value"], prop["policy"], prop.get("rule_index", 0)) == ("HIGH", "user alice", 0)
    assert after["status"] == "RUNNING", "the status still comes from the default"
    shown = ok(jobplane(c, "policy", "test", "--env", "external", "--user", "alice", "queue=PRINT"))
    assert "Priority class  HIGH (user alice rules[0])" in shown, shown
    night = json.loads(ok(jobplane(c, "policy", "test", "--env", "external", "queue=night", "-o", "json")))
    assert (night["properties"][0]["value"], night["properties"][0]["policy"]) == ("LOW", "default")
