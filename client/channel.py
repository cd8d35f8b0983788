"""Channel setup shared by the SDK, the CLI and the agent, and where to find the server."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

DEFAULT_TARGET = "localhost:7070"
# `jobplane up` records its address here (inside the data dir) for other commands on this machine.
UP_STATE_FILE = "up.json"
# Jobs with many tasks and batched agent messages are larger than gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Fail fast and let our own reconnect loops pace retries.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
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


def open_channel(target: str) -> grpc.Channel:
    """A blocking channel to the server."""
    return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)


def open_aio_channel(target: str) -> grpc.aio.Channel:
    """An asyncio channel to the server."""
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
