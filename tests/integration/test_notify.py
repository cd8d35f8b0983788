"""Notifications (a job's `notify`): delivered at least once to a real HTTP receiver (http.server
in a thread) or a real command, signed with the server's secret, retried, resumed after a
kill -9, and recorded as events of the job. Judged by what the receiver got and the job's events."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from contextlib import closing

import pytest

from jobplane.client import InvalidArgument
from support import free_port
from support_notify import Receiver, job_event

FAILURE, SUCCESS = 2, 4  # NormalizedStatus
JOB_FAILED = 4


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def secret(cluster) -> bytes:
    path = cluster.server.data_dir / "notify.key"
    assert path.stat().st_mode & 0o777 == 0o600
    return path.read_text().strip().encode()


def signed(body: bytes, key: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def failing_job(*notify) -> dict:
    return {"name": "nightly", "labels": {"team": "etl"}, "notify": list(notify),
            "tasks": [{"name": "t", "command": ["sh", "-c", "exit 3"]}]}


def test_a_failed_job_notifies_its_webhook_with_a_signed_body_and_not_its_success_command(
        sqlite_cluster, receiver, tmp_path):
    cluster, ran = sqlite_cluster, tmp_path / "success-ran"
    cluster.add_agent("a")
    job = cluster.client.submit_job(failing_job(
        {"on": ["SUCCESS"], "command": ["/bin/sh", "-c", f"cat > {ran}"]},
        {"on": ["FAILURE", "LATE_TO_START"], "webhook": receiver.url + "/hooks/jobs"}))

    event = job_event(cluster.client, job.id, "NOTIFIED")
    assert event.status == FAILURE and event.raw["target"] == receiver.url + "/hooks/jobs"
    [(path, headers, body)] = receiver.requests
    assert path == "/hooks/jobs" and headers["Content-Type"] == "application/json"
    assert hmac.compare_digest(headers["X-Jobplane-Signature"], signed(body, secret(cluster)))
    doc = json.loads(body)
    assert (doc["job_id"], doc["name"], doc["status"], doc["previous_status"]) == (job.id, "nightly", "FAILURE",
                                                                                   "RUNNING")
    assert doc["counts"]["failure"] == 1 and doc["owner"] and doc["event_id"] > 0
    assert cluster.client.get_job(job.id).state == JOB_FAILED
    # The SUCCESS entry was never due: the outbox, written with the FAILURE, holds the one above.
    with closing(sqlite3.connect(tmp_path / "jobplane.db")) as db:
        assert db.execute("SELECT id, state FROM notification WHERE job = ?", (int(job.id),)).fetchall() == [
            (f"{doc['event_id']}.1", 1)]
    assert not ran.exists()


@pytest.mark.server_args("--notify-backoff", "0.05")
def test_a_receiver_failing_twice_gets_three_requests_and_one_delivery(cluster):
    receiver = Receiver(answers=(500, 503))
    try:
        cluster.add_agent("a")
        job = cluster.client.submit_job(failing_job({"on": ["FAILURE"], "webhook": receiver.url}))
        event = job_event(cluster.client, job.id, "NOTIFIED")
        assert event.raw["attempts"] == "3" and len(receiver.requests) == 3
        assert len({body for _, _, body in receiver.requests}) == 1, "every try sends the same signed body"
    finally:
        receiver.close()


@pytest.mark.server_args("--notify-backoff", "0.05", "--notify-attempts", "2")
def test_a_delivery_that_keeps_failing_is_given_up_as_an_event(sqlite_cluster):
    cluster, receiver = sqlite_cluster, Receiver(answers=(500, 500, 500))
    try:
        cluster.add_agent("a")
        job = cluster.client.submit_job(failing_job({"on": ["FAILURE"], "webhook": receiver.url}))
        event = job_event(cluster.client, job.id, "NOTIFY_GAVE_UP")
        assert event.raw["attempts"] == "2" and "HTTP 500" in event.message and len(receiver.requests) == 2
    finally:
        receiver.close()


def test_a_command_notification_gets_the_body_on_stdin(sqlite_cluster, tmp_path):
    cluster, out = sqlite_cluster, tmp_path / "notified"
    cluster.add_agent("a")
    script = f"cat > {out}.body; echo \"$JOBPLANE_STATUS $JOBPLANE_JOB_ID $JOBPLANE_SIGNATURE\" > {out}.env"
    job = cluster.client.submit_job({"name": "ok", "notify": [{"on": ["SUCCESS"], "command": ["/bin/sh", "-c", script]}],
                                     "tasks": [{"name": "t", "command": ["true"]}]})
    job_event(cluster.client, job.id, "NOTIFIED")
    body = (tmp_path / "notified.body").read_bytes()
    assert json.loads(body)["status"] == "SUCCESS"
    assert (tmp_path / "notified.env").read_text().split() == ["SUCCESS", job.id, signed(body, secret(cluster))]


@pytest.mark.server_args("--notify-backoff", "60")
def test_a_pending_delivery_is_delivered_after_the_server_is_killed(cluster):
    port = free_port()  # nobody listens there yet: the first try fails
    cluster.add_agent("a")
    job = cluster.client.submit_job(failing_job({"on": ["FAILURE"], "webhook": f"http://127.0.0.1:{port}/x"}))
    cluster.client.wait_job(job.id, timeout=60)  # the delivery was committed with the FAILURE
    cluster.server.kill()
    receiver = Receiver(port=port)
    try:
        cluster.start_server(extra=["--notify-backoff", "60"])
        event = job_event(cluster.client, job.id, "NOTIFIED")
        assert event.raw["attempts"] == "1" and len(receiver.requests) == 1
        assert json.loads(receiver.requests[0][2])["job_id"] == job.id
    finally:
        receiver.close()


@pytest.mark.parametrize("notify, field", [
    ({"on": ["FAILURE"], "webhook": "ftp://example.com/x"}, "spec.notify[1].webhook"),
    ({"on": ["FAILURE"], "command": ["page", "-q"]}, "spec.notify[1].command[0]"),
])
def test_a_bad_notify_entry_is_refused_naming_its_field(sqlite_cluster, notify, field):
    good = {"on": ["FAILURE"], "webhook": "https://hooks.example.com/x"}
    with pytest.raises(InvalidArgument) as refused:
        sqlite_cluster.client.submit_job({"name": "bad", "notify": [good, notify],
                                          "tasks": [{"name": "t", "command": ["true"]}]})
    assert field + ":" in str(refused.value)
    assert not list(sqlite_cluster.client.list_jobs())
