"""What the client and the agent share to reach a server: where it is, the files a local
server keeps for its users, a secret given as text or `@PATH`, and the gRPC channel options.

It sits in the root package so that the agent reaches a server without importing the client
SDK (jobplane.client, which loads every service's stubs and job files); jobplane.client.channel
and jobplane.client.credentials build on it. It needs nothing but the standard library.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TARGET = "localhost:7070"
# `jobplane up` records its address here (inside the data dir) for other commands on this machine.
UP_STATE_FILE = "up.json"
# The files a jobplane server keeps in its data directory for clients on the same machine.
CA_BUNDLE_FILE = "ca-bundle.crt"
ADMIN_TOKEN_FILE = "admin.token"
# Jobs with many tasks and batched agent messages are larger than gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # A server that stops answering (frozen, or cut off without the connection closing) breaks
    # the calls on it after keepalive_time + keepalive_timeout. gRPC waits for a ping's answer
    # for the smaller of keepalive_timeout and ping_timeout (a minute by default): both are set.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.ping_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Fail fast and let our own reconnect loops pace retries.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    # How long one attempt to connect (TCP and TLS handshake) may take, 20 s by default: a
    # replica that accepts connections but never answers (SIGSTOP) is given up this soon, and
    # the call goes to the next one, as it certainly reached no server.
    ("grpc.min_reconnect_backoff_ms", 3_000),
]


@dataclass(frozen=True)
class ServerTarget:
    """A server address and where it came from (for messages such as "nothing listens at ...")."""

    address: str
    source: str


def default_data_dir() -> Path:
    """$JOBPLANE_HOME, else ~/.local/share/jobplane: where `jobplane up` keeps its state."""
    home = os.environ.get("JOBPLANE_HOME")
    return Path(home) if home else Path.home() / ".local" / "share" / "jobplane"


def up_state_path(data_dir: Path | None = None) -> Path:
    """The file in which a running `jobplane up` records its address and pid."""
    return (data_dir or default_data_dir()) / UP_STATE_FILE


def read_up_state(path: Path) -> dict | None:
    """The state of the `jobplane up` recorded at `path`, or None if absent, unreadable or stale."""
    try:
        state = json.loads(path.read_text())
        address, pid = state["server"], int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(address, str) or not _process_exists(pid):
        return None  # left behind by an `up` that was killed
    return state


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def locate_server(target: str | None) -> ServerTarget:
    """The server to talk to: the flag, else $JOBPLANE_SERVER, else the local `up`, else the default."""
    if target:
        return ServerTarget(target, "--server")
    if env := os.environ.get("JOBPLANE_SERVER"):
        return ServerTarget(env, "$JOBPLANE_SERVER")
    path = up_state_path()
    if state := read_up_state(path):
        return ServerTarget(state["server"], f"jobplane up, {path}")
    return ServerTarget(DEFAULT_TARGET, "default")


def resolve_target(target: str | None) -> str:
    """The server address: the argument, else $JOBPLANE_SERVER, else the local `up`, else the default."""
    return locate_server(target).address


def read_secret(value: str) -> str:
    """The secret in `value`, or in the file `@PATH` names (surrounding whitespace dropped).

    Raises ValueError, saying why, if that file cannot be read or is empty.
    """
    if not value.startswith("@"):
        return value.strip()
    path = Path(value[1:]).expanduser()
    try:
        secret = path.read_text().strip()
    except OSError as error:
        raise ValueError(f"cannot read the token file {path}: {error.strerror or error}") from None
    if not secret:
        raise ValueError(f"the token file {path} is empty")
    return secret
