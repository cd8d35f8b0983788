"""The outbox: reports batched per message, FINISHED ones kept until acknowledged and re-sent."""

from __future__ import annotations

import asyncio

from jobplane.agent.outbox import MAX_BATCH_REPORTS, Outbox
from jobplane.agent.results import AttemptResult, Outcome
from jobplane.v1 import provider_pb2
from support_standin import report_kind

STARTED = "started"
FINISHED = "finished"
OK = AttemptResult(Outcome.SUCCEEDED, exit_code=0, raw={"state": "exited", "exit_code": "0"})


def refs(batch: provider_pb2.TaskReports) -> list[tuple[str, int, int]]:
    return [(r.task_id, r.attempt, report_kind(r)) for r in batch.reports]


def test_everything_queued_goes_out_in_one_message_and_seq_counts_messages():
    async def main():
        outbox = Outbox()
        outbox.started("1", 1)
        outbox.started("2", 1)
        outbox.finished("1", 1, OK)
        first = await outbox.next_batch()
        outbox.finished("2", 1, OK)
        return first, await outbox.next_batch()

    first, second = asyncio.run(main())
    assert first.seq == 1 and refs(first) == [("1", 1, STARTED), ("2", 1, STARTED), ("1", 1, FINISHED)]
    assert second.seq == 2 and refs(second) == [("2", 1, FINISHED)]


def test_a_finished_report_carries_the_result():
    async def main():
        outbox = Outbox()
        outbox.finished("9", 2, AttemptResult(
            Outcome.FAILED, exit_code=3, error="exited with code 3", stdout_tail="out",
            stderr_tail="err", raw={"state": "exited", "exit_code": "3"}))
        outbox.finished("10", 1, AttemptResult(Outcome.TIMED_OUT, error="timed out after 1 s"))
        return await outbox.next_batch()

    failed, timed_out = asyncio.run(main()).reports
    assert failed.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_FAILED
    assert failed.finished.HasField("exit_code") and failed.finished.exit_code == 3
    assert (failed.finished.error, failed.finished.stdout_tail, failed.finished.stderr_tail) == ("exited with code 3", "out", "err")
    assert dict(failed.finished.raw) == {"state": "exited", "exit_code": "3"}
    assert timed_out.finished.outcome == provider_pb2.ATTEMPT_OUTCOME_TIMED_OUT
    assert not timed_out.finished.HasField("exit_code")


def test_large_backlogs_are_split_into_capped_messages():
    async def main():
        outbox = Outbox()
        for i in range(MAX_BATCH_REPORTS + 5):
            outbox.started(str(i), 1)
        return await outbox.next_batch(), await outbox.next_batch()

    first, second = asyncio.run(main())
    assert len(first.reports) == MAX_BATCH_REPORTS and len(second.reports) == 5


def test_acknowledged_reports_are_forgotten_and_the_rest_are_resent_under_new_seqs():
    async def main():
        outbox = Outbox()
        outbox.started("1", 1)
        outbox.finished("1", 1, OK)
        await outbox.next_batch()  # seq 1
        outbox.finished("2", 1, OK)
        await outbox.next_batch()  # seq 2
        outbox.finished("3", 1, OK)
        await outbox.next_batch()  # seq 3
        outbox.ack(1)
        held = sorted(outbox.finishing())
        return held, outbox.resend_batches()

    held, resent = asyncio.run(main())
    assert held == [("2", 1), ("3", 1)]
    assert [b.seq for b in resent] == [4]
    assert refs(resent[0]) == [("2", 1, FINISHED), ("3", 1, FINISHED)]


def test_the_outbox_settles_only_once_every_finished_report_is_acknowledged():
    async def main():
        outbox = Outbox()
        outbox.started("1", 1)
        outbox.finished("1", 1, OK)
        batch = await outbox.next_batch()
        settled = asyncio.ensure_future(outbox.wait_settled())
        await asyncio.sleep(0)  # one turn of the loop: the waiter is now blocked, if it blocks
        waited_for_the_ack = not settled.done()
        outbox.ack(batch.seq)
        await asyncio.wait_for(settled, 30)
        return waited_for_the_ack, outbox.resend_batches(), outbox.finishing()

    waited_for_the_ack, resent, held = asyncio.run(main())
    assert waited_for_the_ack
    assert resent == [] and held == []  # STARTED reports are never re-sent


CHECKPOINT = "checkpoint"


def test_a_checkpoint_report_carries_the_state_and_does_not_hold_the_attempt():
    async def main():
        outbox = Outbox()
        outbox.checkpoint("1", 2, '{"i": 5}')
        return await outbox.next_batch(), outbox.finishing()

    batch, held = asyncio.run(main())
    assert refs(batch) == [("1", 2, CHECKPOINT)]
    assert batch.reports[0].checkpoint.checkpoint_json == '{"i": 5}'
    assert held == []  # a checkpoint says the attempt runs, not that it ended


