"""How far the server falls behind reading its fleet's heartbeats: the heartbeats it took
against those its connected providers promised, second by second. Supervision's clock slows
by the shortfall while the server is behind (its ticks late), so a server that reads 10,000
heartbeats a second but is sent 12,000 does not take the providers whose heartbeats wait on
their connections for silent ones; a fleet that went quiet on a server that is on time is
judged on time (a partition looks the same as dead agents, and is treated as such)."""

from __future__ import annotations

WINDOW = 1.0  # seconds of the server's time per judgement
FEWEST = 10.0  # heartbeats a window must promise to be judged (a few agents' gaps are noise)
SLOWEST = 0.75  # at most this share of a window is credited: supervision's clock runs at least at 1/4


class HeartbeatPace:
    def __init__(self) -> None:
        self._rates: dict[str, float] = {}  # connected providers' promised heartbeats per second
        self.promised = 0.0  # their sum
        self._taken = 0
        self._start: float | None = None
        self._behind = False  # a tick of this window came late
        self._credited = 0.0  # seconds of this window's late ticks already credited as stalls

    def track(self, provider_id: str, heartbeat: float, connected: bool) -> None:
        """A provider's promise as it stands now (connected, with its heartbeat interval)."""
        rate = 1.0 / heartbeat if connected and heartbeat > 0 else 0.0
        if self._rates.get(provider_id, 0.0) == rate:
            return  # as it was (most calls: a provider looked at again)
        old = self._rates.pop(provider_id, 0.0)
        if rate:
            self._rates[provider_id] = rate
        self.promised = max(0.0, self.promised + rate - old) if self._rates else 0.0

    def taken(self, count: int) -> None:
        """The core took `count` heartbeats."""
        self._taken += count

    def late(self, seconds: float) -> None:
        """A tick came `seconds` late and was credited as a stall."""
        self._behind = True
        self._credited += seconds

    def credit(self, now: float) -> float:
        """At each tick: seconds to credit for the window that ends now (0 until one does).
        The shortfall of heartbeats taken against those promised, as a share of the window,
        when the server was behind in it, less what its late ticks were credited already."""
        if self._start is None or now < self._start:
            self._start = now
            return 0.0
        span = now - self._start
        if span < WINDOW:
            return 0.0
        expected = self.promised * span
        credit = 0.0
        if self._behind and expected >= FEWEST and self._taken < expected:
            credit = max(0.0, min(SLOWEST, 1.0 - self._taken / expected) * span - self._credited)
        self._start, self._taken, self._behind, self._credited = now, 0, False, 0.0
        return credit


__all__ = ["HeartbeatPace"]
