"""`jobplane-agent --metrics ADDR` against a real server and a real agent: scraped over HTTP,
read with Prometheus's own text parser, moving as the agent runs a task and scans for a
prerequisite."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from support import RunLog, recorded_command, wait_until

SUCCEEDED = 3


def metrics_address(agent) -> str:
    found = wait_until(lambda: re.search(r"metrics on http://(\S+)/metrics", agent.output()), 15,
                       "the agent to log its metrics address")
    return found[1]


def fetch(address: str, path: str = "/metrics") -> tuple[int, str, str]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.getheader("content-type") or "", reply.read().decode()
    finally:
        conn.close()


def scrape(address: str) -> dict[tuple, float]:
    status, kind, body = fetch(address)
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, *sorted(labels.items())), 0.0)


def test_slots_busy_while_a_task_runs_and_its_spawn_latency_after(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    agent = c.add_agent("m", slots=2, extra=["--metrics", "127.0.0.1:0"])
    address = metrics_address(agent)
    idle = scrape(address)
    assert (value(idle, "jobplane_agent_slots"), value(idle, "jobplane_agent_slots_busy")) == (2, 0)
    assert value(idle, "jobplane_agent_connected") == 1
    assert value(idle, "jobplane_agent_spawn_seconds_count") == 0
    release = tmp_path / "go"
    job = c.client.submit_job({"name": "one", "tasks": [{"name": "t", "command": [
        "sh", "-c", f"echo some output; while [ ! -e {release} ]; do sleep 0.05; done"]}]})
    busy = wait_until(lambda: (s := scrape(address)) and value(s, "jobplane_agent_tasks_started_total") == 1 and s,
                      30, "the task's process started")
    assert value(busy, "jobplane_agent_slots_busy") == 1  # it waits for the release file
    release.touch()
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    after = wait_until(lambda: (s := scrape(address)) and value(s, "jobplane_agent_slots_busy") == 0 and s, 15,
                       "the slot free again")
    assert value(after, "jobplane_agent_spawn_seconds_count") == 1
    assert value(after, "jobplane_agent_spawn_seconds_bucket", le="+Inf") == 1
    assert value(after, "jobplane_agent_spawn_seconds_sum") > 0
    assert value(after, "jobplane_agent_tasks_finished_total", outcome="succeeded") == 1
    assert value(after, "jobplane_agent_log_bytes") >= len("some output\n")
    assert value(after, "jobplane_agent_reconnects_total") == 0
    assert fetch(address, "/other")[0] == 404


def test_tasks_given_back_unstarted_are_counted_so_not_as_cancelled(sqlite_cluster, tmp_path):
    """Tasks queued ahead behind one that turns out long are given back unstarted (queue-ahead):
    nothing was cancelled, and an operator watching cancellations must not see them as such."""
    c = sqlite_cluster
    agent = c.add_agent("m", slots=1, extra=["--metrics", "127.0.0.1:0"])
    address = metrics_address(agent)
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    started = f'echo "start $JOBPLANE_TASK_NAME $JOBPLANE_ATTEMPT $(date +%s.%N)" >> {log}'
    tasks = [{"name": f"q{i}", "command": recorded_command(log, 0.005)} for i in range(200)]
    tasks[100] = {"name": "long", "command": ["sh", "-c", f"{started}; while [ ! -e {gate} ]; do sleep 0.05; done"]}
    job = c.client.submit_job({"name": "quick-but-one", "tasks": tasks})
    try:
        wait_until(lambda: RunLog(log).started("long") == 1, 60, "the long task to start")
        given_back = wait_until(lambda: sum("given back unstarted" in a.reason for t in c.client.list_tasks(job.id)
                                            for a in t.attempts), 30, "tasks queued behind it to be given back")
        counted = wait_until(lambda: (s := scrape(address)) and value(
            s, "jobplane_agent_tasks_finished_total", outcome="given_back") >= given_back and s, 15,
            "the agent to count what it gave back")
        assert value(counted, "jobplane_agent_tasks_finished_total", outcome="cancelled") == 0
    finally:
        gate.touch()
    assert c.client.wait_job(job.id, timeout=60).state == SUCCEEDED


def test_a_prerequisite_scan_is_timed(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    (tmp_path / "ref.fa").write_text(">chr1\nACGT\n")
    agent = c.add_agent("s", slots=1, extra=["--metrics", "127.0.0.1:0"])
    address = metrics_address(agent)
    assert value(scrape(address), "jobplane_agent_scan_seconds_count") == 0
    job = c.client.submit_job({"name": "needs", "tasks": [{"name": "t", "command": ["true"], "prerequisites": [
        {"kind": "file", "path": "ref.fa", "roots": [str(tmp_path)]}]}]})
    assert c.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    scanned = scrape(address)
    assert value(scanned, "jobplane_agent_scan_seconds_count") >= 1
    assert value(scanned, "jobplane_agent_scan_seconds_bucket", le="+Inf") == \
        value(scanned, "jobplane_agent_scan_seconds_count")


def test_without_metrics_the_agent_does_not_load_the_http_server():
    code = "import sys, jobplane.agent.main, jobplane.agent.agent; print('jobplane.agent.metrics_http' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
