"""Exceptional timing: rules that replace a job's continuation priority at certain times.

Rules are read against the server's clock in the deployment calendar's time zone at the
moment of failover. When several match, the smallest priority wins; when none does, the
job's base priority applies. Calendar-end rules match during the last `days` days up to
and including the end date (month, quarter, year, fiscal period or a given date); a cron
rule matches one minute.
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidArgument

KINDS: tuple[str, ...] = ("end_of_month", "end_of_quarter", "end_of_year", "end_of_period", "date", "cron")
DAYS_MAX = 366

_VALUED = ("date", "cron")
_YMD = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_MD = re.compile(r"([0-9]{2})-([0-9]{2})")
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class TimingRule:
    """While `kind` (with `value` and `days`) matches, the job's priority is `priority`."""

    kind: str
    priority: int
    value: str = ""
    days: int = 1

    def label(self) -> str:
        """How the rule reads in logs and events, e.g. 'end_of_month(last 3 days)'."""
        text = f"{self.kind} {self.value}" if self.value else self.kind
        return f"{text}(last {self.days} days)" if self.days > 1 else text


@dataclass(frozen=True)
class Calendar:
    """The deployment's time zone and fiscal period ends (`MM-DD` yearly or `YYYY-MM-DD` once)."""

    tz: str = "UTC"
    period_ends: tuple[str, ...] = ()
    zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _ends: tuple[tuple[int, int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "period_ends", tuple(self.period_ends))
        object.__setattr__(self, "zone", _zone(self.tz))
        object.__setattr__(self, "_ends", tuple(_period_end(text) for text in self.period_ends))

    @classmethod
    def parse(cls, tz: str, period_ends: Sequence[str]) -> Calendar:
        """Build from configuration text; raises ValueError naming the bad entry."""
        return cls(tz.strip(), tuple(text.strip() for text in period_ends))

    def next_period_end(self, today: date) -> date | None:
        """The first period end on or after `today`; yearly ends are looked for this year and next."""
        return min((end for end in self._candidates(today.year) if end >= today), default=None)

    def _candidates(self, year: int) -> Iterator[date]:
        for y, m, d in self._ends:
            for candidate in (y,) if y else (year, year + 1):
                if d <= monthrange(candidate, m)[1]:  # 02-29 recurs in leap years only
                    yield date(candidate, m, d)


def check_rule(path: str, rule: TimingRule) -> None:
    """Raise InvalidArgument naming the bad field under `path`, e.g. 'spec.continuation_rules[1].kind'."""
    if rule.kind not in KINDS:
        raise InvalidArgument(f"{path}.kind", f"unknown kind {rule.kind!r}; use one of {', '.join(KINDS)}")
    try:
        _check_value(rule)
    except ValueError as exc:
        raise InvalidArgument(f"{path}.value", str(exc)) from None
    if rule.kind == "cron" and rule.days != 1:
        raise InvalidArgument(f"{path}.days", f"is {rule.days}, but a cron rule matches single minutes; leave days at 1")
    if not 1 <= rule.days <= DAYS_MAX:
        raise InvalidArgument(f"{path}.days", f"is {rule.days}; use a number of days from 1 to {DAYS_MAX}")


def effective_priority(base: int, rules: Sequence[TimingRule], now: datetime, calendar: Calendar) -> tuple[int, str]:
    """The priority in force at `now` and the label of the rule that set it ('' when `base` applies).

    `now` must be aware; it is read in `calendar.tz`. Among matching rules the smallest
    priority wins, the first listed on a tie; a matching rule replaces `base` even if larger.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    local = now.astimezone(calendar.zone)
    best: TimingRule | None = None
    for rule in rules:
        if (best is None or rule.priority < best.priority) and _matches(rule, local, calendar):
            best = rule
    return (base, "") if best is None else (best.priority, best.label())


def _matches(rule: TimingRule, local: datetime, calendar: Calendar) -> bool:
    if rule.kind == "cron":
        return _cron(rule.value).matches(local)
    end = _next_end(rule, local.date(), calendar)
    return end is not None and 0 <= (end - local.date()).days < rule.days


def _next_end(rule: TimingRule, today: date, calendar: Calendar) -> date | None:
    """The end date the rule counts down to, seen from `today`."""
    if rule.kind == "end_of_month":
        return _month_end(today.year, today.month)
    if rule.kind == "end_of_quarter":
        return _month_end(today.year, (today.month + 2) // 3 * 3)
    if rule.kind == "end_of_year":
        return date(today.year, 12, 31)
    if rule.kind == "end_of_period":
        return calendar.next_period_end(today)
    return _date(rule.value)


def _month_end(year: int, month: int) -> date:
    return date(year, month, monthrange(year, month)[1])


def _check_value(rule: TimingRule) -> None:
    if rule.kind not in _VALUED:
        if rule.value:
            raise ValueError(f"{rule.kind} takes no value, got {rule.value!r}; leave it empty")
    elif not rule.value.strip():
        example = "a date such as 2026-05-31" if rule.kind == "date" else "a cron expression such as '0 * * * *'"
        raise ValueError(f"a {rule.kind} rule needs a value; give {example}")
    elif rule.kind == "date":
        _date(rule.value)
    else:
        _cron(rule.value)


def _date(text: str) -> date:
    match = _YMD.fullmatch(text)
    year, month, day = map(int, match.groups()) if match else (0, 0, 0)
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= monthrange(year, month)[1]):
        raise ValueError(f"{text!r} is not a date; use YYYY-MM-DD, e.g. 2026-05-31")
    return date(year, month, day)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as 'UTC' or 'Europe/Paris'") from None


def _period_end(text: str) -> tuple[int, int, int]:
    """(year, month, day) of a period end; year 0 for one recurring every year."""
    match = _MD.fullmatch(text)
    month, day = map(int, match.groups()) if match else (0, 0)
    if 1 <= month <= 12 and 1 <= day <= monthrange(2000, month)[1]:  # leap year 2000 allows 02-29
        return 0, month, day
    try:
        end = _date(text)
    except ValueError:
        raise ValueError(f"period end {text!r} is not a date; use MM-DD (every year) or YYYY-MM-DD (once)") from None
    return end.year, end.month, end.day


# --- cron -------------------------------------------------------------------------------

_MONTHS = {name: i for i, name in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_WEEKDAYS = {name: i for i, name in enumerate("SUN MON TUE WED THU FRI SAT".split())}
_CRON_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _WEEKDAYS),
)


@dataclass(frozen=True)
class _Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    either_day: bool  # both day fields restricted: either one matching is enough

    def matches(self, t: datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dom, dow = t.day in self.days, (t.weekday() + 1) % 7 in self.weekdays
        return dom or dow if self.either_day else dom and dow


@lru_cache(maxsize=256)
def _cron(expr: str) -> _Cron:
    """Parse a 5-field cron expression; raises ValueError naming the bad field."""
    texts = expr.split()
    if len(texts) != len(_CRON_FIELDS):
        raise ValueError(f"{expr!r} has {len(texts)} fields; a cron expression has 5: minute hour day-of-month month day-of-week")
    sets = [_cron_field(text, *spec) for text, spec in zip(texts, _CRON_FIELDS)]
    sets[4] = frozenset(0 if v == 7 else v for v in sets[4])
    # As in Vixie cron: a day field starting with '*' (including '*/n') does not count as restricted.
    either_day = not texts[2].startswith("*") and not texts[4].startswith("*")
    return _Cron(*sets, either_day=either_day)


def _cron_field(text: str, name: str, lo: int, hi: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, slash, step = item.partition("/")
        if slash and not (_NUMBER.fullmatch(step) and int(step) >= 1):
            raise ValueError(f"{name} field {item!r} has step {step!r}; use a whole number of at least 1")
        if slash and span != "*" and "-" not in span:
            raise ValueError(f"{name} field {item!r} steps from a single value; use */n or a-b/n")
        first, last = _cron_span(span, name, lo, hi, names)
        values.update(range(first, last + 1, int(step) if slash else 1))
    return frozenset(values)


def _cron_span(span: str, name: str, lo: int, hi: int, names: dict[str, int]) -> tuple[int, int]:
    if span == "*":
        return lo, hi
    a, dash, b = span.partition("-")
    first = _cron_value(a, name, lo, hi, names)
    last = _cron_value(b, name, lo, hi, names) if dash else first
    if first > last:
        raise ValueError(f"{name} field range {span!r} runs backwards; write it low-high")
    return first, last


def _cron_value(token: str, name: str, lo: int, hi: int, names: dict[str, int]) -> int:
    if token.upper() in names:
        return names[token.upper()]
    if not _NUMBER.fullmatch(token):
        kinds = "a number or a name such as " + next(iter(names)) if names else "a number"
        raise ValueError(f"{name} field {token!r} is not {kinds}")
    if not lo <= int(token) <= hi:
        raise ValueError(f"{name} field {token!r} is out of range {lo}-{hi}")
    return int(token)
