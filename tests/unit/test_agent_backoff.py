"""An agent's reconnect pauses grow to the cap it promises the server and are spread at random,
so that a fleet that lost its streams at one moment does not come back at one moment."""

from __future__ import annotations

import random

import pytest

from jobplane.agent.backoff import Backoff
from jobplane.agent.link import BACKOFF_CAP, BACKOFF_FIRST


def test_pauses_double_up_to_the_cap_each_between_half_and_all_of_its_ceiling():
    backoff = Backoff(0.1, 2.0)
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    for ceiling in ceilings:
        assert ceiling / 2 <= backoff.next() <= ceiling
    backoff.reset()
    assert 0.05 <= backoff.next() <= 0.1


def test_a_fleet_cut_off_at_once_comes_back_spread_out():
    """1000 agents' first pauses after one outage: spread over the interval, not one instant."""
    rng = random.Random(7)
    pauses = [Backoff(BACKOFF_FIRST, BACKOFF_CAP, rng.random).next() for _ in range(1000)]
    assert len({round(p, 3) for p in pauses}) > 40
    assert max(pauses) <= BACKOFF_FIRST and min(pauses) >= BACKOFF_FIRST / 2


def test_no_pause_is_longer_than_the_cap_promised_in_the_hello():
    backoff = Backoff(BACKOFF_FIRST, BACKOFF_CAP, lambda: 0.999999)
    assert max(backoff.next() for _ in range(50)) <= BACKOFF_CAP


def test_a_cap_below_the_first_pause_is_refused():
    with pytest.raises(ValueError):
        Backoff(3.0, 2.0)
