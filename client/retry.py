"""When a failed call is tried again, where, and after what pause.

A call whose way to the server failed (UNAVAILABLE, DEADLINE_EXCEEDED, or UNKNOWN from a broken
transport: gRPC's "Stream removed" when a connection is cut mid-message; the server itself never
answers UNKNOWN) may or may not have been carried out, so it is tried again only where that is
safe:

- reads, and changes that end the same however often they are made (`Unary.idempotent`);
- a submit: every try carries the same request id, and the server makes one job per id;
- any call that certainly reached no server: its channel could not connect (nothing listens,
  the name does not resolve, the TLS handshake failed), so nothing was sent.

With several replicas (replicas.py) the next one is tried at once; once every replica has
failed in a row, the client pauses (`Retry`: growing pauses with jitter) before the next round.
`Client` and `AsyncClient` both drive their loops from here.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from jobplane.client.errors import DeadlineExceeded, JobplaneError, Unavailable
from jobplane.client.jobfile import job_spec_from_mapping
from jobplane.v1 import job_pb2

if TYPE_CHECKING:  # replicas.py imports the calls, which import this module
    from jobplane.client.replicas import Replica, Replicas

log = logging.getLogger(__name__)

RETRYABLE = (Unavailable, DeadlineExceeded)
TRANSPORT_BROKE = ("Stream removed", "Socket closed", "Connection reset")  # UNKNOWN details gRPC gives then
# What gRPC says when a call fails before it is sent: its channel found no server to connect to.
NOT_SENT = ("failed to connect to all addresses", "errors resolving", "DNS resolution failed", "empty address list")


def retryable(error: JobplaneError) -> bool:
    """Whether the call may not have been answered because the way to the server failed."""
    if isinstance(error, RETRYABLE):
        return True
    return error.code == grpc.StatusCode.UNKNOWN and any(s in str(error) for s in TRANSPORT_BROKE)


def never_sent(error: JobplaneError) -> bool:
    """Whether the call certainly reached no server: its channel could not connect to one."""
    return isinstance(error, Unavailable) and any(s in error.message for s in NOT_SENT)


def resumable(error: JobplaneError) -> bool:
    """Whether a watch that ended with `error` broke on the way (and resumes, perhaps on another
    replica) rather than for good: its own deadline passed, or the server refused it."""
    return retryable(error) and not isinstance(error, DeadlineExceeded)


def may_retry(error: JobplaneError, *, idempotent: bool) -> bool:
    """Whether a call that failed with `error` may be tried again (on this replica or another)."""
    return never_sent(error) or (idempotent and retryable(error))


@dataclass(frozen=True)
class Retry:
    """How often a call that may be retried is tried, and how long to pause in between: before
    round n+1, a random pause between half and all of `first_pause × 2ⁿ⁻¹`, at most `max_pause`.
    A round tries each replica once (one try with one server). Each try has the client's
    `timeout` as its deadline. `Retry(attempts=1)` tries each replica once, and never pauses."""

    attempts: int = 5
    first_pause: float = 0.25
    max_pause: float = 4.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_pause < 0 or self.max_pause < self.first_pause:
            raise ValueError("Retry needs attempts >= 1 and 0 <= first_pause <= max_pause")

    def pauses(self) -> Iterator[float]:
        """The pause before each retry (attempts - 1 of them)."""
        for n in range(self.attempts - 1):
            ceiling = min(self.max_pause, self.first_pause * 2 ** n)
            yield random.uniform(ceiling / 2, ceiling)


class Tries:
    """The tries of one call (or one watch) over the replicas: after a failure that may be
    retried, the next replica at once, and once every replica has failed in a row, a pause as
    `retry` says before the next round; after `retry.attempts` rounds, none."""

    def __init__(self, retry: Retry, replicas: Replicas, what: str, *, idempotent: bool) -> None:
        self._retry = retry
        self._replicas = replicas
        self._what = what
        self._idempotent = idempotent
        self._pauses = retry.pauses()
        self._failed = 0  # failures in this round
        self._paused = False  # whether a pause was taken since the last progress

    def after(self, error: JobplaneError, failed: Replica) -> float | None:
        """The pause before the next try, on the replica that is current then (0: at once);
        None when `error` is final and must be raised."""
        if not may_retry(error, idempotent=self._idempotent):
            return None
        self._failed += 1
        pause: float | None = 0.0
        if self._failed >= len(self._replicas):
            self._failed = 0
            pause = next(self._pauses, None)
            if pause is None:
                return None
            self._paused = True
        following = self._replicas.move_on(failed)
        log.info("%s at %s failed (%s); trying %s in %.2fs", self._what, failed.address, error,
                 following.address, pause)
        return pause

    def progressed(self) -> None:
        """The call got through (a watch received events): the next failure starts afresh."""
        if self._failed or self._paused:
            self._failed, self._paused = 0, False
            self._pauses = self._retry.pauses()


def submit_request(spec: job_pb2.JobSpec | Mapping[str, Any], request_id: str | None) -> job_pb2.SubmitJobRequest:
    """The SubmitJob request every attempt sends: a fresh request id unless the caller gave one,
    and with one, a fresh call id (the same on this call's every try, so that a retry whose
    first try made the job is not told it was submitted before)."""
    if not isinstance(spec, job_pb2.JobSpec):
        spec = job_spec_from_mapping(spec)
    request_id = str(uuid.uuid4()) if request_id is None else request_id
    return job_pb2.SubmitJobRequest(spec=spec, request_id=request_id, call_id=str(uuid.uuid4()) if request_id else "")
