"""What the agent's link (link.py) needs from the two parties it works for: the agent that owns
it (LinkHandler), and the credentials it reaches the server with (Credentials)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import grpc

from jobplane.v1 import provider_pb2

from .replicas import Targets


class LinkHandler(Protocol):
    """What the link needs from the agent that owns it."""

    def held_attempts(self) -> list[tuple[str, int]]:
        """(task_id, attempt) of every attempt held: running, queued, or finished but unacknowledged."""

    def free_slots(self) -> int:
        """Slots neither running nor holding a queued attempt."""

    def running_count(self) -> int:
        """Attempts running right now."""

    def on_assign(self, assignments: list[provider_pb2.Assignment]) -> None:
        """Start (or queue) these attempts."""

    def on_cancel(self, attempts: list[provider_pb2.AttemptRef], reason: str) -> None:
        """Stop these attempts if they are running."""

    def on_give_back(self, attempts: list[provider_pb2.AttemptRef], reason: str) -> None:
        """Give back those of these attempts that have not started; leave those that have."""

    def on_suspend(self, attempts: list[provider_pb2.AttemptRef], resume: bool, reason: str) -> None:
        """Pause these attempts in place (or, with `resume`, continue them)."""

    async def running_status(self) -> list[provider_pb2.AttemptStatus]:
        """Progress of every running attempt, for a probe."""

    def containment(self) -> tuple[str, float]:
        """How attempts are contained (cgroup, subreaper), and the keeper's kill deadline."""

    def on_welcome(self, welcome: provider_pb2.Welcome) -> None:
        """The server welcomed a stream (it says its reconnect grace)."""

    def attempt_logs(self, task_id: str, attempt: int) -> tuple[Path, Callable[[], bool]]:
        """Where an attempt's output is kept, and a test of whether the attempt is still held."""


class Credentials(Protocol):
    """How the link reaches the server (credentials.py): plaintext, or mutual TLS kept renewed."""

    @property
    def targets(self) -> Targets:
        """The agent addresses of the server's replicas, and which one to try now."""

    @property
    def generation(self) -> int:
        """Bumped whenever the credentials change (a renewed certificate)."""

    async def ready(self) -> None:
        """Load or obtain the credentials; raises AgentError if that is impossible."""

    def open_channel(self, target: str, options: list[tuple[str, int]]) -> grpc.aio.Channel:
        """A channel to `target` with the current credentials."""

    async def changed(self, generation: int) -> None:
        """Return once the credentials are newer than `generation`."""

    async def keep_renewed(self) -> None:
        """Renew the credentials before they expire, for as long as the link runs."""
