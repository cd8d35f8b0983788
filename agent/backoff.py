"""How long an agent waits before it tries a server again after its link failed: doubling from
`first` up to `cap`, each pause drawn at random between half and all of its ceiling (equal
jitter). Thousands of agents that lost their stream at one moment (a server restart, a takeover,
a burst of streams the server's gRPC core cancelled under load) then come back spread over each
interval rather than all at once at its end, which is what made the next burst; and none waits
longer than `cap`, which the hello promises the server (reconnect_backoff_max_seconds) and the
server sizes its restart grace by."""

from __future__ import annotations

import os
from collections.abc import Callable


def _uniform() -> float:
    """Uniform in [0, 1), from the OS (not `random`: the module costs an idle agent memory)."""
    return int.from_bytes(os.urandom(7), "big") / (1 << 56)


class Backoff:
    def __init__(self, first: float, cap: float, draw: Callable[[], float] = _uniform) -> None:
        if not 0 < first <= cap:
            raise ValueError("Backoff needs 0 < first <= cap")
        self.first = first
        self.cap = cap
        self._draw = draw  # uniform in [0, 1)
        self._ceiling = first

    def next(self) -> float:
        """The pause before the next try; the ceiling doubles for the one after (up to `cap`)."""
        ceiling, self._ceiling = self._ceiling, min(self._ceiling * 2, self.cap)
        return ceiling * (0.5 + 0.5 * self._draw())

    def reset(self) -> None:
        """The link worked again: the next failure starts from `first`."""
        self._ceiling = self.first
