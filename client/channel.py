"""Channel setup shared by the SDK, the CLI and the agent."""

from __future__ import annotations

import os

import grpc

DEFAULT_TARGET = "localhost:7070"
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


def resolve_target(target: str | None) -> str:
    """The server address: the argument, else $JOBPLANE_SERVER, else the default."""
    return target or os.environ.get("JOBPLANE_SERVER") or DEFAULT_TARGET


def open_channel(target: str) -> grpc.Channel:
    """A blocking channel to the server."""
    return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)


def open_aio_channel(target: str) -> grpc.aio.Channel:
    """An asyncio channel to the server."""
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