def test_several_checkpoints_of_one_attempt_in_one_message_go_as_the_latest():
    async def main():
        outbox = Outbox()
        outbox.checkpoint("1", 1, '{"i": 1}')
        outbox.checkpoint("2", 1, '{"i": 1}')
        outbox.checkpoint("1", 1, '{"i": 2}')
        outbox.finished("1", 1, OK)
        return await outbox.next_batch()

    batch = asyncio.run(main())
    assert refs(batch) == [("2", 1, CHECKPOINT), ("1", 1, CHECKPOINT), ("1", 1, FINISHED)]
    assert batch.reports[1].checkpoint.checkpoint_json == '{"i": 2}'


def test_the_latest_unacknowledged_checkpoint_is_resent_before_the_result():
    async def main():
        outbox = Outbox()
        outbox.checkpoint("1", 1, '{"i": 1}')
        await outbox.next_batch()  # seq 1
        outbox.checkpoint("1", 1, '{"i": 2}')
        await outbox.next_batch()  # seq 2
        outbox.finished("1", 1, OK)
        await outbox.next_batch()  # seq 3; then the stream breaks
        return outbox.resend_batches()

    (resent,) = asyncio.run(main())
    assert refs(resent) == [("1", 1, CHECKPOINT), ("1", 1, FINISHED)]
    assert resent.reports[0].checkpoint.checkpoint_json == '{"i": 2}'


def test_an_acknowledged_checkpoint_is_forgotten():
    async def main():
        outbox = Outbox()
        outbox.checkpoint("1", 1, '{"i": 1}')
        outbox.checkpoint("2", 1, '{"i": 1}')
        first = await outbox.next_batch()
        outbox.checkpoint("2", 1, '{"i": 2}')
        await outbox.next_batch()
        outbox.ack(first.seq)
        return outbox.resend_batches(), outbox.unacknowledged()

    resent, unacknowledged = asyncio.run(main())
    assert [refs(b) for b in resent] == [[("2", 1, CHECKPOINT)]]
    assert resent[0].reports[0].checkpoint.checkpoint_json == '{"i": 2}'
    assert unacknowledged == 1


def test_a_checkpoint_after_the_result_is_dropped():
    async def main():
        outbox = Outbox()
        outbox.finished("1", 1, OK)
        outbox.checkpoint("1", 1, '{"i": 9}')
        return await outbox.next_batch()

    assert refs(asyncio.run(main())) == [("1", 1, FINISHED)]


STATUS = "status"


def test_several_statuses_of_one_attempt_in_one_message_go_as_the_latest_and_are_not_kept():
    async def main():
        outbox = Outbox()
        outbox.status("1", 1, {"status": "AWAITING EXECUTION"})
        outbox.status("2", 1, {"status": "EXECUTING"})
        outbox.status("1", 1, {"status": "EXECUTING"})
        batch = await outbox.next_batch()
        return batch, outbox.resend_batches(), outbox.unacknowledged(), outbox.finishing()

    batch, resent, unacknowledged, held = asyncio.run(main())
    assert refs(batch) == [("2", 1, STATUS), ("1", 1, STATUS)]
    assert dict(batch.reports[1].status.raw) == {"status": "EXECUTING"}
    assert (resent, unacknowledged, held) == ([], 0, [])  # sent once, like STARTED


def test_a_status_after_the_result_is_dropped():
    async def main():
        outbox = Outbox()
        outbox.finished("1", 1, OK)
        outbox.status("1", 1, {"status": "EXECUTING"})
        return await outbox.next_batch()

    assert refs(asyncio.run(main())) == [("1", 1, FINISHED)]


def test_a_sender_cancelled_while_it_waits_to_send_loses_no_report():
    """The stream breaks while the sender waits in next_batch: its FINISHED report must still go
    out on the next stream (else the attempt is held forever and its result never arrives)."""

    async def main():
        box = Outbox()
        sender = asyncio.ensure_future(box.next_batch())
        await asyncio.sleep(0)  # the sender waits for a report
        box.finished("7", 1, AttemptResult(Outcome.SUCCEEDED, exit_code=0))
        await asyncio.sleep(0)  # it wakes for the report...
        sender.cancel()  # ...and its stream breaks before it sends
        try:
            await sender
        except asyncio.CancelledError:
            pass
        resent = box.resend_batches()
        later = await asyncio.wait_for(box.next_batch(), 1) if not resent else resent[0]
        return [(r.task_id, r.WhichOneof("report")) for r in later.reports]

    assert asyncio.run(main()) == [("7", "finished")]


def test_a_started_report_waits_for_the_attempts_end_to_go_with_it(monkeypatch):
    """A short task's STARTED and FINISHED reports go as one message (one commit, one event on
    the server), not two. The linger is made long here so the machine's load cannot decide."""
    monkeypatch.setattr("jobplane.agent.outbox.START_LINGER", 30.0)

    async def main():
        box = Outbox()
        box.started("5", 1)
        sender = asyncio.ensure_future(box.next_batch())
        for _ in range(10):  # without the linger, the sender would have taken the STARTED report alone by now
            await asyncio.sleep(0)
        box.finished("5", 1, OK)  # it ends while the report lingers
        return await asyncio.wait_for(sender, 10)

    batch = asyncio.run(main())
    assert refs(batch) == [("5", 1, STARTED), ("5", 1, FINISHED)]


