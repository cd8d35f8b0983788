"""The `jobplane` CLI end to end, as a user runs it: real processes, exit codes, output."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import stat
import subprocess
import urllib.error
import urllib.request
import sys
from pathlib import Path

import pytest

from jobplane.server.security.pki import Authority
from support import jobplane, pid_alive, start_up, submit_running, wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def two_agents(sqlite_cluster):
    sqlite_cluster.add_agent("a")
    sqlite_cluster.add_agent("b")
    return sqlite_cluster


def test_submit_watch_succeeds_with_exit_0(two_agents):
    r = jobplane("submit", str(EXAMPLES / "dag.toml"), "--watch", "--server", two_agents.server.address,
                 env=two_agents.server.env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_submit_watch_of_a_failing_job_exits_1(two_agents, tmp_path):
    f = tmp_path / "fail.toml"
    f.write_text('name = "fail"\n[[tasks]]\nname = "boom"\ncommand = ["sh", "-c", "exit 4"]\n')
    r = jobplane("submit", str(f), "--watch", "--server", two_agents.server.address, env=two_agents.server.env())
    assert r.returncode == 1, r.stdout + r.stderr
    assert "exited with code 4" in r.stdout + r.stderr


def test_json_output_of_lists(two_agents):
    addr, env = two_agents.server.address, two_agents.server.env()
    r = jobplane("submit", str(EXAMPLES / "hello.json"), "--watch", "--server", addr, "-o", "json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = json.loads(jobplane("jobs", "list", "--server", addr, "-o", "json", env=env).stdout)
    job = jobs[0] if isinstance(jobs, list) else jobs["jobs"][0]
    assert job["state"] == "SUCCEEDED"
    tasks = json.loads(jobplane("tasks", "list", job["id"], "--server", addr, "-o", "json", env=env).stdout)
    tasks = tasks if isinstance(tasks, list) else tasks["tasks"]
    assert all(t["status"] == "SUCCESS" for t in tasks)
    providers = json.loads(jobplane("providers", "list", "--server", addr, "-o", "json", env=env).stdout)
    providers = providers if isinstance(providers, list) else providers["providers"]
    assert {p["id"] for p in providers} == {"a", "b"}


def test_lists_show_the_first_page_unless_asked_for_more_and_jobs_without_their_task_lists(sqlite_cluster, tmp_path):
    addr, env = sqlite_cluster.server.address, sqlite_cluster.server.env()
    f = tmp_path / "queued.toml"
    f.write_text('name = "q"\nwait_for_providers = true\n[[tasks]]\nname = "t"\ncommand = ["true"]\n'
                 'matrix = { i = [1, 2, 3] }\n')
    for _ in range(3):
        assert jobplane("submit", str(f), "--server", addr, env=env).returncode == 0

    def lines(*args: str) -> list[str]:
        r = jobplane(*args, "--server", addr, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout.splitlines()

    limited = lines("jobs", "list", "--limit", "2")
    assert len([line for line in limited if " q " in f" {line} "]) == 2 and "more match" in limited[-1]
    assert len([line for line in lines("jobs", "list", "--all") if " q " in f" {line} "]) == 3
    assert not any("more match" in line for line in lines("jobs", "list"))
    assert "more match" in lines("tasks", "list", "--limit", "8")[-1]
    assert len(json.loads("\n".join(lines("tasks", "list", "--all", "-o", "json")))) == 9
    listed = json.loads("\n".join(lines("jobs", "list", "-o", "json")))
    assert [job["counts"]["total"] for job in listed] == [3, 3, 3]
    assert all("tasks" not in job["spec"] for job in listed)  # a listing stays small; `jobs get` has them
    assert jobplane("jobs", "list", "--limit", "0", "--server", addr, env=env).returncode == 2


def test_cancel_from_the_cli(sqlite_cluster, tmp_path):
    f = tmp_path / "long.toml"
    f.write_text('name = "long"\nwait_for_providers = true\n[[tasks]]\nname = "wait"\ncommand = ["sleep", "300"]\n')
    addr, env = sqlite_cluster.server.address, sqlite_cluster.server.env()
    r = jobplane("submit", str(f), "--server", addr, "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    job_id = json.loads(r.stdout)["id"]
    r = jobplane("cancel", job_id, "--server", addr, env=env)
    assert r.returncode == 0, r.stderr
    assert sqlite_cluster.client.get_job(job_id).state == 5  # CANCELLED


def test_bad_file_is_reported_with_its_line_and_nothing_is_submitted(sqlite_cluster, tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('name = "bad"\n\n[[tasks]]\nname = "a"\ncommand = 3\n')
    r = jobplane("submit", str(f), "--server", sqlite_cluster.server.address, env=sqlite_cluster.server.env())
    assert r.returncode == 2
    assert f"{f}:5" in r.stderr and "command" in r.stderr
    assert list(sqlite_cluster.client.list_jobs()) == []


def test_server_side_rejection_is_mapped_back_to_the_line(sqlite_cluster, tmp_path):
    f = tmp_path / "after.toml"
    f.write_text('name = "x"\n[[tasks]]\nname = "a"\ncommand = ["true"]\nafter = ["missing"]\n')
    r = jobplane("submit", str(f), "--server", sqlite_cluster.server.address, env=sqlite_cluster.server.env())
    assert r.returncode == 2
    assert f"{f}:5" in r.stderr and "missing" in r.stderr
    assert list(sqlite_cluster.client.list_jobs()) == []


def test_unreachable_server_says_how_to_start_one(tmp_path):
    from support import free_port

    r = jobplane("jobs", "list", "--server", f"127.0.0.1:{free_port()}", timeout=60)
    assert r.returncode == 3
    assert "jobplane up" in r.stderr


def test_demo_runs_to_success(tmp_path):
    r = jobplane("demo", env={"JOBPLANE_HOME": str(tmp_path)}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_up_serves_other_commands_until_interrupted(tmp_path):
    env = {**os.environ, "JOBPLANE_HOME": str(tmp_path)}
    up = subprocess.Popen([sys.executable, "-m", "jobplane.client.cli", "up", "--listen", "127.0.0.1:0",
                           "--agents", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (tmp_path / "up.json").exists() or up.poll() is not None, 30, "up.json")
        assert up.poll() is None, up.stdout.read()
        state = json.loads((tmp_path / "up.json").read_text())
        assert (state["ca"], state["token_file"], state["insecure"]) == (
            str(tmp_path / "ca-bundle.crt"), str(tmp_path / "admin.token"), False)
        assert stat.S_IMODE((tmp_path / "agents" / "join.token").stat().st_mode) == 0o600
        r = jobplane("submit", str(EXAMPLES / "hello.toml"), "--watch", env={"JOBPLANE_HOME": str(tmp_path)})
        assert r.returncode == 0, r.stdout + r.stderr
        r = jobplane("whoami", "-o", "json", env={"JOBPLANE_HOME": str(tmp_path)})
        assert json.loads(r.stdout)["role"] == "ADMIN", r.stderr
        with urllib.request.urlopen(state["console"] + "/healthz", timeout=10) as health:  # on by default
            assert health.read() == b"ok\n"
        children = [int(p) for p in subprocess.run(["pgrep", "-P", str(up.pid)], capture_output=True,
                                                    text=True).stdout.split()]
        assert len(children) == 3  # the server and two agents
    finally:
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(30)
        except subprocess.TimeoutExpired:  # say where it hung before failing
            up.kill()
            logs = {p.name: p.read_text()[-1500:] for p in tmp_path.glob("**/*.log")}
            raise AssertionError(f"up did not stop within 30 s of Ctrl-C; its output: {up.stdout.read()!r}; "
                                 f"logs: {logs}") from None
    assert code == 0
    assert not (tmp_path / "up.json").exists()
    wait_until(lambda: not any(pid_alive(p) for p in children), 15, "up's children to exit")


def test_continuations_plan_from_the_cli(sqlite_cluster, tmp_path):
    sqlite_cluster.add_agent("a", slots=1)
    f = tmp_path / "plan.toml"
    f.write_text('name = "planned"\ncontinuation_priority = 3\n'
                 'continuation_rules = [{ kind = "date", value = "2026-09-30", priority = 1 }]\n'
                 '[[tasks]]\nname = "wait"\ncommand = ["sleep", "300"]\n')
    addr, env = sqlite_cluster.server.address, sqlite_cluster.server.env()
    r = jobplane("submit", str(f), "--server", addr, "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    job_id = json.loads(r.stdout)["id"]
    wait_until(lambda: sqlite_cluster.client.get_provider("a").slots_in_use == 1, 30, "the task running on a")
    r = jobplane("continuations", "plan", "a", "--server", addr, env=env)
    assert r.returncode == 0 and "would wait" in r.stdout and "planned" not in r.stderr, r.stderr
    r = jobplane("continuations", "plan", "a", "--at", "2026-09-30T12:00+00:00", "--server", addr, "-o", "json",
                 env=env)
    (task,) = json.loads(r.stdout)["tasks"]
    assert (task["job_id"], task["effective_priority"], task["rule"]) == (job_id, 1, "date 2026-09-30")
    r = jobplane("continuations", "plan", "nobody", "--server", addr, env=env)
    assert r.returncode == 3 and "not found" in r.stderr
    jobplane("cancel", job_id, "--server", addr, env=env)


def test_up_insecure_says_so_and_needs_no_credentials(tmp_path):
    env = {**os.environ, "JOBPLANE_HOME": str(tmp_path)}
    up = subprocess.Popen([sys.executable, "-m", "jobplane.client.cli", "up", "--insecure", "--listen", "127.0.0.1:0",
                           "--agents", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (tmp_path / "up.json").exists() or up.poll() is not None, 30, "up.json")
        assert up.poll() is None, up.stdout.read()
        assert json.loads((tmp_path / "up.json").read_text())["insecure"] is True
        r = jobplane("whoami", "-o", "json", env={"JOBPLANE_HOME": str(tmp_path)})
        assert json.loads(r.stdout)["method"] == "insecure", r.stderr
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(30)
    assert "WARNING" in up.stdout.read()


def test_up_serves_the_console_over_https_with_the_given_certificate(tmp_path):
    ca = Authority.create("console test CA")
    files = ca.issue_server(tmp_path / "console-tls", ["127.0.0.1"])
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    home = tmp_path / "home"
    up = subprocess.Popen([sys.executable, "-m", "jobplane.client.cli", "up", "--listen", "127.0.0.1:0", "--agents",
                           "0", "--http-tls-cert", str(files.cert), "--http-tls-key", str(files.key)],
                          env={**os.environ, "JOBPLANE_HOME": str(home)}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (home / "up.json").exists() or up.poll() is not None, 30, "up.json")
        assert up.poll() is None, up.stdout.read()
        console = json.loads((home / "up.json").read_text())["console"]
        assert console.startswith("https://127.0.0.1:"), console
        with urllib.request.urlopen(console + "/healthz", timeout=10, context=context) as health:
            assert health.read() == b"ok\n"
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):  # plain HTTP: no answer
            urllib.request.urlopen(console.replace("https://", "http://") + "/healthz", timeout=10)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(30)
    assert f"console:        {console}" in up.stdout.read()


def test_up_refuses_half_a_tls_pair_for_the_console_and_starts_nothing(tmp_path):
    r = jobplane("up", "--listen", "127.0.0.1:0", "--http-tls-cert", str(tmp_path / "c.pem"),
                 env={"JOBPLANE_HOME": str(tmp_path)})
    assert r.returncode == 2 and "--http-tls-cert and --http-tls-key go together" in r.stderr, r.stderr
    r = jobplane("up", "--no-http", "--http-tls-cert", str(tmp_path / "c.pem"), "--http-tls-key",
                 str(tmp_path / "k.pem"), env={"JOBPLANE_HOME": str(tmp_path)})
    assert r.returncode == 2 and "--no-http leaves no console" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_tokens_roles_and_audit_from_the_cli(sqlite_cluster, tmp_path):
    addr, admin = sqlite_cluster.server.address, sqlite_cluster.server.env()
    r = jobplane("tokens", "create", "--role", "viewer", "--user", "vera", "--server", addr, "-o", "json", env=admin)
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    viewer = {"JOBPLANE_TOKEN": created["secret"], "JOBPLANE_CA": admin["JOBPLANE_CA"]}
    me = json.loads(jobplane("whoami", "--server", addr, "-o", "json", env=viewer).stdout)
    assert (me["identity"], me["role"]) == ("vera", "VIEWER")
    assert jobplane("jobs", "list", "--server", addr, env=viewer).returncode == 0
    r = jobplane("tokens", "create", "--role", "admin", "--user", "eve", "--server", addr, env=viewer)
    assert r.returncode == 3 and "admin" in r.stderr, r.stderr  # PERMISSION_DENIED names the role needed
    assert jobplane("tokens", "revoke", created["token"]["id"], "--server", addr, env=admin).returncode == 0
    r = jobplane("whoami", "--server", addr, env=viewer)
    assert r.returncode == 3 and "--token" in r.stderr, r.stderr  # UNAUTHENTICATED, and how to pass one
    records = json.loads(jobplane("audit", "list", "--server", addr, "-o", "json", env=admin).stdout)
    assert any(record["method"].endswith("CreateToken") and record["code"] == "OK" for record in records)


def test_ca_show_matches_the_bundle_on_disk(sqlite_cluster):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    addr, admin = sqlite_cluster.server.address, sqlite_cluster.server.env()
    shown = json.loads(jobplane("ca", "show", "--server", addr, "-o", "json", env=admin).stdout)
    ca = x509.load_pem_x509_certificates(sqlite_cluster.server.ca.read_bytes())[0]
    assert shown["fingerprint"] == ca.fingerprint(hashes.SHA256()).hex()


def test_a_client_without_the_ca_is_told_to_pass_it(sqlite_cluster, tmp_path):
    nothing_here = {"JOBPLANE_HOME": str(tmp_path / "elsewhere")}
    r = jobplane("jobs", "list", "--server", sqlite_cluster.server.address, env=nothing_here)
    assert r.returncode == 3
    assert "--ca" in r.stderr


def test_summary_counts_jobs_per_normalized_status(sqlite_cluster, tmp_path):
    addr, env = sqlite_cluster.server.address, sqlite_cluster.server.env()
    f = tmp_path / "wait.toml"
    f.write_text('name = "waits"\nwait_for_providers = true\n[[tasks]]\nname = "t"\ncommand = ["true"]\n')
    for _ in range(2):
        assert jobplane("submit", str(f), "--server", addr, env=env).returncode == 0
    r = jobplane("summary", "--server", addr, "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"counts": [{"status": "WAITING", "count": 2}], "total": 2}
    r = jobplane("summary", "--filter", "status=SUCCESS", "--server", addr, env=env)
    assert r.returncode == 0 and "no jobs match" in r.stdout


def test_views_save_list_show_and_use_from_the_cli(sqlite_cluster, tmp_path):
    addr, env = sqlite_cluster.server.address, sqlite_cluster.server.env()
    sqlite_cluster.add_agent("a")
    for name, code in (("ok", 0), ("bad", 3)):
        f = tmp_path / f"{name}.toml"
        f.write_text(f'name = "{name}"\nlabels = {{ team = "etl" }}\n[[tasks]]\nname = "t"\n'
                     f'command = ["sh", "-c", "exit {code}"]\n')
        jobplane("submit", str(f), "--watch", "--server", addr, env=env)

    def cli(*args):
        r = jobplane(*args, "--server", addr, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    assert "saved view broken (jobs)" in cli("views", "save", "broken", "--filter", "status=FAILURE label.team=etl")
    cli("views", "save", "exits", "--of", "tasks", "--filter", "raw.exit_code>0", "--sort=-exit_code")
    listed = cli("views", "list")
    assert "broken" in listed and "exits" in listed and "raw.exit_code>0" in listed
    shown = cli("views", "show", "broken")
    assert "status=FAILURE label.team=etl" in shown and "bad" in shown and " ok " not in shown
    assert "bad" in cli("jobs", "list", "--view", "broken") and "ok" not in cli("jobs", "list", "--view", "broken")
    assert "no jobs match" in cli("jobs", "list", "--view", "broken", "--filter", "name=ok")
    tasks = cli("tasks", "list", "--view", "exits", "-o", "json")
    assert [t["raw"]["exit_code"] for t in json.loads(tasks)] == ["3"]
    assert "FAILURE" in cli("summary", "--view", "broken")
    cli("views", "delete", "broken")
    r = jobplane("jobs", "list", "--view", "broken", "--server", addr, env=env)
    assert r.returncode == 3 and "no view 'broken'" in r.stderr
    r = jobplane("jobs", "list", "--filter", "status=SLEEPY", "--server", addr, env=env)
    assert r.returncode == 2 and "position 7" in r.stderr


def test_ctrl_c_on_up_hands_running_work_on_and_it_finishes_after_the_next_up(tmp_path):
    go = tmp_path / "go"
    job_file = tmp_path / "wait.toml"
    job_file.write_text(f'name = "waits"\n[[tasks]]\nname = "t"\n'
                        f'command = ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.1; done"]\n')
    env = {"JOBPLANE_HOME": str(tmp_path)}
    up = start_up(tmp_path)
    try:
        try:
            job_id = submit_running(job_file, env)
        finally:
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0, up.stdout.read()
        up = start_up(tmp_path)
        job = json.loads(jobplane("jobs", "get", job_id, "-o", "json", env=env).stdout)
        assert job["state"] in ("QUEUED", "RUNNING"), job  # not FAILED
        go.touch()
        r = jobplane("watch", job_id, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        job = json.loads(jobplane("jobs", "get", job_id, "-o", "json", env=env).stdout)
        assert job["state"] == "SUCCEEDED", job
    finally:  # whatever failed, the task's loop ends (it outlives `up` by design)
        go.touch()
        up.send_signal(signal.SIGINT)
        up.wait(60)
