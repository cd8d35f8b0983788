"""How an attempt ended: the one type the agent builds and the server's domain reads.

The agent's runners produce an `AttemptResult`; it travels as the `finished` TaskReport (AttemptFinished) of
jobplane.v1 (the wire type, converted once on each side: agent/outbox.py, and the server's
services/convert.py); the server's engine records what it says. Plain Python, no protobuf or
database: the server's domain may import it, and so may the agent (neither imports the other).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Outcome(IntEnum):
    """How an attempt ended; the numbers are AttemptOutcome's on the wire."""

    SUCCEEDED = 1
    FAILED = 2
    CANCELLED = 3
    TIMED_OUT = 4


@dataclass(frozen=True)
class AttemptResult:
    """The end of one attempt: its outcome, details and the raw properties its runner saw."""

    outcome: Outcome
    exit_code: int | None = None
    result_json: str = ""
    error: str = ""
    stdout_tail: str = ""
    stderr_tail: str = ""
    raw: dict[str, str] = field(default_factory=dict)
