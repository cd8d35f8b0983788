"""`--log-format json` on jobplane-server and jobplane-agent: real processes, their real stderr,
every line one JSON object, with the job, task, attempt and provider ids as fields."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from jobplane.client import Client
from jobplane.logs import JsonFormatter
from support import AgentProc, ServerProc, wait_until


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]  # fails on any line that is not JSON


class JsonLoggingServer:
    """An insecure jobplane-server with --log-format json, its stdout (where it says where it
    listens, for people) and its stderr (the log) kept apart."""

    def __init__(self, workdir: Path) -> None:
        self.stderr = workdir / "server.stderr"
        address_file = workdir / "server.addr"
        with open(workdir / "server.stdout", "wb") as out, open(self.stderr, "wb") as err:
            self.p = subprocess.Popen(
                [sys.executable, "-m", "jobplane.server", "--listen", "127.0.0.1:0", "--insecure",
                 "--data-dir", str(workdir / "data"), "--db", f"sqlite:///{workdir / 'db.sqlite'}",
                 "--address-file", str(address_file), "--log-format", "json"], stdout=out, stderr=err)
        self.address = wait_until(lambda: address_file.exists() and address_file.read_text().split(), 20,
                                  "the server to listen")[0]

    def agent_args(self) -> list[str]:
        return ["--insecure"]

    def log(self) -> list[dict]:
        return json_lines(self.stderr.read_text())

    def stop(self) -> None:
        self.p.terminate()
        self.p.wait(20)


def test_server_and_agent_log_one_json_object_per_line_with_ids_as_fields(tmp_path):
    server = JsonLoggingServer(tmp_path)
    agent = None
    try:
        agent = AgentProc(tmp_path, server, "a", extra=["--log-format", "json", "--log-level", "debug"])
        with Client.connect(server.address, insecure=True) as client:
            wait_until(lambda: [p for p in client.list_providers() if p.state == 1], 20, "the agent to connect")
            job = client.submit_job({"name": "j", "tasks": [{"name": "boom", "command": ["sh", "-c", "exit 3"]}]})
            job = client.wait(job.id, timeout=60)
            (task,) = client.list_tasks(job.id)
        assert job.failed

        server_lines = wait_until(lambda: [r for r in server.log() if r.get("task_id") == task.id], 10,
                                  "the server to log the task")
        failed = next(r for r in server_lines if "FAILURE" in r["message"])
        assert (failed["job_id"], failed["attempt"], failed["provider_id"], failed["level"]) == (job.id, 1, "a", "INFO")
        assert {"time", "logger", "message", "event_id"} <= set(failed)
        assert any(r.get("job_id") == job.id and "task_id" not in r and "FAILURE" in r["message"]
                   for r in server.log()), "the job's end, with its id"
        assert any("--insecure" in r["message"] and r["level"] == "WARNING" for r in server.log())

        agent_lines = wait_until(lambda: [r for r in json_lines(agent.output()) if r.get("task_id") == task.id],
                                 30, "the agent to log the attempt")
        assert all(r["provider_id"] == "a" for r in json_lines(agent.output())), "every agent line names it"
        assert agent_lines[0]["attempt"] == 1 and agent_lines[0]["level"] == "DEBUG"

        keeper = json_lines((tmp_path / "agent-a.state" / "keeper.log").read_text())  # the agent's keeper too
        assert all(r["provider_id"] == "a" and r["logger"] == "jobplane.agent.keeper" for r in keeper)
        assert any(r["message"].startswith("keeping ") and r["keeper_pid"] for r in keeper)
        assert any("holds the lease" in r["message"] for r in keeper)
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
    assert server.log()[-1]["message"], "the log stays JSON to the end"


def test_text_stays_the_default(tmp_path):
    server = ServerProc(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    agent = None
    try:
        assert " INFO jobplane.server" in server.output() and not server.output().startswith("{")
        agent = AgentProc(tmp_path, server, "a")
        keeper_log = tmp_path / "agent-a.state" / "keeper.log"
        text = wait_until(lambda: keeper_log.exists() and "holds the lease" in keeper_log.read_text()
                          and keeper_log.read_text(), 20, "the keeper to log")
        assert " INFO keeper " in text and not text.startswith("{")
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


def test_a_logged_exception_is_a_field_of_its_line():
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    line = json.loads(JsonFormatter({"provider_id": "a"}).format(record))
    assert (line["message"], line["provider_id"], line["level"]) == ("failed here", "a", "ERROR")
    assert "ValueError: bad" in line["exception"] and "\n" not in JsonFormatter().format(record)
