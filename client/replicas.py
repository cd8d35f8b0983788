"""The server replicas a client talks to: a channel to each, and the one to use now.

Replicas share one database (issue 16): any of them answers reads and watches and passes
changes on to the one that leads, so a client uses whichever is up. It stays with the replica
that answered last and moves on to the next in the list when a call finds it unreachable;
retry.py says when a failed call may be tried again, and how soon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobplane.client.calls import Stubs


@dataclass(frozen=True, eq=False)
class Replica:
    """One server address, its channel (blocking or asyncio) and the stubs made on it."""

    address: str
    channel: Any
    stubs: Stubs


class Replicas:
    """The replicas in the order given; `current` is the one calls go to."""

    def __init__(self, channels: Mapping[str, Any]) -> None:
        if not channels:
            raise ValueError("a client needs the channel to at least one server")
        self._all = [Replica(address, channel, Stubs(channel)) for address, channel in channels.items()]
        self._current = 0

    def __len__(self) -> int:
        return len(self._all)

    @property
    def current(self) -> Replica:
        return self._all[self._current]

    @property
    def channels(self) -> list[Any]:
        return [replica.channel for replica in self._all]

    def move_on(self, failed: Replica) -> Replica:
        """The replica to try after `failed`: the next one, unless another call (another
        thread, or coroutine) moved on from it already."""
        if self._all[self._current] is failed:
            self._current = (self._current + 1) % len(self._all)
        return self.current
