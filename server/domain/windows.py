"""When a job may start: a daily run window ("22:00-04:00" in the server's time zone),
`hold_until` and `give_up_after`. A job waits ON_HOLD before its window opens; one that
cannot start inside it is LATE_TO_START and then fails when the window closes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..errors import InvalidArgument
from .limits import check_seconds

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Window:
    run_window: str = ""  # "HH:MM-HH:MM", daily
    hold_until: float | None = None
    give_up_after: float | None = None
    give_up_after_seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.run_window or self.hold_until or self.give_up_after or self.give_up_after_seconds)


def check_window(path: str, w: Window) -> None:
    if w.run_window and not _WINDOW.match(w.run_window):
        raise InvalidArgument(f"{path}.run_window", f"{w.run_window!r} is not HH:MM-HH:MM, e.g. \"22:00-04:00\"")
    if w.run_window and w.run_window[:5] == w.run_window[6:]:
        raise InvalidArgument(f"{path}.run_window", "opens and closes at the same time; leave it out to run any time")
    check_seconds(f"{path}.give_up.after_seconds", w.give_up_after_seconds, "never")
    if w.hold_until and w.give_up_after and w.give_up_after <= w.hold_until:
        raise InvalidArgument(f"{path}.give_up.time", "is not after hold_until; the job could never start")


def bounds(w: Window, submitted: float, zone: ZoneInfo) -> tuple[float, float | None]:
    """(opens, closes): when the job may first start and when it gives up (None: never)."""
    opens = max(submitted, w.hold_until or submitted)
    closes = None
    if w.run_window:
        start, end = daily_window(w.run_window, opens, zone)
        opens, closes = max(opens, start), end
    give_up = [t for t in (w.give_up_after, submitted + w.give_up_after_seconds if w.give_up_after_seconds
                           else None) if t]
    if give_up:
        closes = min(give_up + ([closes] if closes is not None else []))
    return opens, closes


def daily_window(text: str, at: float, zone: ZoneInfo) -> tuple[float, float]:
    """The window occurrence that is open at `at`, else the next one: (opens, closes)."""
    h1, m1, h2, m2 = (int(g) for g in _WINDOW.match(text).groups())
    length = ((h2 * 60 + m2) - (h1 * 60 + m1)) % (24 * 60)
    day = datetime.fromtimestamp(at, zone).date()
    for offset in (-1, 0, 1):
        opens = datetime.combine(day + timedelta(days=offset), time(h1, m1), tzinfo=zone)
        closes = opens + timedelta(minutes=length)
        if closes.timestamp() > at:
            return opens.timestamp(), closes.timestamp()
    raise AssertionError("unreachable: a daily window recurs within two days")  # pragma: no cover


def late_point(opens: float, closes: float | None, max_runtime: float) -> float | None:
    """When a job that has not started inside its window becomes LATE_TO_START: when only
    its max_runtime is left before the close, or else when half the window is gone."""
    if closes is None:
        return None
    if max_runtime and opens < closes - max_runtime:
        return closes - max_runtime
    return opens + (closes - opens) / 2


__all__ = ["Window", "bounds", "check_window", "daily_window", "late_point"]
