from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from jobplane.server.domain.timing import KINDS, Calendar, TimingRule, check_rule, effective_priority
from jobplane.server.errors import InvalidArgument

UTC = Calendar()
PATH = "spec.continuation_rules[1]"


def at(text: str, calendar: Calendar = UTC) -> datetime:
    """`text` (ISO, no offset) as an aware time in the calendar's zone."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(calendar.tz))


def matches(rule: TimingRule, now: datetime, calendar: Calendar = UTC) -> bool:
    return effective_priority(99, [rule], now, calendar) == (rule.priority, rule.label())


def test_reference_example_orders_jobs_by_effective_priority():
    calendar = Calendar.parse("Europe/Paris", ["09-30"])
    jobs = {1: (4, [TimingRule("end_of_month", 2)]), 2: (5, [TimingRule("end_of_period", 0)])}

    def order(now: datetime) -> list[int]:
        return sorted(jobs, key=lambda job: effective_priority(*jobs[job], now, calendar)[0])

    may = at("2026-05-31T12:00", calendar)
    assert effective_priority(*jobs[1], may, calendar) == (2, "end_of_month")
    assert effective_priority(*jobs[2], may, calendar) == (5, "")
    assert order(may) == [1, 2]

    september = at("2026-09-30T12:00", calendar)
    assert matches(TimingRule("end_of_quarter", 1), september, calendar)
    assert effective_priority(*jobs[1], september, calendar) == (2, "end_of_month")
    assert effective_priority(*jobs[2], september, calendar) == (0, "end_of_period")
    assert order(september) == [2, 1]


def test_the_instant_is_read_in_the_calendar_zone():
    instant = datetime(2026, 6, 1, 2, 0, tzinfo=timezone.utc)  # 22:00 on 31 May in New York
    rule = TimingRule("end_of_month", 1)
    assert matches(rule, instant, Calendar("America/New_York"))
    assert not matches(rule, instant, UTC)


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        effective_priority(1, [], datetime(2026, 5, 31), UTC)


@pytest.mark.parametrize("day, expected", [
    ("2028-02-29", True), ("2028-02-28", False), ("2027-02-28", True), ("2026-04-30", True), ("2026-05-30", False),
])
def test_end_of_month_knows_month_lengths_and_leap_years(day, expected):
    assert matches(TimingRule("end_of_month", 1), at(f"{day}T23:59")) is expected


@pytest.mark.parametrize("day, quarter, year", [
    ("2026-03-31", True, False), ("2026-06-30", True, False), ("2026-12-31", True, True),
    ("2026-01-31", False, False), ("2026-11-30", False, False),
])
def test_end_of_quarter_and_year(day, quarter, year):
    now = at(f"{day}T00:00")
    assert matches(TimingRule("end_of_quarter", 1), now) is quarter
    assert matches(TimingRule("end_of_year", 1), now) is year


@pytest.mark.parametrize("day, expected", [
    ("2026-05-28", False), ("2026-05-29", True), ("2026-05-31", True), ("2026-06-01", False),
])
def test_days_widens_the_window_backwards_from_the_end(day, expected):
    assert matches(TimingRule("end_of_month", 1, days=3), at(f"{day}T08:00")) is expected


def test_long_windows_reach_the_end_of_the_current_period():
    assert matches(TimingRule("end_of_year", 1, days=366), at("2028-01-01T00:00"))  # leap year: 366 days
    assert not matches(TimingRule("end_of_year", 1, days=365), at("2028-01-01T00:00"))
    assert matches(TimingRule("end_of_quarter", 1, days=31), at("2026-03-01T00:00"))


@pytest.mark.parametrize("day, days, expected", [
    ("2026-03-30", 1, False), ("2026-03-31", 1, True),  # one-off
    ("2027-03-31", 1, False),  # the one-off does not recur
    ("2026-12-30", 2, True), ("2027-12-31", 1, True), ("2027-12-29", 2, False),  # yearly 12-31
    ("2028-02-29", 1, True), ("2027-02-28", 1, False),  # yearly 02-29 exists in leap years only
])
def test_end_of_period_follows_the_calendar(day, days, expected):
    calendar = Calendar.parse("UTC", ["2026-03-31", "12-31", "02-29"])
    assert matches(TimingRule("end_of_period", 1, days=days), at(f"{day}T12:00"), calendar) is expected


def test_end_of_period_with_an_empty_calendar_never_matches():
    rule = TimingRule("end_of_period", 1, days=366)
    check_rule(PATH, rule)
    assert not matches(rule, at("2026-12-31T12:00"))


def test_end_of_period_window_crosses_into_next_year():
    calendar = Calendar.parse("UTC", ["01-02"])
    assert matches(TimingRule("end_of_period", 1, days=3), at("2026-12-31T12:00"), calendar)


@pytest.mark.parametrize("day, expected", [
    ("2026-05-28", False), ("2026-05-29", True), ("2026-05-31", True), ("2026-06-01", False),
])
def test_date_rule_matches_the_day_and_the_days_before_it(day, expected):
    assert matches(TimingRule("date", 1, "2026-05-31"), at(f"{day}T12:00")) is (day == "2026-05-31")
    assert matches(TimingRule("date", 1, "2026-05-31", days=3), at(f"{day}T12:00")) is expected


@pytest.mark.parametrize("expr, now, expected", [
    ("0 * * * *", "2026-05-31T13:00", True),
    ("0 * * * *", "2026-05-31T13:01", False),
    ("0,30 9-17 * * *", "2026-05-31T17:30", True),
    ("0,30 9-17 * * *", "2026-05-31T18:00", False),
    ("*/15 * * * *", "2026-05-31T10:45", True),
    ("*/15 * * * *", "2026-05-31T10:50", False),
    ("10-50/20 * * * *", "2026-05-31T10:30", True),
    ("10-50/20 * * * *", "2026-05-31T10:40", False),
    ("0 12 * * 7", "2026-05-31T12:00", True),  # 31 May 2026 is a Sunday
    ("0 12 * * 0", "2026-05-31T12:00", True),
    ("0 12 * * 5-7", "2026-05-31T12:00", True),
    ("0 12 * * mon-fri", "2026-05-31T12:00", False),
    ("0 12 * * MON-FRI", "2026-06-01T12:00", True),
    ("0 12 * MAY SUN", "2026-05-31T12:00", True),
    ("0 12 * jun,dec *", "2026-05-31T12:00", False),
    ("0 12 1 * MON", "2026-06-01T12:00", True),  # both day fields restricted: either matches
    ("0 12 1 * MON", "2026-06-08T12:00", True),
    ("0 12 1 * MON", "2026-07-01T12:00", True),
    ("0 12 1 * MON", "2026-07-02T12:00", False),
    ("0 12 1 * *", "2026-06-08T12:00", False),  # dow unrestricted: dom alone decides
    ("0 12 * * MON", "2026-07-01T12:00", False),
    ("0 12 */2 * MON", "2026-06-03T12:00", False),  # '*/n' counts as unrestricted, as in Vixie cron
    ("0 12 */2 * MON", "2026-06-08T12:00", False),
    ("0 12 */2 * MON", "2026-06-29T12:00", True),
])
def test_cron(expr, now, expected):
    assert matches(TimingRule("cron", 1, expr), at(now)) is expected


def test_cron_reads_the_calendar_zone():
    calendar = Calendar("Asia/Tokyo")
    instant = datetime(2026, 5, 31, 23, 0, tzinfo=timezone.utc)  # 08:00 on 1 June in Tokyo
    assert matches(TimingRule("cron", 1, "0 8 1 * *"), instant, calendar)
    assert not matches(TimingRule("cron", 1, "0 8 1 * *"), instant, UTC)


def test_most_important_matching_rule_wins():
    rules = [
        TimingRule("end_of_year", 3),  # does not match
        TimingRule("end_of_month", 2),
        TimingRule("end_of_quarter", 1, days=31),
        TimingRule("date", 1, "2026-05-31"),  # ties with the quarter rule, which is listed first
        TimingRule("cron", -5, "0 0 1 1 *"),  # does not match
    ]
    assert effective_priority(4, rules, at("2026-05-31T12:00"), UTC) == (1, "end_of_quarter(last 31 days)")
    assert effective_priority(4, rules, at("2026-05-15T12:00"), UTC) == (4, "")


def test_a_matching_rule_replaces_the_base_even_when_less_important():
    assert effective_priority(1, [TimingRule("end_of_month", 7)], at("2026-05-31T12:00"), UTC) == (7, "end_of_month")


@pytest.mark.parametrize("rule, label", [
    (TimingRule("end_of_month", 2), "end_of_month"),
    (TimingRule("end_of_month", 2, days=3), "end_of_month(last 3 days)"),
    (TimingRule("date", 2, "2026-05-31"), "date 2026-05-31"),
    (TimingRule("cron", 2, "0 * * * *"), "cron 0 * * * *"),
])
def test_labels(rule, label):
    assert rule.label() == label


@pytest.mark.parametrize("rule", [
    TimingRule("end_of_month", -3), TimingRule("end_of_period", 0, days=366), TimingRule("date", 1, "2028-02-29"),
    TimingRule("cron", 1, "0-59/5 0,12 1-31 JAN-DEC SUN-SAT"), TimingRule("cron", 1, "* * * * 7"),
])
def test_valid_rules_pass(rule):
    check_rule(PATH, rule)


@pytest.mark.parametrize("rule, field, words", [
    (TimingRule("end_of_week", 1), "kind", "unknown kind 'end_of_week'; use one of " + ", ".join(KINDS)),
    (TimingRule("date", 1), "value", "a date rule needs a value; give a date such as 2026-05-31"),
    (TimingRule("cron", 1, "  "), "value", "a cron rule needs a value"),
    (TimingRule("end_of_month", 1, "05-31"), "value", "end_of_month takes no value, got '05-31'; leave it empty"),
    (TimingRule("date", 1, "2026-02-30"), "value", "'2026-02-30' is not a date; use YYYY-MM-DD"),
    (TimingRule("date", 1, "31/05/2026"), "value", "'31/05/2026' is not a date"),
    (TimingRule("date", 1, "0000-01-01"), "value", "'0000-01-01' is not a date"),
    (TimingRule("cron", 1, "0 * * *"), "value", "has 4 fields; a cron expression has 5"),
    (TimingRule("cron", 1, "61 * * * *"), "value", "minute field '61' is out of range 0-59"),
    (TimingRule("cron", 1, "0 24 * * *"), "value", "hour field '24' is out of range 0-23"),
    (TimingRule("cron", 1, "0 0 0 * *"), "value", "day-of-month field '0' is out of range 1-31"),
    (TimingRule("cron", 1, "0 0 * 13 *"), "value", "month field '13' is out of range 1-12"),
    (TimingRule("cron", 1, "0 0 * * 8"), "value", "day-of-week field '8' is out of range 0-7"),
    (TimingRule("cron", 1, "0 0 * * FUN"), "value", "day-of-week field 'FUN' is not a number or a name such as SUN"),
    (TimingRule("cron", 1, "MON * * * *"), "value", "minute field 'MON' is not a number"),
    (TimingRule("cron", 1, "*/0 * * * *"), "value", "minute field '\\*/0' has step '0'; use a whole number of at least 1"),
    (TimingRule("cron", 1, "5/10 * * * *"), "value", "minute field '5/10' steps from a single value; use \\*/n or a-b/n"),
    (TimingRule("cron", 1, "0 17-9 * * *"), "value", "hour field range '17-9' runs backwards"),
    (TimingRule("cron", 1, "0 1,,2 * * *"), "value", "hour field '' is not a number"),
    (TimingRule("cron", 1, "0 * * * *", days=2), "days", "a cron rule matches single minutes; leave days at 1"),
    (TimingRule("end_of_month", 1, days=0), "days", "is 0; use a number of days from 1 to 366"),
    (TimingRule("date", 1, "2026-05-31", days=367), "days", "is 367; use a number of days from 1 to 366"),
])
def test_invalid_rules_name_the_field_and_the_fix(rule, field, words):
    with pytest.raises(InvalidArgument, match=words) as caught:
        check_rule(PATH, rule)
    assert caught.value.field == f"{PATH}.{field}"


@pytest.mark.parametrize("tz, ends, words", [
    ("Mars/Olympus", [], "unknown time zone 'Mars/Olympus'; use an IANA name"),
    ("", [], "unknown time zone ''"),
    ("UTC", ["13-01"], "period end '13-01' is not a date; use MM-DD \\(every year\\) or YYYY-MM-DD \\(once\\)"),
    ("UTC", ["2026-02-29"], "period end '2026-02-29' is not a date"),
    ("UTC", ["9-30"], "period end '9-30' is not a date"),
])
def test_bad_calendars_are_refused(tz, ends, words):
    with pytest.raises(ValueError, match=words):
        Calendar.parse(tz, ends)


def test_calendar_parse_accepts_configuration_text():
    assert Calendar.parse(" Europe/Paris ", [" 09-30", "2026-03-31 "]) == Calendar("Europe/Paris", ("09-30", "2026-03-31"))
