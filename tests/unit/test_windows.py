"""Run windows: the daily occurrence open now or next, across midnight and time zones, with
hold_until and give_up_after, and when a job that has not started becomes late."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from jobplane.server.domain.windows import Window, bounds, check_window, daily_window, late_point
from jobplane.server.errors import InvalidArgument

UTC = ZoneInfo("UTC")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_a_window_across_midnight_is_the_one_open_now_or_the_next():
    assert daily_window("22:00-04:00", at("2026-12-03T23:30"), UTC) == (at("2026-12-03T22:00"), at("2026-12-04T04:00"))
    assert daily_window("22:00-04:00", at("2026-12-04T03:00"), UTC) == (at("2026-12-03T22:00"), at("2026-12-04T04:00"))
    assert daily_window("22:00-04:00", at("2026-12-04T12:00"), UTC) == (at("2026-12-04T22:00"), at("2026-12-05T04:00"))


def test_windows_are_read_in_the_servers_time_zone():
    berlin = ZoneInfo("Europe/Berlin")  # UTC+1 in December
    assert daily_window("09:00-10:00", at("2026-12-03T07:00"), berlin) == (at("2026-12-03T08:00"), at("2026-12-03T09:00"))


def test_hold_until_and_give_up_after_bound_the_window():
    submitted = at("2026-12-03T12:00")
    w = Window(run_window="22:00-04:00", hold_until=at("2026-12-04T01:00"), give_up_after_seconds=15 * 3600)
    assert bounds(w, submitted, UTC) == (at("2026-12-04T01:00"), at("2026-12-04T03:00"))
    late = Window(hold_until=at("2026-12-05T05:00"), run_window="22:00-04:00")
    assert bounds(late, submitted, UTC) == (at("2026-12-05T22:00"), at("2026-12-06T04:00"))
    assert bounds(Window(hold_until=submitted + 60), submitted, UTC) == (submitted + 60, None)


def test_late_when_half_the_window_is_gone_or_only_the_runtime_is_left():
    assert late_point(0.0, 100.0, 0.0) == 50.0
    assert late_point(0.0, 100.0, 30.0) == 70.0
    assert late_point(0.0, 100.0, 200.0) == 50.0  # it could never fit: half the window
    assert late_point(0.0, None, 30.0) is None


@pytest.mark.parametrize("window, field", [
    (Window(run_window="22:00"), "spec.run_window"),
    (Window(run_window="24:00-01:00"), "spec.run_window"),
    (Window(run_window="10:00-10:00"), "spec.run_window"),
    (Window(give_up_after_seconds=-1), "spec.give_up.after_seconds"),
    (Window(hold_until=100.0, give_up_after=50.0), "spec.give_up.time"),
])
def test_bad_windows_name_the_field(window, field):
    with pytest.raises(InvalidArgument, match=field.replace(".", r"\.")):
        check_window("spec", window)
