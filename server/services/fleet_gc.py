"""Keeping a big fleet's streams out of the garbage collector's full passes. Each agent stream
holds about a hundred objects the collector tracks (its call, context, task, reader, queue and
frames) for as long as it is connected: with 20,000 agents, a full pass walks two million of
them and holds the event loop for up to a second (every heartbeat waits; supervision credits
the stall). Start-up freezes what it made (app.py); this freezes the streams too, each time the
fleet grew by a quarter since the last freeze (gc.freeze is cheap: the young generations are
moved, not walked), so a full pass walks only what is new. Streams that end while frozen are
freed by reference counting; what they leave in cycles waits until a quarter of the frozen
fleet has ended, then one full collection (unfrozen) takes it and the rest is frozen again."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

SMALLEST = 1000  # streams: below this a full pass is cheap, nothing is frozen for it
GROWTH = 1.25  # freeze again once the fleet is this much bigger than at the last freeze


class FleetFreezer:
    def __init__(self) -> None:
        self._frozen_at = 0  # streams open at the last freeze
        self._ended = 0  # streams ended since

    def opened(self, streams: int) -> None:
        """A stream was welcomed; `streams` are open now."""
        if streams >= max(SMALLEST, self._frozen_at * GROWTH):
            gc.collect(1)  # the young generations' garbage is not frozen with the rest
            gc.freeze()
            self._frozen_at, self._ended = streams, 0

    def ended(self, streams: int) -> None:
        """A stream ended; `streams` are open now."""
        if not self._frozen_at:
            return
        self._ended += 1
        if self._ended * 4 >= self._frozen_at:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            log.info("collected the cycles %d ended agent streams left; %d open", self._ended, streams)
            self._frozen_at, self._ended = streams if streams >= SMALLEST else 0, 0


__all__ = ["FleetFreezer"]
