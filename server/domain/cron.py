"""Cron expressions (five fields: minute hour day-of-month month day-of-week) and the next
time one fires in a time zone.

Strict and small: numbers, `*`, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, month and
day names (JAN, MON), 7 as Sunday, and the macros @hourly @daily @weekly @monthly @yearly.
When both day fields are restricted a day matching either one fires, as in every cron.

Times are local wall-clock times of the zone. Around daylight-saving changes: a local time
that does not exist (02:30 on the spring-forward night) is skipped, and one that happens twice
(01:30 on the fall-back night) fires once, at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidArgument

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # at most, in any year
SEARCH_YEARS = 9  # a 29 February may be 8 years away (2096 -> 2104)


@dataclass(frozen=True)
class _Spec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    first_name: int = 0  # the number of the first name (JAN = 1, SUN = 0)


_FIELDS = (_Spec("minute", 0, 59), _Spec("hour", 0, 23), _Spec("day of month", 1, 31),
           _Spec("month", 1, 12, _MONTHS, 1), _Spec("day of week", 0, 7, _DAYS, 0))


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the values each field allows."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month was `*`
    any_weekday: bool  # day of week was `*`

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom, dow = day.day in self.days, (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, after: float, zone: ZoneInfo) -> float | None:
        """The first time (Unix seconds) strictly after `after` that the expression fires in
        `zone`; None if there is none within SEARCH_YEARS."""
        start = datetime.fromtimestamp(after, zone).replace(tzinfo=None, second=0, microsecond=0)
        day = start.date()
        for _ in range(SEARCH_YEARS * 366 + 1):
            if self.fires_on(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        when = _existing(datetime.combine(day, time(hour, minute)), zone)
                        if when is not None and when > after:
                            return when
            day += timedelta(days=1)
        return None


def _existing(local: datetime, zone: ZoneInfo) -> float | None:
    """The Unix time of a local wall-clock time (its first occurrence), or None when the
    clocks skip it."""
    aware = local.replace(tzinfo=zone, fold=0)
    back = aware.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
    return aware.timestamp() if back == local else None


def parse_cron(text: str, path: str = "schedule") -> Cron:
    """Parse a cron expression; InvalidArgument(`path`) names the field at fault and the fix."""
    expr = text.strip()
    fields = _MACROS.get(expr.lower(), expr).split()
    if len(fields) != 5:
        raise InvalidArgument(path, f"\"{text}\" has {len(fields)} fields; a schedule has 5: minute hour "
                              "day-of-month month day-of-week, e.g. \"0 2 * * *\" (02:00 every day)")
    sets = [_field(part, spec, text, path) for part, spec in zip(fields, _FIELDS)]
    weekdays = frozenset(d % 7 for d in sets[4])
    cron = Cron(text, sets[0], sets[1], sets[2], sets[3], weekdays, fields[2] == "*", fields[4] == "*")
    _check_days(cron, path)
    return cron


def _field(part: str, spec: _Spec, text: str, path: str) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        values |= _item(item, spec, text, path)
    return frozenset(values)


def _item(item: str, spec: _Spec, text: str, path: str) -> set[int]:
    def bad(problem: str) -> InvalidArgument:
        return InvalidArgument(path, f"\"{text}\": {spec.name} {problem}")

    if not item:
        raise bad("has an empty list item; separate values with single commas, e.g. 1,15")
    body, _, step_text = item.partition("/")
    step = 1
    if step_text or item.endswith("/"):
        if not step_text.isdigit() or int(step_text) == 0:
            raise bad(f"step {step_text!r} is not a whole number of at least 1, e.g. */15")
        step = int(step_text)
    if body == "*":
        low, high = spec.low, spec.high if spec.name != "day of week" else 6
    elif "-" in body:
        first, _, last = body.partition("-")
        low, high = _value(first, spec, bad), _value(last, spec, bad)
        if low > high:
            raise bad(f"range {body} runs backwards; write it low to high, e.g. {high}-{low}")
    else:
        low = high = _value(body, spec, bad)
        if step_text:
            high = spec.high
    return set(range(low, high + 1, step))


def _value(word: str, spec: _Spec, bad) -> int:
    if word.upper() in spec.names:
        return spec.names.index(word.upper()) + spec.first_name
    if not word.isdigit():
        names = f", or a name like {spec.names[0]}" if spec.names else ""
        raise bad(f"{word!r} is not a number{names}; use {spec.low}-{spec.high}")
    value = int(word)
    if not spec.low <= value <= spec.high:
        raise bad(f"{value} is out of range {spec.low}-{spec.high}")
    return value


def _check_days(cron: Cron, path: str) -> None:
    """A day of month that no chosen month has ("0 0 31 2 *") would never fire."""
    if cron.any_day or not cron.any_weekday:
        return
    if not any(d <= _MONTH_DAYS[m - 1] for d in cron.days for m in cron.months):
        months = ", ".join(_MONTHS[m - 1] for m in sorted(cron.months))
        raise InvalidArgument(path, f"\"{cron.text}\": day of month {min(cron.days)} never occurs in {months}; "
                              "pick a day those months have")


def zone_of(name: str, path: str = "time_zone") -> ZoneInfo:
    """An IANA time zone by name; InvalidArgument names it and the fix."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(path, f"{name!r} is not a known IANA time zone; use a name like "
                              "\"Europe/Berlin\", \"America/New_York\" or \"UTC\"") from None


__all__ = ["Cron", "parse_cron", "zone_of"]
