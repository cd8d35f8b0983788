"""What running an attempt produces, and how an attempt is asked to stop early.

`AttemptResult` and `Outcome` are the ones the server's domain reads too (jobplane.attempts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobplane.attempts import AttemptResult, Outcome

if TYPE_CHECKING:  # only for hints: a Python worker imports this module, and needs no asyncio
    import asyncio

__all__ = ["NOT_STARTED", "SHUTDOWN_STATE", "TAIL_LIMIT", "AttemptLost", "AttemptResult", "Outcome", "Started",
           "StopRequest", "request_stop"]

# Bytes (commands) or characters (Python tasks) kept of each output stream.
TAIL_LIMIT = 4096
# The raw state of an attempt the agent stopped because it is shutting down.
SHUTDOWN_STATE = "agent_shutdown"
# The raw state of an attempt queued ahead that the agent gave back unstarted (Assignment.queued_ahead).
NOT_STARTED = "not_started"


def _no_output() -> int:
    return 0


@dataclass(frozen=True)
class Started:
    """What a runner says when an attempt starts: where it runs, and how to count its output."""

    # The process group running it (a command's own group, or its Python worker's).
    pgid: int
    # Bytes of output so far; grows while the attempt does something observable.
    output_bytes: Callable[[], int] = _no_output


@dataclass(frozen=True)
class StopRequest:
    """Why an attempt is being stopped from outside: the outcome to report and the raw state."""

    outcome: Outcome
    reason: str
    raw_state: str
    # For an attempt that follows an outside job (external, slurm): the job that another
    # attempt of the task follows now, which the stop leaves running if it is this one's.
    handed_on_job: str = ""

    @classmethod
    def cancel(cls, reason: str, handed_on_job: str = "") -> StopRequest:
        """The server cancelled the attempt (or, if it follows `handed_on_job`, handed it on)."""
        return cls(Outcome.CANCELLED, reason or "cancelled", "cancelled", handed_on_job)

    @classmethod
    def give_back(cls, reason: str) -> StopRequest:
        """The server took back an attempt that had not started (Cancellations.unstarted_only)."""
        return cls(Outcome.CANCELLED, f"given back unstarted: {reason}", NOT_STARTED)

    @classmethod
    def timeout(cls, seconds: float) -> StopRequest:
        """The attempt ran past its spec's timeout."""
        return cls(Outcome.TIMED_OUT, f"timed out after {seconds:g} s", "timed_out")

    @classmethod
    def shutdown(cls) -> StopRequest:
        """The agent is shutting down."""
        return cls(Outcome.FAILED, "agent shutting down", SHUTDOWN_STATE)

    def leaves_running(self, job_id: str) -> bool:
        """Whether stopping an attempt that follows outside job `job_id` leaves the job running
        in its scheduler: when another attempt follows it now, or when the agent is leaving
        (whoever continues the attempt follows the job on, from its id: the server's record,
        or this agent's state directory)."""
        return self.raw_state == SHUTDOWN_STATE or (self.handed_on_job != "" and self.handed_on_job == job_id)

    def result(
        self, raw: dict[str, str] | None = None, *, stdout_tail: str = "", stderr_tail: str = ""
    ) -> AttemptResult:
        """The result of an attempt stopped for this reason; `raw` adds what the runner saw."""
        return AttemptResult(
            outcome=self.outcome,
            error=self.reason,
            stdout_tail=stdout_tail,
            stderr_tail=stderr_tail,
            raw={"state": self.raw_state, **(raw or {})},
        )


class AttemptLost(Exception):
    """The agent's keeper killed the attempt because no agent process held its lease in time
    (the agent died or froze). The server continues the task elsewhere: it is not reported."""


def request_stop(stop: asyncio.Future[StopRequest], request: StopRequest) -> None:
    """Ask an attempt to stop; the first request wins, later ones are ignored."""
    if not stop.done():
        stop.set_result(request)
