"""Alert rules with a real server: `jobplane alerts add` as an operator types it; a failing job
the filter matches is delivered once to a real HTTP receiver, signed, one it does not match is
not; a delivery pending when the server is killed (-9) is delivered after the restart, and the
rule still applies; viewers may list but not add; bad rules are refused naming the field."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from jobplane.client import Client, InvalidArgument, NotFound, PermissionDenied
from jobplane.v1 import alert_pb2, job_pb2
from support import free_port, wait_until
from support_notify import Receiver, job_event

FAILURE = 2  # NormalizedStatus


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def jobplane(server, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobplane.client.cli", *args, "--server", server.address],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **(env or server.env())})


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def failing(name: str, team: str) -> dict:
    return {"name": name, "labels": {"team": team}, "tasks": [{"name": "t", "command": ["sh", "-c", "exit 3"]}]}


def rule(url: str, filter_text: str = "status=FAILURE label.team=etl") -> alert_pb2.AlertRule:
    return alert_pb2.AlertRule(filter=filter_text, notify=job_pb2.Notify(webhook=url))


def outbox(cluster, job_id: str) -> list[tuple[str, int]]:
    with closing(sqlite3.connect(cluster.server.data_dir.parent / "jobplane.db")) as db:
        return db.execute("SELECT id, state FROM notification WHERE job = ?", (int(job_id),)).fetchall()


def test_a_rule_added_with_the_cli_notifies_of_a_matching_failure_once_and_not_of_others(sqlite_cluster, receiver):
    cluster = sqlite_cluster
    added = json.loads(ok(jobplane(cluster.server, "alerts", "add", "--filter", "status=FAILURE label.team=etl",
                                   "--webhook", receiver.url + "/alerts", "--name", "etl failures", "-o", "json")))
    assert added["filter"] == "status=FAILURE label.team=etl" and added["created_by"]
    assert "etl failures" in ok(jobplane(cluster.server, "alerts", "list"))
    cluster.add_agent("a")
    web = cluster.client.submit_job(failing("web-nightly", "web"))
    cluster.client.wait_job(web.id, timeout=60)  # failed: its deliveries would be in the outbox now
    etl = cluster.client.submit_job(failing("etl-nightly", "etl"))

    event = job_event(cluster.client, etl.id, "NOTIFIED")
    assert event.raw["alert"] == added["id"] and event.raw["target"] == receiver.url + "/alerts"
    [(path, headers, body)] = receiver.requests
    key = (cluster.server.data_dir / "notify.key").read_text().strip().encode()
    assert headers["X-Jobplane-Signature"] == "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    doc = json.loads(body)
    assert (doc["job_id"], doc["status"], doc["alert"]) == (etl.id, "FAILURE", {"id": added["id"],
                                                                               "name": "etl failures"})
    assert outbox(cluster, web.id) == [], "the web team's failure matched no rule"

    ok(jobplane(cluster.server, "alerts", "delete", added["id"]))
    assert "no alert rules" in ok(jobplane(cluster.server, "alerts", "list"))
    again = cluster.client.submit_job(failing("etl-nightly", "etl"))
    cluster.client.wait_job(again.id, timeout=60)
    assert outbox(cluster, again.id) == [] and len(receiver.requests) == 1


@pytest.mark.server_args("--notify-backoff", "60")
def test_a_pending_alert_is_delivered_after_a_kill_and_the_rule_outlives_the_restart(cluster):
    port = free_port()  # nobody listens there yet: the first try fails, the next is a minute away
    made = cluster.client.create_alert_rule(rule(f"http://127.0.0.1:{port}/hook"))
    cluster.add_agent("a")
    job = cluster.client.submit_job(failing("etl-nightly", "etl"))
    cluster.client.wait_job(job.id, timeout=60)  # the delivery was committed with the FAILURE
    cluster.server.kill()
    receiver = Receiver(port=port)
    try:
        cluster.start_server(extra=["--notify-backoff", "60"])
        event = job_event(cluster.client, job.id, "NOTIFIED")
        assert event.raw["alert"] == made.id and event.raw["attempts"] == "1"
        assert [json.loads(b)["job_id"] for _, _, b in receiver.requests] == [job.id]
        assert [r.id for r in cluster.client.list_alert_rules()] == [made.id]
        cluster.add_agent("b")
        later = cluster.client.submit_job(failing("etl-nightly", "etl"))
        job_event(cluster.client, later.id, "NOTIFIED")
        assert [json.loads(b)["job_id"] for _, _, b in receiver.requests] == [job.id, later.id]
    finally:
        receiver.close()


def test_operators_add_and_delete_rules_viewers_only_read_them_and_writes_are_audited(sqlite_cluster):
    cluster = sqlite_cluster

    def as_role(role: str, user: str) -> Client:
        return Client.connect(cluster.server.address, ca=cluster.server.ca,
                              token=cluster.client.create_token(role, user=user).secret)

    with as_role("operator", "olga") as olga, as_role("viewer", "vic") as vic, as_role("submitter", "sam") as sam:
        made = olga.create_alert_rule(rule("https://hooks.example.com/etl"))
        assert made.created_by == "olga"
        assert [r.id for r in vic.list_alert_rules()] == [made.id] and vic.get_alert_rule(made.id).filter
        for call in (lambda: vic.create_alert_rule(rule("https://hooks.example.com/x")),
                     lambda: vic.delete_alert_rule(made.id), lambda: list(sam.list_alert_rules())):
            with pytest.raises(PermissionDenied, match="needs the role"):
                call()
        assert [r.id for r in cluster.client.list_alert_rules()] == [made.id], "the refused calls changed nothing"
        olga.delete_alert_rule(made.id)
        with pytest.raises(NotFound, match="alerts list"):
            vic.get_alert_rule(made.id)

    def olgas_calls():  # a call's audit record is written with the batch after its answer
        return {(r.method.rsplit("/", 1)[1], r.target) for r in
                cluster.client.list_audit_records(filter="identity=olga code=OK")}

    wait_until(lambda: olgas_calls() == {("CreateAlertRule", "alert rule 'status=FAILURE label.team=etl'"),
                                         ("DeleteAlertRule", f"alert rule {made.id}")} or None, 10, "olga's calls")


@pytest.mark.parametrize("filter_text, notify, field", [
    ("status=FAILED", job_pb2.Notify(webhook="https://h.example.com/x"), "rule.filter"),
    ("ended>=-1h", job_pb2.Notify(webhook="https://h.example.com/x"), "rule.filter"),
    ("status=FAILURE", job_pb2.Notify(webhook="https://h.example.com/x", command=["/bin/true"]), "rule.notify"),
    ("status=FAILURE", job_pb2.Notify(command=["page"]), "rule.notify.command[0]"),
    ("status=FAILURE", job_pb2.Notify(on=[99], webhook="https://h.example.com/x"), "rule.notify.on[0]"),
])
def test_a_bad_rule_is_refused_naming_its_field_and_nothing_is_added(sqlite_cluster, filter_text, notify, field):
    with pytest.raises(InvalidArgument) as refused:
        sqlite_cluster.client.create_alert_rule(alert_pb2.AlertRule(filter=filter_text, notify=notify))
    assert str(refused.value).startswith(field + ":") or f" {field}:" in str(refused.value)
    assert not list(sqlite_cluster.client.list_alert_rules())


def test_the_cli_refuses_a_bad_filter_with_exit_code_2(sqlite_cluster):
    result = jobplane(sqlite_cluster.server, "alerts", "add", "--filter", "colour=red", "--webhook", "https://h/x")
    assert result.returncode == 2 and "jobplane: --filter: " in result.stderr and "unknown key" in result.stderr
