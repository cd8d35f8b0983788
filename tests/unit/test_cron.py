"""Cron expressions: the parser's errors name the field and the fix; next times are local
wall-clock times, with daylight-saving changes skipped (a missing time) or run once (a repeated
one). Europe/Berlin springs forward on 2026-03-29 (02:00 -> 03:00) and falls back on 2026-10-25
(03:00 -> 02:00)."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from jobplane.server.domain.cron import parse_cron, zone_of
from jobplane.server.errors import InvalidArgument

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


def at(text: str, zone: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def local(ts: float, zone: ZoneInfo = BERLIN) -> str:
    return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M %Z")


def runs(expr: str, start: str, n: int, zone: ZoneInfo = BERLIN) -> list[str]:
    cron, t, out = parse_cron(expr), at(start, zone), []
    for _ in range(n):
        t = cron.next_after(t, zone)
        out.append(local(t, zone))
    return out


@pytest.mark.parametrize("expr, message", [
    ("0 25 * * *", 'schedule: "0 25 * * *": hour 25 is out of range 0-23'),
    ("60 * * * *", "minute 60 is out of range 0-59"),
    ("0 0 0 * *", "day of month 0 is out of range 1-31"),
    ("0 0 * 13 *", "month 13 is out of range 1-12"),
    ("0 0 * * 8", "day of week 8 is out of range 0-7"),
    ("0 2 * *", "has 4 fields; a schedule has 5: minute hour day-of-month month day-of-week"),
    ("0 2 * * * *", "has 6 fields"),
    ("*/0 * * * *", "minute step '0' is not a whole number of at least 1"),
    ("0 5-2 * * *", "hour range 5-2 runs backwards; write it low to high, e.g. 2-5"),
    ("0 x * * *", "hour 'x' is not a number; use 0-23"),
    ("0 0 * FOO *", "month 'FOO' is not a number, or a name like JAN; use 1-12"),
    ("0 0 1,,2 * *", "day of month has an empty list item"),
    ("0 0 31 2 *", "day of month 31 never occurs in FEB; pick a day those months have"),
])
def test_bad_expressions_name_the_field_and_the_fix(expr, message):
    with pytest.raises(InvalidArgument) as caught:
        parse_cron(expr)
    assert caught.value.field == "schedule"
    assert message in str(caught.value)


def test_a_bad_time_zone_names_the_field():
    with pytest.raises(InvalidArgument, match=r"time_zone: 'Mars/Olympus' is not a known IANA time zone"):
        zone_of("Mars/Olympus")


def test_fields_lists_ranges_steps_and_names():
    c = parse_cron("*/15 9-17/4 1,15 JAN-MAR mon-fri")
    assert c.minutes == {0, 15, 30, 45} and c.hours == {9, 13, 17}
    assert c.days == {1, 15} and c.months == {1, 2, 3} and c.weekdays == {1, 2, 3, 4, 5}
    assert parse_cron("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    assert parse_cron("@daily").hours == {0} and parse_cron("@daily").minutes == {0}


def test_next_times_daily_and_every_minute():
    assert runs("0 2 * * *", "2026-06-01 01:00", 2) == ["2026-06-01 02:00 CEST", "2026-06-02 02:00 CEST"]
    assert runs("0 2 * * *", "2026-06-01 02:00", 1) == ["2026-06-02 02:00 CEST"]  # strictly after
    assert runs("* * * * *", "2026-06-01 23:59", 2) == ["2026-06-02 00:00 CEST", "2026-06-02 00:01 CEST"]


def test_either_day_field_fires_when_both_are_restricted():
    # the 13th, or any Friday: June 2026 has Fridays on the 5th and 12th, then the 13th
    assert runs("0 0 13 * FRI", "2026-06-01 00:00", 3) == [
        "2026-06-05 00:00 CEST", "2026-06-12 00:00 CEST", "2026-06-13 00:00 CEST"]


def test_29_february_waits_for_a_leap_year():
    assert runs("0 0 29 2 *", "2026-03-01 00:00", 1) == ["2028-02-29 00:00 CET"]


def test_a_missing_local_time_is_skipped():
    # 02:30 does not exist on 2026-03-29 in Berlin: that day has no run
    assert runs("30 2 * * *", "2026-03-28 12:00", 2) == ["2026-03-30 02:30 CEST", "2026-03-31 02:30 CEST"]
    # an hourly run at :30 goes from 01:30 CET straight to 03:30 CEST, an hour of real time apart
    assert runs("30 * * * *", "2026-03-29 01:00", 2) == ["2026-03-29 01:30 CET", "2026-03-29 03:30 CEST"]


def test_a_repeated_local_time_runs_once():
    # 02:30 happens twice on 2026-10-25 in Berlin (CEST, then CET): it runs at the first only
    assert runs("30 2 * * *", "2026-10-24 12:00", 2) == ["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"]
    assert runs("30 * * * *", "2026-10-25 01:00", 3) == [
        "2026-10-25 01:30 CEST", "2026-10-25 02:30 CEST", "2026-10-25 03:30 CET"]


def test_after_the_first_of_a_repeated_time_the_second_does_not_run_again():
    first = parse_cron("30 2 * * *").next_after(at("2026-10-25 00:00"), BERLIN)
    # the second 02:30 (CET) is an hour later in real time: asking from just after the first
    # still gives the next day, not the repeat
    again = parse_cron("30 2 * * *").next_after(first + 1, BERLIN)
    assert local(again) == "2026-10-26 02:30 CET"
    assert again - first == 25 * 3600


def test_utc_has_no_gaps():
    t = datetime(2026, 3, 29, 0, 0, tzinfo=timezone.utc).timestamp()
    nxt = parse_cron("30 2 * * *").next_after(t, UTC)
    assert local(nxt, UTC) == "2026-03-29 02:30 UTC"
