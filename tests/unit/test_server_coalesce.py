"""What one agent stream sends: queued messages merged into as few as possible."""

import asyncio

from jobplane.server.services.providers import _coalesce
from jobplane.v1 import provider_pb2


def ack(seq, *rejected_tasks):
    rejected = [provider_pb2.RejectedReport(attempt=provider_pb2.AttemptRef(task_id=t, attempt=1),
                                            code="FAILED_PRECONDITION", reason="superseded") for t in rejected_tasks]
    return provider_pb2.ConnectResponse(ack=provider_pb2.Ack(seq=seq, rejected=rejected))


def assign(task_id):
    return provider_pb2.ConnectResponse(assign=provider_pb2.Assignments(
        assignments=[provider_pb2.Assignment(task_id=task_id, attempt=1)]))


def coalesce(*messages):
    queue: asyncio.Queue = asyncio.Queue()
    for message in messages[1:]:
        queue.put_nowait(message)
    return _coalesce(messages[0], queue)


def test_assignments_merge_and_only_the_last_ack_is_sent_carrying_every_rejection():
    out, closing = coalesce(ack(1, "7"), assign("1"), ack(2), assign("2"), ack(3, "9"), None)
    assert closing
    merged, last = out
    assert [a.task_id for a in merged.assign.assignments] == ["1", "2"]
    assert last.ack.seq == 3 and [r.attempt.task_id for r in last.ack.rejected] == ["7", "9"]


def test_a_lone_message_goes_out_as_it_is():
    message = ack(4)
    assert coalesce(message) == ([message], False)
