"""Retrying a submit: safe because every attempt carries the same request id (the server makes
one job per id), so a submit whose answer was lost is simply asked again. UNAVAILABLE and
DEADLINE_EXCEEDED are retried, and UNKNOWN from a broken transport (gRPC's "Stream removed" when
a connection is cut mid-message; the server itself never answers UNKNOWN), after exponentially
growing pauses with jitter; `Client` and `AsyncClient` both drive their loops from here."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from jobplane.client.errors import DeadlineExceeded, JobplaneError, Unavailable
from jobplane.client.jobfile import job_spec_from_mapping
from jobplane.v1 import job_pb2

log = logging.getLogger(__name__)

RETRYABLE = (Unavailable, DeadlineExceeded)
TRANSPORT_BROKE = ("Stream removed", "Socket closed", "Connection reset")  # UNKNOWN details gRPC gives then


def retryable(error: JobplaneError) -> bool:
    """Whether the submit may not have been answered because the way to the server failed."""
    if isinstance(error, RETRYABLE):
        return True
    return error.code == grpc.StatusCode.UNKNOWN and any(s in str(error) for s in TRANSPORT_BROKE)


@dataclass(frozen=True)
class Retry:
    """How often a submit is tried, and how long to pause in between: before try n+1, a random
    pause between half and all of `first_pause × 2ⁿ⁻¹`, at most `max_pause`. Each try has the
    client's `timeout` as its deadline. `Retry(attempts=1)` never retries."""

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


def submit_request(spec: job_pb2.JobSpec | Mapping[str, Any], request_id: str | None) -> job_pb2.SubmitJobRequest:
    """The SubmitJob request every attempt sends: a fresh request id unless the caller gave one."""
    if not isinstance(spec, job_pb2.JobSpec):
        spec = job_spec_from_mapping(spec)
    return job_pb2.SubmitJobRequest(spec=spec, request_id=str(uuid.uuid4()) if request_id is None else request_id)


def next_pause(pauses: Iterator[float], error: JobplaneError, request: job_pb2.SubmitJobRequest) -> float | None:
    """The pause before trying `request` again after `error`; None when it must not be retried
    (another error, no tries left, or no request id to make the retry safe)."""
    pause = next(pauses, None) if retryable(error) and request.request_id else None
    if pause is not None:
        log.info("submit failed with %s; trying again in %.2fs with the same request id %s",
                 error.code.name, pause, request.request_id)
    return pause
