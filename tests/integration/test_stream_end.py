"""The server sees an agent's stream end when the agent goes, even while it is writing to it.

grpc.aio iterates a streaming handler written as an async generator and leaves it suspended at
its `yield` when the call ends during a write; the handler's `finally` (here: the provider's
disconnect) then waited for the garbage collector. The agent, reconnecting, was told it is
"connected already" until the provider fell silent or the collector ran. The write grpc refuses
then is the peer's leaving, not the server's error."""

from __future__ import annotations

import queue

import pytest

from jobplane.v1 import event_pb2, event_pb2_grpc, provider_pb2, provider_pb2_grpc
from support import admin_channel, agent_certificate, agent_channel, wait_until
from support_http import HTTP
from test_metrics import scrape, value

pytestmark = pytest.mark.server_args(*HTTP)
ASSIGNED = 3  # TaskState
CONNECT = "/jobplane.v1.ProviderService/Connect"


def test_an_agent_gone_while_the_server_writes_to_it_is_seen_gone_at_once(cluster):
    c = cluster
    with admin_channel(c.server) as admin:
        watch = event_pb2_grpc.EventServiceStub(admin).WatchEvents(
            event_pb2.WatchEventsRequest(filter="type=PROVIDER provider=a"), timeout=60)
        outgoing: queue.Queue = queue.Queue()
        outgoing.put(provider_pb2.ConnectRequest(hello=provider_pb2.Hello(
            name="a", slots=10_000, heartbeat_interval_seconds=600)))  # it never falls silent in this test
        channel = agent_channel(c.server, *agent_certificate(c.server, "a"))
        stream = provider_pb2_grpc.ProviderServiceStub(channel).Connect(iter(outgoing.get, None))
        assert next(stream).WhichOneof("message") == "welcome"
        outgoing.put(provider_pb2.ConnectRequest(ready=provider_pb2.Ready(free_slots=10_000)))
        # Then it reads nothing: tens of MB of assignments (each task its own spec) stall the
        # server's writes on the stream's flow control.
        jobs = [c.client.submit_job({"name": f"j{j}", "tasks": [
            {"name": f"t{i}", "command": ["echo", f"{'x' * 2000}{j}.{i}"]} for i in range(400)]}) for j in range(25)]
        wait_until(lambda: all(all(t.state == ASSIGNED for t in c.client.list_tasks(job.id)) for job in jobs), 60,
                   "every task assigned to a (and on its way)")
        stream.cancel()
        channel.close()
        # The server says so at once (not after the agent's 600 s heartbeat promise).
        gone = next(e for m in watch for e in m.events if "stream closed" in e.message)
        assert gone.provider_id == "a"
        watch.cancel()
    # A call the peer left, not a server error: counted CANCELLED (not UNKNOWN), no ERROR logged.
    counted = scrape(c.server)
    assert value(counted, "jobplane_rpcs_total", method=CONNECT, code="CANCELLED") == 1
    assert value(counted, "jobplane_rpcs_total", method=CONNECT, code="UNKNOWN") == 0
    assert "ExecuteBatchError" not in c.server.output()
