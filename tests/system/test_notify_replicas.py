"""Notifications among server replicas on PostgreSQL: a job submitted through a follower fails
while its receiver is down; the leader is killed (-9) with the delivery pending; the new leader
delivers it, signed with the secret every replica shares. Judged by what the receiver got."""

from __future__ import annotations

import hashlib
import hmac
import json
from contextlib import closing

import pytest

from support import free_port, wait_until
from support_notify import Receiver, job_event, notifying_replicas

pytestmark = pytest.mark.postgres
ACTIVE = 1  # PROVIDER_STATE_ACTIVE


@pytest.fixture
def rs(tmp_path, request):
    yield from notifying_replicas(tmp_path, request)


def test_the_new_leader_delivers_what_the_killed_one_left_pending_signed_alike(rs):
    leader, epoch = rs.leader()
    follower = rs.followers(leader)[0]
    keys = {r.proc.data_dir.joinpath("notify.key").read_text() for r in rs.replicas}
    assert len(keys) == 1, "every replica signs with the one secret"
    port = free_port()  # nobody listens there yet: the first try fails, the next is a minute away
    rs.add_agent("a", slots=1)
    with closing(rs.client(follower, timeout=10)) as client:
        wait_until(lambda: [p.state for p in client.list_providers()] == [ACTIVE], 30, "the agent to be ACTIVE")
        job = client.submit_job({"name": "nightly", "tasks": [{"name": "t", "command": ["sh", "-c", "exit 1"]}],
                                 "notify": [{"on": ["FAILURE"], "webhook": f"http://127.0.0.1:{port}/hook"}]})
        client.wait_job(job.id, timeout=60)
        leader.kill()
        receiver = Receiver(port=port)
        try:
            rs.leader(newer_than=epoch, ignore=leader)
            event = job_event(client, job.id, "NOTIFIED")
            [(path, headers, body)] = receiver.requests
        finally:
            receiver.close()
    assert event.raw["attempts"] == "1" and path == "/hook" and json.loads(body)["job_id"] == job.id
    expected = "sha256=" + hmac.new(keys.pop().strip().encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Jobplane-Signature"], expected)