def test_a_started_report_alone_still_goes_out():
    """A task that runs on: its STARTED report is sent after the linger, not held until it ends."""

    async def main():
        box = Outbox()
        box.started("6", 1)
        return await asyncio.wait_for(box.next_batch(), 10)

    assert refs(asyncio.run(main())) == [("6", 1, STARTED)]


def test_the_starts_of_tasks_started_together_wait_for_all_their_ends(monkeypatch):
    """The tasks of one assignment message start together: the first to end does not send the
    others' STARTED reports without their FINISHED ones (before, it did, and almost no short
    Python task's start went with its end). The linger is long here, as above."""
    monkeypatch.setattr("jobplane.agent.outbox.START_LINGER", 30.0)

    async def main():
        box = Outbox()
        box.started("1", 1)
        box.started("2", 1)
        sender = asyncio.ensure_future(box.next_batch())
        for _ in range(10):
            await asyncio.sleep(0)
        box.finished("1", 1, OK)
        for _ in range(10):  # the first end alone does not end the linger
            await asyncio.sleep(0)
        box.finished("2", 1, OK)
        return await asyncio.wait_for(sender, 10)

    batch = asyncio.run(main())
    assert refs(batch) == [("1", 1, STARTED), ("2", 1, STARTED), ("1", 1, FINISHED), ("2", 1, FINISHED)]


def test_a_result_waits_for_the_linger_at_most():
    """A result queued with the start of a task that runs on goes once START_LINGER has passed."""

    async def main():
        box = Outbox()
        box.started("1", 1)
        box.finished("2", 1, OK)
        return await asyncio.wait_for(box.next_batch(), 10)

    assert refs(asyncio.run(main())) == [("1", 1, STARTED), ("2", 1, FINISHED)]


def test_two_senders_waiting_at_once_each_get_a_message():
    """For a moment in a credentials handover two streams' senders may wait: neither is lost."""

    async def main():
        box = Outbox()
        first = asyncio.ensure_future(box.next_batch())
        second = asyncio.ensure_future(box.next_batch())
        for _ in range(5):
            await asyncio.sleep(0)
        box.finished("1", 1, OK)
        done, _ = await asyncio.wait({first, second}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        box.ack(1)
        box.finished("2", 1, OK)
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        return sorted(refs(first.result()) + refs(second.result()))

    assert asyncio.run(main()) == [("1", 1, FINISHED), ("2", 1, FINISHED)]


def test_a_message_gathers_reports_while_a_wave_of_tasks_waits_for_slots(monkeypatch):
    """While the agent holds a slot's worth of tasks queued for a slot, the next message waits for
    more reports (its slots are busy meanwhile: the server's every message costs it as much as
    tens of reports) until half of those waiting have started. The wait's cap is made long here
    so that the machine's load cannot decide."""
    monkeypatch.setattr("jobplane.agent.outbox.GATHER_WAIT", 30.0)
    waiting = [8]

    async def main():
        box = Outbox()
        box.gather_while(lambda: waiting[0], 8)
        box.finished("1", 1, OK)
        sender = asyncio.ensure_future(box.next_batch())
        for _ in range(10):  # without the gather, the sender would have taken the one result by now
            await asyncio.sleep(0)
        for n in ("2", "3", "4"):  # three of the eight start; their predecessors' results join
            waiting[0] -= 1
            box.slot_taken()
            box.finished(n, 1, OK)
        for _ in range(10):
            await asyncio.sleep(0)
        gathering = not sender.done()
        waiting[0] -= 1  # the fourth: half have started
        box.slot_taken()
        return gathering, await asyncio.wait_for(sender, 10)

    gathering, batch = asyncio.run(main())
    assert gathering
    assert refs(batch) == [(n, 1, FINISHED) for n in ("1", "2", "3", "4")]


def test_a_message_does_not_gather_with_less_than_a_wave_waiting_for_slots(monkeypatch):
    """Fewer tasks waiting than the agent has slots: the server's next assignments are needed
    soon, so the report goes at once."""
    monkeypatch.setattr("jobplane.agent.outbox.GATHER_WAIT", 30.0)

    async def main():
        box = Outbox()
        box.gather_while(lambda: 7, 8)
        box.finished("1", 1, OK)
        return await asyncio.wait_for(box.next_batch(), 10)

    assert refs(asyncio.run(main())) == [("1", 1, FINISHED)]


def test_a_gathering_message_goes_after_the_gather_wait_at_most():
    """Tasks that wait on behind slots that stay busy do not hold the reports back: they go once
    GATHER_WAIT has passed."""

    async def main():
        box = Outbox()
        box.gather_while(lambda: 8, 8)
        box.finished("1", 1, OK)
        return await asyncio.wait_for(box.next_batch(), 10)

    assert refs(asyncio.run(main())) == [("1", 1, FINISHED)]
