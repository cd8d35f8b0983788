"""Prerequisites on the agent: the scans the server asks for, and the re-check before an attempt.

The server asks for scans explicitly (``ConnectResponse.scan``) or on the side of an assignment
(``Assignments.scan``). `ScanQueue` runs them in the background, a few at a time, merging
requests for a signature that is already waiting, and hands back one `ScanReport` per scan for
the link to send. An assignment's own prerequisites are checked again right before it runs
(`missing_prerequisites`): the machine may have changed since the server's inventory saw it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from google.protobuf import struct_pb2, timestamp_pb2

from jobplane.v1 import provider_pb2

from .results import AttemptResult, Outcome
from .scan_limits import ScanLimits

__all__ = ["SCANS_IN_FLIGHT", "ScanQueue", "missing_prerequisites", "prerequisite_missing",
           "signature_dict"]

log = logging.getLogger(__name__)

# Scans run at once; later requests wait, merged, until one ends.
SCANS_IN_FLIGHT = 2
# Signatures in one scan (and one ScanReport), to keep a report well under gRPC's 4 MiB.
MAX_SCAN_SIGNATURES = 500


def signature_dict(signature: struct_pb2.Struct) -> dict:
    """A signature as the scanner takes it: a plain dict, with whole numbers as ints."""
    from google.protobuf import json_format  # as the scanner: not loaded until the first scan

    return _whole_numbers(json_format.MessageToDict(signature))


def _whole_numbers(value: object) -> object:
    """`value` with every whole float made an int, recursively.

    A Struct carries every number as a double, so a port 5432 arrives as 5432.0; the scanner
    (rightly) wants ints for ports, sizes and counts.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


class ScanQueue:
    """Scans the server asked for, run in the background; `next_report()` yields their reports.

    At most `SCANS_IN_FLIGHT` scans run at once. A signature requested again while it waits, or
    while it is being scanned, is scanned once and reported once.
    """

    def __init__(self, limits: ScanLimits = ScanLimits(),
                 timed: Callable[[float], None] = lambda seconds: None) -> None:
        self._limits = limits
        self._timed = timed  # each scan's duration in seconds (the agent's /metrics)
        self._waiting: dict[str, dict] = {}  # signature_id -> signature, in the order asked
        self._in_flight: set[str] = set()
        self._wanted = asyncio.Event()
        self._reports: asyncio.Queue[provider_pb2.ScanReport] = asyncio.Queue()

    def request(self, signatures: Iterable[provider_pb2.SignatureToScan]) -> None:
        """Queue these signatures for a scan; returns at once."""
        for item in signatures:
            if item.signature_id not in self._waiting and item.signature_id not in self._in_flight:
                self._waiting[item.signature_id] = signature_dict(item.signature)
        if self._waiting:
            self._wanted.set()

    async def next_report(self) -> provider_pb2.ScanReport:
        """Wait for the next scan to end; its report."""
        return await self._reports.get()

    async def run(self) -> None:
        """Run the requested scans, until cancelled."""
        await asyncio.gather(*(self._work() for _ in range(SCANS_IN_FLIGHT)))

    async def _work(self) -> None:
        while True:
            batch = await self._take()
            began = time.monotonic()
            try:
                results = await _scan(list(batch.values()), self._limits)
                self._timed(time.monotonic() - began)
            except Exception:  # a bug in the scanner: the server asks again for what it lacks
                log.exception("a scan of %d signatures failed", len(batch))
                continue
            finally:
                self._in_flight.difference_update(batch)
            self._reports.put_nowait(_report(list(batch), results))

    async def _take(self) -> dict[str, dict]:
        """Wait for waiting signatures; take up to a scan's worth of them."""
        while not self._waiting:
            self._wanted.clear()
            await self._wanted.wait()
        ids = list(itertools.islice(self._waiting, MAX_SCAN_SIGNATURES))
        batch = {signature_id: self._waiting.pop(signature_id) for signature_id in ids}
        self._in_flight.update(batch)
        return batch


def _report(ids: list[str], results: list[dict]) -> provider_pb2.ScanReport:
    return provider_pb2.ScanReport(results=[
        provider_pb2.ScanResult(signature_id=signature_id, present=result["present"],
                                details=result["details"], reason=result["reason"],
                                scan_time=_timestamp(result["scanned_at"]))
        for signature_id, result in zip(ids, results)
    ])


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


async def missing_prerequisites(prerequisites: Sequence[struct_pb2.Struct],
                                limits: ScanLimits) -> list[tuple[int, str]]:
    """(index, why it is absent) of each prerequisite this machine lacks, in order."""
    results = await _scan([signature_dict(signature) for signature in prerequisites], limits)
    return [(index, result["reason"]) for index, result in enumerate(results)
            if not result["present"]]


async def _scan(signatures: list[dict], limits: ScanLimits) -> list[dict]:
    """scan.scan, imported at the first scan: an agent never asked for one does not load the probes."""
    from .scan import scan

    return await scan(signatures, limits=limits)


def prerequisite_missing(missing: list[tuple[int, str]]) -> AttemptResult:
    """The result of an attempt not run because prerequisites are missing.

    `raw["missing"]` lists their indexes into the spec's prerequisites, for the server to map
    to its signature ids and place the task elsewhere.
    """
    return AttemptResult(Outcome.FAILED, error=f"prerequisite missing: {missing[0][1]}",
                         raw={"state": "prerequisite_missing",
                              "missing": ",".join(str(index) for index, _ in missing)})
