"""How a command attempt ended, as the agent reports it: its exit status as raw properties and
an outcome, and the tails of its output (from the log store, or the files of an agent of before).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from . import logstore
from .results import TAIL_LIMIT, AttemptResult, Outcome, StopRequest

_SIGNAL_BASE = 128


def tails(directory: Path | str, summary: dict | None = None) -> tuple[str, str]:
    if summary is not None:  # the keeper said how much each stream wrote: nothing to list
        out, err = (logstore.span_of(summary["output"][s], summary["segment"]) for s in logstore.STREAMS)
        if not (out.end or err.end):
            return "", ""
        logs = logstore.log_dir(directory)
        return (logstore.tail(logs, "out", TAIL_LIMIT, out) if out.end else "",
                logstore.tail(logs, "err", TAIL_LIMIT, err) if err.end else "")
    logs = logstore.log_dir(directory)
    out = logstore.span(logs, "out")
    if out is None:  # started by an agent of before the log store
        return _tail(os.path.join(directory, "out")), _tail(os.path.join(directory, "err"))
    return logstore.tail(logs, "out", TAIL_LIMIT, out), logstore.tail(logs, "err", TAIL_LIMIT)


def _tail(path: str) -> str:
    """The last TAIL_LIMIT bytes of a file, decoded (a character cut at the front becomes U+FFFD)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_LIMIT))
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def result(
    returncode: int | None, stopped: StopRequest | None, stdout: str, stderr: str
) -> AttemptResult:
    raw, exit_code = _exit_status(returncode)
    if stopped is not None:
        # We ended it, so its exit status is no verdict on the task: it stays in `raw` only.
        return stopped.result(raw, stdout_tail=stdout, stderr_tail=stderr)
    if exit_code == 0:
        outcome, error = Outcome.SUCCEEDED, ""
    elif exit_code is not None:
        outcome, error = Outcome.FAILED, f"exited with code {exit_code}"
    elif "signal" in raw:
        outcome, error = Outcome.FAILED, f"killed by {raw['signal']}"
    else:
        outcome, error = Outcome.FAILED, "ended while the agent was away, leaving no exit status"
        raw = {"state": "unknown"}
    state = "exited" if exit_code is not None else "signaled"
    return AttemptResult(
        outcome=outcome,
        exit_code=exit_code,
        error=error,
        stdout_tail=stdout,
        stderr_tail=stderr,
        raw={"state": state, **raw},
    )


def _exit_status(returncode: int | None) -> tuple[dict[str, str], int | None]:
    """Raw properties and exit code of an exit file's status: -N is signal N, 128+N a signal
    to a command run by a shell (the shell's convention)."""
    if returncode is None:
        return {}, None
    if returncode < 0:
        return {"signal": _signal_name(-returncode)}, None
    if returncode > _SIGNAL_BASE and _is_signal(returncode - _SIGNAL_BASE):
        return {"signal": _signal_name(returncode - _SIGNAL_BASE)}, None
    return {"exit_code": str(returncode)}, returncode


def _is_signal(number: int) -> bool:
    try:
        signal.Signals(number)
    except ValueError:
        return False
    return True


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
