"""How a Python call ended, as an attempt's result: the worker's reply (returned or raised), or
the worker's death under it (pyworkers.py's pool decides which)."""

from __future__ import annotations

import signal

from . import pyworker
from .results import AttemptResult, Outcome


def from_reply(reply: pyworker.Reply) -> AttemptResult:
    if reply.status == "ok":
        return AttemptResult(
            outcome=Outcome.SUCCEEDED,
            result_json=reply.result_json,
            stdout_tail=reply.stdout_tail,
            stderr_tail=reply.stderr_tail,
            raw={"state": "returned"},
        )
    return AttemptResult(
        outcome=Outcome.FAILED,
        error=reply.error,
        stdout_tail=reply.stdout_tail,
        stderr_tail=reply.stderr_tail,
        raw={"state": "raised", "exception_type": reply.exception_type},
    )


def died(target: str, exit_code: int | None) -> AttemptResult:
    if exit_code is not None and exit_code < 0:
        try:
            how = f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            how = f"was killed by signal {-exit_code}"
    else:
        how = f"exited with code {exit_code}"
    return AttemptResult(
        outcome=Outcome.FAILED,
        error=f"the python worker running {target} {how}",
        raw={"state": "crashed"},
    )


__all__ = ["died", "from_reply"]
