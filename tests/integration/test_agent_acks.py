"""Acknowledgements on the agent stream: a commit that both acknowledges an agent's reports and
assigns it more work reaches the agent as one message when the agent said it reads acks there
(Hello.acks_with_assignments), and as two, the ack on its own, for an agent that did not (an
older release), through a real server and a real stream."""

from __future__ import annotations

import queue

import pytest

from jobplane.v1 import provider_pb2, provider_pb2_grpc
from support import agent_certificate, agent_channel


def _finish(assignment: provider_pb2.Assignment) -> list[provider_pb2.TaskReport]:
    key = {"task_id": assignment.task_id, "attempt": assignment.attempt}
    return [provider_pb2.TaskReport(**key, started=provider_pb2.AttemptStarted()),
            provider_pb2.TaskReport(**key, finished=provider_pb2.AttemptFinished(
                outcome=provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED, exit_code=0))]


@pytest.mark.parametrize("with_assignments", [True, False], ids=["acks-with-assignments", "older-agent"])
def test_the_ack_of_a_commit_that_also_assigns_comes_with_the_assignment_only_to_an_agent_that_reads_it_there(
        sqlite_cluster, with_assignments):
    name = "merging" if with_assignments else "older"
    outgoing: queue.Queue = queue.Queue()
    hello = provider_pb2.Hello(name=name, slots=1, heartbeat_interval_seconds=5,
                               acks_with_assignments=with_assignments)
    outgoing.put(provider_pb2.ConnectRequest(hello=hello))
    with agent_channel(sqlite_cluster.server, *agent_certificate(sqlite_cluster.server, name)) as channel:
        stream = provider_pb2_grpc.ProviderServiceStub(channel).Connect(iter(outgoing.get, None), timeout=60)
        try:
            assert next(stream).WhichOneof("message") == "welcome"
            outgoing.put(provider_pb2.ConnectRequest(ready=provider_pb2.Ready(free_slots=1)))
            sqlite_cluster.client.submit_job({"name": "j", "tasks": [{"name": f"t{i}", "command": ["true"]}
                                                                      for i in range(2)]})
            (first,) = next(m for m in stream if m.WhichOneof("message") == "assign").assign.assignments
            # Its FINISHED report frees the only slot: the commit that takes it assigns the second task.
            outgoing.put(provider_pb2.ConnectRequest(reports=provider_pb2.TaskReports(seq=1, reports=_finish(first))))
            after = [next(stream)]
            if with_assignments:
                assert after[0].WhichOneof("message") == "assign"
                assert after[0].assign.HasField("ack") and after[0].assign.ack.seq == 1
            else:
                after.append(next(stream))
                assert [m.WhichOneof("message") for m in after] == ["assign", "ack"]
                assert not after[0].assign.HasField("ack") and after[1].ack.seq == 1
            (second,) = after[0].assign.assignments
            assert second.task_id != first.task_id
        finally:
            outgoing.put(None)
            stream.cancel()

