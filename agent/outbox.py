"""Task reports on their way to the server: batched per message, kept until acknowledged."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

from jobplane.v1 import provider_pb2

from .results import AttemptResult

# Caps on one TaskReports message, well under gRPC's default 4 MiB receive limit.
MAX_BATCH_REPORTS = 1000
MAX_BATCH_BYTES = 1024 * 1024
# A message waits for the server's acknowledgement of the one before, at most this long, while
# more reports join it: the server commits in batches, so what comes in the meantime would wait
# for its next batch anyway, and one message per commit costs both sides less than many.
ACK_WAIT = 0.02
# While the agent holds at least a slot's worth of tasks waiting for a slot (queued ahead), a
# message waits up to this long more, until half of them have started, for more reports to join
# it: the slots are busy meanwhile, so a later report costs nothing, and the server's every
# message and commit costs it as much as tens of reports (bench/server_pace.py). The half still
# waiting covers the round trip of the server's next assignments.
GATHER_WAIT = 0.015
# A message with a STARTED report waits up to this long for the attempt's FINISHED one to join it:
# a short task's start and end then go together, so the server commits the attempt once, with
# one event, and each side handles one message, not two (a RUNNING status shows this much later
# at most). Every queued start is waited for, not only the first: the tasks of one assignment
# message start together, and the first to end must not send the others' starts without them.
START_LINGER = 0.01

# Which report a TaskReport is: the name of its `report` oneof field.
_FINISHED = "finished"
_CHECKPOINT = "checkpoint"
_STATUS = "status"
_STARTED = "started"
# Kinds kept until acknowledged, and sent again after a reconnect. A lost STARTED report would
# leave the server showing the attempt assigned (the hello's `running` list does not say it
# started: an attempt may wait there for a slot), neither watched nor held as a running one.
_KEPT = (_STARTED, _CHECKPOINT, _FINISHED)
# Kinds of which only the latest of an attempt in one message matters.
_LATEST_ONLY = (_CHECKPOINT, _STATUS)

# What wakes the sender asleep in next_batch.
_REPORT = "report"
_ENDS = "ends"
_ACK = "ack"
_STARTS = "starts"

# A report kept until acknowledged: (kind, task_id, attempt).
_Kept = tuple[str, str, int]


class Outbox:
    """Reports queued for sending; STARTED and FINISHED ones, and the latest CHECKPOINT of each
    attempt, stay until the server acknowledges their seq (a repeated STARTED is ignored there).

    STATUS reports are sent once and forgotten: the attempt's FINISHED report covers them. seq
    grows by one per TaskReports message for the outbox's lifetime.
    """

    def __init__(self, on_acked: Callable[[Iterable[tuple[str, int]]], None] | None = None) -> None:
        # Told which attempts' FINISHED reports the server has just acknowledged.
        self._on_acked = on_acked
        self._queue: asyncio.Queue[provider_pb2.TaskReport] = asyncio.Queue()
        self._seq = 0
        # Kept reports sent but not acknowledged, in the order (and with the seq) sent; so an
        # attempt's checkpoint is re-sent before its FINISHED report.
        self._in_flight: OrderedDict[_Kept, tuple[int, provider_pb2.TaskReport]] = OrderedDict()
        # Attempts whose FINISHED report is queued or in flight: still ours until acknowledged.
        self._finishing: set[tuple[str, int]] = set()
        self._settled = asyncio.Event()
        self._settled.set()
        self._acked_seq = 0  # the highest seq the server acknowledged
        # Attempts whose STARTED report is queued and whose FINISHED report is not (yet).
        self._open_starts: set[tuple[str, int]] = set()
        # Queued CHECKPOINT and STATUS reports (only then can a later one supersede an earlier).
        self._latest_only_queued = 0
        # Senders asleep in next_batch (one, but for a moment in a handover), each with what
        # wakes it: a new report (_REPORT), the end of every queued start (_ENDS), an ack
        # (_ACK) or, while a message gathers, half of the waiting tasks started (_STARTS). One
        # future and at most one timer per sleep: no task, as wait_for makes.
        self._sleepers: list[tuple[str, asyncio.Future[None]]] = []
        # How many attempts wait for a slot (the agent's `waiting`), and while a message gathers,
        # the count at which it goes (None: not gathering).
        self._waiting: Callable[[], int] = lambda: 0
        self._wave = 0  # gathering needs this many waiting (0: never)
        self._gather_until: int | None = None

    def started(self, task_id: str, attempt: int, external_job_id: str = "") -> None:
        """Queue a STARTED report (with the outside job the attempt follows, if any)."""
        started = provider_pb2.AttemptStarted(external_job_id=external_job_id)
        self._open_starts.add((task_id, attempt))
        self._put(provider_pb2.TaskReport(task_id=task_id, attempt=attempt, started=started))

    def checkpoint(self, task_id: str, attempt: int, checkpoint_json: str) -> None:
        """Queue a CHECKPOINT report; the latest of each attempt is kept until acknowledged."""
        if (task_id, attempt) in self._finishing:
            return  # the attempt has ended: its result is the last word
        checkpoint = provider_pb2.AttemptCheckpoint(checkpoint_json=checkpoint_json)
        self._latest_only_queued += 1
        self._put(provider_pb2.TaskReport(task_id=task_id, attempt=attempt, checkpoint=checkpoint))

    def status(self, task_id: str, attempt: int, raw: dict[str, str], external_job_id: str = "") -> None:
        """Queue a STATUS report: the attempt's raw properties changed while it runs (with the
        outside job it follows, if any: said again, in case the STARTED report was lost)."""
        if (task_id, attempt) in self._finishing:
            return  # the FINISHED report carries the last raw properties
        status = provider_pb2.AttemptStatusChange(raw=raw, external_job_id=external_job_id)
        self._latest_only_queued += 1
        self._put(provider_pb2.TaskReport(task_id=task_id, attempt=attempt, status=status))

    def finished(self, task_id: str, attempt: int, result: AttemptResult) -> None:
        """Queue a FINISHED report (the one place an AttemptResult becomes a TaskReport; Outcome
        numbers are AttemptOutcome's); it is kept until acknowledged."""
        finished = provider_pb2.AttemptFinished(
            outcome=int(result.outcome),
            result_json=result.result_json,
            error=result.error,
            stdout_tail=result.stdout_tail,
            stderr_tail=result.stderr_tail,
            raw=result.raw,
        )
        if result.exit_code is not None:
            finished.exit_code = result.exit_code
        report = provider_pb2.TaskReport(task_id=task_id, attempt=attempt, finished=finished)
        self._finishing.add((task_id, attempt))
        self._open_starts.discard((task_id, attempt))
        self._put(report)

    async def next_batch(self) -> provider_pb2.TaskReports:
        """Wait for a report, then take it and everything queued behind it as one message.
        Nothing is taken before the last await: a sender cancelled while it waits (its stream
        broke) must not lose a report it took but never stamped, or its attempt would be held
        forever with its FINISHED report gone."""
        while True:
            while self._queue.empty():
                await self._sleep(_REPORT, None)
            await self._previous_acknowledged()
            await self._gather()
            await asyncio.sleep(0)  # let reports produced in this loop iteration join the message
            if self._open_starts:
                await self._linger()
            if not self._queue.empty():
                break
        reports = [self._queue.get_nowait()]
        size = _size(reports[0])
        while len(reports) < MAX_BATCH_REPORTS and size < MAX_BATCH_BYTES:
            try:
                report = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            reports.append(report)
            size += _size(report)
        if self._open_starts:  # sent without their end (it did not come within START_LINGER)
            self._open_starts.difference_update((report.task_id, report.attempt) for report in reports
                                                if report.HasField("started"))
        if self._latest_only_queued:
            self._latest_only_queued = 0 if self._queue.empty() else self._latest_only_queued
            reports = _latest_only(reports)
        return self._stamp(reports)

    def resend_batches(self) -> list[provider_pb2.TaskReports]:
        """After a reconnect: every unacknowledged kept report again, in order, under new seqs."""
        pending = [report for _, report in self._in_flight.values()]
        self._in_flight.clear()
        batches: list[list[provider_pb2.TaskReport]] = [[]]
        size = 0
        for report in pending:
            if len(batches[-1]) >= MAX_BATCH_REPORTS or size >= MAX_BATCH_BYTES:
                batches.append([])
                size = 0
            batches[-1].append(report)
            size += _size(report)
        return [self._stamp(batch) for batch in batches if batch]

    async def _linger(self) -> None:
        """Until every queued STARTED report has its FINISHED one queued, or START_LINGER has
        passed."""
        if self._open_starts:
            await self._sleep(_ENDS, START_LINGER)

    def gather_while(self, waiting: Callable[[], int], wave: int) -> None:
        """Gather reports (GATHER_WAIT) while `waiting()` attempts wait for a slot, if at least
        `wave` do; the agent calls slot_taken as each of them starts."""
        self._waiting, self._wave = waiting, wave

    def slot_taken(self) -> None:
        """An attempt that waited for a slot has one: a gathering message goes once half of
        those that waited as it began have."""
        if self._gather_until is not None and self._waiting() <= self._gather_until:
            self._wake(_STARTS)

    async def _gather(self) -> None:
        """Until half of the tasks waiting for a slot have one, or GATHER_WAIT has passed; at
        once if fewer than a wave wait."""
        waiting = self._waiting()
        if not self._wave or waiting < self._wave or self._gather_until is not None:
            return
        self._gather_until = waiting // 2
        try:
            await self._sleep(_STARTS, GATHER_WAIT)
        finally:
            self._gather_until = None

    async def _previous_acknowledged(self) -> None:
        """Until the last message sent is acknowledged, or ACK_WAIT has passed (an ack may never
        come: the stream broke, or it was not the current one)."""
        if self._acked_seq < self._seq:
            await self._sleep(_ACK, ACK_WAIT)

    async def _sleep(self, until: str, seconds: float | None) -> None:
        """Until what `until` names happens (_wake), or `seconds` have passed (None: no limit)."""
        loop = asyncio.get_running_loop()
        sleeper = (until, loop.create_future())
        self._sleepers.append(sleeper)
        timer = None if seconds is None else loop.call_later(seconds, _resolve, sleeper[1])
        try:
            await sleeper[1]
        finally:
            self._sleepers.remove(sleeper)
            if timer is not None:
                timer.cancel()

    def _wake(self, what: str) -> None:
        for until, sleeper in self._sleepers:
            if until == what:
                _resolve(sleeper)

    def ack(self, seq: int) -> None:
        """The server committed every report sent with a seq up to and including `seq`."""
        if seq > self._acked_seq:
            self._acked_seq = seq
            self._wake(_ACK)
        acked = []
        while self._in_flight:
            kept, (sent_seq, _) = next(iter(self._in_flight.items()))
            if sent_seq > seq:
                break
            del self._in_flight[kept]
            kind, task_id, attempt = kept
            if kind == _FINISHED:
                self._finishing.discard((task_id, attempt))
                acked.append((task_id, attempt))
        self._update_settled()
        if acked and self._on_acked is not None:
            self._on_acked(acked)

    def finishing(self) -> list[tuple[str, int]]:
        """(task_id, attempt) of attempts whose FINISHED report is not acknowledged yet."""
        return list(self._finishing)

    def unacknowledged(self) -> int:
        """How many reports are queued or waiting for an acknowledgement."""
        return self._queue.qsize() + len(self._in_flight)

    async def wait_settled(self) -> None:
        """Wait until every report has been sent and every FINISHED one acknowledged."""
        await self._settled.wait()

    def _put(self, report: provider_pb2.TaskReport) -> None:
        self._queue.put_nowait(report)
        self._wake(_REPORT)
        if not self._open_starts:
            self._wake(_ENDS)
        self._settled.clear()

    def _stamp(self, reports: list[provider_pb2.TaskReport]) -> provider_pb2.TaskReports:
        self._seq += 1
        for report in reports:
            kind = report.WhichOneof("report")
            if kind in _KEPT:
                kept = (kind, report.task_id, report.attempt)
                self._in_flight.pop(kept, None)  # keep the order of sending; a newer one replaces
                self._in_flight[kept] = (self._seq, report)
        self._update_settled()
        return provider_pb2.TaskReports(seq=self._seq, reports=reports)

    def _update_settled(self) -> None:
        if self._queue.empty() and not self._in_flight:
            self._settled.set()
        else:
            self._settled.clear()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _latest_only(reports: list[provider_pb2.TaskReport]) -> list[provider_pb2.TaskReport]:
    """The reports without checkpoints and statuses that a later one of the same kind and
    attempt supersedes."""
    latest: set[_Kept] = set()
    kept = []
    for report in reversed(reports):
        kind = report.WhichOneof("report")
        if kind in _LATEST_ONLY:
            key = (kind, report.task_id, report.attempt)
            if key in latest:
                continue
            latest.add(key)
        kept.append(report)
    kept.reverse()
    return kept


def _size(report: provider_pb2.TaskReport) -> int:
    """A cheap estimate of a report's encoded size (a STARTED one's is its ids')."""
    kind = report.WhichOneof("report")
    if kind == _FINISHED:
        finished = report.finished
        return (64 + len(finished.result_json) + len(finished.error) + len(finished.stdout_tail)
                + len(finished.stderr_tail) + _raw_size(finished.raw))
    if kind == _CHECKPOINT:
        return 64 + len(report.checkpoint.checkpoint_json)
    if kind == _STATUS:
        return 64 + _raw_size(report.status.raw)
    return 64


def _raw_size(raw: Mapping[str, str]) -> int:
    return sum(len(key) + len(value) for key, value in raw.items())
