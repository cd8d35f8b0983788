"""A big fleet's agent streams are kept out of the collector's full passes: frozen as the fleet
grows by a quarter, and thawed for one full collection once a quarter of the frozen ones ended.
Judged by the interpreter's own GC state (what a full pass would walk)."""

import gc

import pytest

from jobplane.server.services.fleet_gc import SMALLEST, FleetFreezer


@pytest.fixture
def thawed():
    gc.unfreeze()
    yield
    gc.unfreeze()


class Cycle:
    def __init__(self):
        self.me = self


def test_a_growing_fleet_is_frozen_a_quarter_at_a_time_and_its_cycles_collected_once_a_quarter_ended(thawed):
    freezer = FleetFreezer()
    for n in range(1, SMALLEST):
        freezer.opened(n)
    assert gc.get_freeze_count() == 0, "a small fleet froze: a full pass over it is cheap"
    streams = [Cycle() for _ in range(SMALLEST)]  # what the fleet's streams hold, in cycles
    freezer.opened(SMALLEST)
    frozen = gc.get_freeze_count()
    assert frozen >= SMALLEST, "the fleet's objects are still walked by every full pass"
    newer = [Cycle() for _ in range(SMALLEST)]  # a stream more: its objects are young, not frozen
    freezer.opened(SMALLEST + 1)
    assert gc.get_freeze_count() < frozen + SMALLEST // 2, "froze again before the fleet grew by a quarter"
    del newer
    del streams  # they all ended: only cycles are left, which a frozen object never leaves
    open_ = SMALLEST + 1
    for _ in range(SMALLEST // 4 - 1):
        open_ -= 1
        freezer.ended(open_)
    assert gc.get_freeze_count() > frozen - SMALLEST // 2, "thawed before a quarter of the frozen streams ended"
    freezer.ended(open_ - 1)
    assert gc.get_freeze_count() < frozen - SMALLEST // 2, "the ended streams' cycles stay frozen"
