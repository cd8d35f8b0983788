"""What the agent and its keeper share: file names, timings, and the socket's framing.

The keeper listens on a unix socket in the state directory; each message is one JSON object
on one line. The agent says hello, renews, sets the grace, registers its Python workers,
adopts, starts, suspends and settles attempts, and says bye; the keeper answers requests by their id,
and tells an attempt's holder when it has ended (`ended`). Its welcome says what it does that a
keeper of before did not (`ends`: it pushes `ended`; `dirs`: it makes each attempt's directory;
`env`: it takes the agent's environment in the hello, and each start's as a difference from it;
`spares`: it renames a start's `spare` directory into place rather than make one),
as a keeper outlives the agent that started it, and may meet a newer one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

SOCKET_FILE = "keeper.sock"
LOCK_FILE = "keeper.lock"
LOG_FILE = "keeper.log"
# The keeper's parent, which ends its attempts if it dies (keeper_guard.py), as `ps` names it.
GUARD_NAME = "jobplane-guard"
# In an attempt's directory: the keeper killed it because no agent held its lease.
LOST_FILE = "lost"

# How often the agent renews its lease.
RENEW_INTERVAL = 0.2
# Once the keeper decides an attempt goes, it is gone (process table and cgroup) within this.
KILL_DEADLINE = 1.0
# The reconnect grace until the agent passes on the server's.
DEFAULT_GRACE = 1.0
# How long a keeper waits for its first agent process before it gives up.
STARTUP_WAIT = 10.0
# Sockets paths longer than this are reached through /proc/self/fd (the limit is 107 bytes).
_SHORT_PATH = 100


# One encoder for every message (json.dumps with separators makes a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode(message: dict) -> bytes:
    return _ENCODER.encode(message).encode() + b"\n"


def started(request_id: object, pid: int, start: int | None) -> bytes:
    """encode() of the `started` reply, formatted directly where its fields are plain ints
    (the same bytes): one per attempt, on the keeper's hot path."""
    if type(request_id) is int and type(start) is int:
        return b'{"op":"started","id":%d,"pid":%d,"start":%d}\n' % (request_id, pid, start)
    return encode({"op": "started", "id": request_id, "pid": pid, "start": start})


def ended(pid: int, summary: dict) -> bytes:
    """encode() of the `ended` news of an attempt (Attempt.summary), formatted directly where
    it is the common case (an exit status, not killed as lost): the same bytes."""
    status, output = summary["status"], summary["output"]
    if type(status) is int and summary["lost"] == "" and len(summary) == 4 and len(output) == 2:
        return b'{"op":"ended","pid":%d,"status":%d,"lost":"","output":{"out":%d,"err":%d},"segment":%d}\n' % (
            pid, status, output["out"], output["err"], summary["segment"])
    return encode({"op": "ended", "pid": pid, **summary})


def decode(line: bytes) -> dict:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, got {type(message).__name__}")
    return message


@contextlib.contextmanager
def address(state_dir: Path | str) -> Iterator[str]:
    """The keeper socket's path, short enough for a unix socket address however deep the
    state directory is (through an O_PATH descriptor of it while the block runs)."""
    path = os.path.join(state_dir, SOCKET_FILE)
    if len(path) <= _SHORT_PATH:
        yield path
        return
    fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{SOCKET_FILE}"
    finally:
        os.close(fd)


def listen(state_dir: Path) -> socket.socket:
    """The keeper's listening socket; only this user may connect (mode 0600, peer checked)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with address(state_dir) as path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a socket left by a keeper that was killed; we hold the lock
        old_umask = os.umask(0o177)
        try:
            listener.bind(path)
        finally:
            os.umask(old_umask)
    listener.listen(16)
    listener.setblocking(False)
    return listener


def unlisten(state_dir: Path, listener: socket.socket) -> None:
    """Close the listening socket and remove its file, so no one connects to a keeper that has gone."""
    with contextlib.suppress(OSError), address(state_dir) as path:
        os.unlink(path)
    listener.close()
