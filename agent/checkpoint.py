"""The task's side of checkpoints: save progress as it runs, resume from it in a later attempt.

A command task written in Python::

    from jobplane.agent import checkpoint

    state = checkpoint.load(default={"i": 0})
    for i in range(state["i"], 100):
        ...  # one step of work
        checkpoint.save({"i": i + 1})

A Python-callable task takes a `ctx` parameter instead (a `TaskContext`) and calls
`ctx.checkpoint(state)`; `ctx.resume` is where it left off. This module imports no gRPC, so
tasks can import it cheaply.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from jobplane.files import write_atomic

# The latest checkpoint of an earlier attempt, as JSON; unset when the task starts afresh.
CHECKPOINT_ENV = "JOBPLANE_CHECKPOINT"
# Where a command task writes its checkpoint; the agent watches this file.
CHECKPOINT_FILE_ENV = "JOBPLANE_CHECKPOINT_FILE"
# Larger states are refused: a checkpoint is a position to resume from, not the task's data.
MAX_CHECKPOINT_BYTES = 1024 * 1024


def save(state: Any) -> None:
    """Write `state` as the task's checkpoint (atomically); the agent streams it to the server."""
    path = os.environ.get(CHECKPOINT_FILE_ENV, "")
    if not path:
        raise RuntimeError(
            f"{CHECKPOINT_FILE_ENV} is not set: this task is not running as a command task of a "
            "jobplane agent (Python-callable tasks take a `ctx` parameter and call "
            "ctx.checkpoint(state))")
    # Readers see the old state or the new one, never half of one.
    write_atomic(path, encode(state), mode=0o600, durable=False)


def load(default: Any = None) -> Any:
    """The checkpoint this attempt resumes from, decoded; `default` when it starts afresh."""
    text = os.environ.get(CHECKPOINT_ENV, "")
    return json.loads(text) if text else default


def encode(state: Any) -> str:
    """`state` as compact JSON; TypeError or ValueError saying why it cannot be a checkpoint."""
    try:
        text = json.dumps(state, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"the checkpoint state is not JSON-serialisable: {exc}") from exc
    except ValueError as exc:  # NaN or infinity, or a circular reference
        raise ValueError(f"the checkpoint state is not valid JSON: {exc}") from exc
    if len(text.encode()) > MAX_CHECKPOINT_BYTES:
        raise ValueError(f"the checkpoint state is {len(text.encode())} bytes as JSON; "
                         f"the limit is {MAX_CHECKPOINT_BYTES}")
    return text


class TaskContext:
    """Passed as `ctx` to a Python-callable task that has a `ctx` parameter."""

    def __init__(self, *, task_id: str, job_id: str, attempt: int, resume: Any,
                 send: Callable[[str], None]) -> None:
        self.task_id = task_id
        self.job_id = job_id
        self.attempt = attempt
        # The latest checkpoint of an earlier attempt, decoded; None when starting afresh.
        self.resume = resume
        self._send = send
        self._lock = threading.Lock()  # the task may checkpoint from threads of its own
        self._open = True

    def checkpoint(self, state: Any) -> None:
        """Report `state` (JSON-serialisable) as the progress; a later attempt resumes there."""
        text = encode(state)
        with self._lock:
            if not self._open:
                raise RuntimeError("ctx.checkpoint() was called after the task returned")
            self._send(text)

    def close(self) -> None:
        """The call has ended: later checkpoints are refused."""
        with self._lock:
            self._open = False

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt})"
