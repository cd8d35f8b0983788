"""Alert rules among server replicas on PostgreSQL: a rule added and deleted through a follower
(forwarded to the leader, audited), read from the follower itself; a job that fails while the
receiver is down leaves the rule's delivery pending (deleting the rule does not drop it); the
leader is killed (-9) and the new leader delivers it. Judged by what the receiver got."""

from __future__ import annotations

import json
from contextlib import closing

import pytest

from jobplane.client import NotFound
from jobplane.v1 import alert_pb2, job_pb2
from support import free_port, wait_until
from support_notify import Receiver, job_event, notifying_replicas

pytestmark = pytest.mark.postgres
ACTIVE = 1  # PROVIDER_STATE_ACTIVE


@pytest.fixture
def rs(tmp_path, request):
    yield from notifying_replicas(tmp_path, request)


def test_a_rule_added_through_a_follower_alerts_and_the_new_leader_delivers_what_was_pending(rs):
    leader, epoch = rs.leader()
    follower = rs.followers(leader)[0]
    port = free_port()  # nobody listens there yet: the first try fails, the next is a minute away
    rs.add_agent("a", slots=1)
    with closing(rs.client(follower, timeout=10)) as client:
        made = client.create_alert_rule(alert_pb2.AlertRule(
            filter="status=FAILURE label.team=etl", notify=job_pb2.Notify(webhook=f"http://127.0.0.1:{port}/hook")))
        assert [r.id for r in client.list_alert_rules()] == [made.id]  # the follower reads it itself
        wait_until(lambda: "CreateAlertRule" in {r.method.rsplit("/", 1)[1] for r in
                                                 client.list_audit_records(filter="code=OK")} or None,
                   10, "the forwarded CreateAlertRule audited")
        wait_until(lambda: [p.state for p in client.list_providers()] == [ACTIVE], 30, "the agent to be ACTIVE")
        job = client.submit_job({"name": "nightly", "labels": {"team": "etl"},
                                 "tasks": [{"name": "t", "command": ["sh", "-c", "exit 1"]}]})
        client.wait_job(job.id, timeout=60)
        client.delete_alert_rule(made.id)  # through the follower: what the rule made is still delivered
        with pytest.raises(NotFound):
            client.get_alert_rule(made.id)
        leader.kill()
        receiver = Receiver(port=port)
        try:
            rs.leader(newer_than=epoch, ignore=leader)
            event = job_event(client, job.id, "NOTIFIED")
            [(path, _, body)] = receiver.requests
        finally:
            receiver.close()
        assert event.raw["alert"] == made.id and path == "/hook" and json.loads(body)["job_id"] == job.id
