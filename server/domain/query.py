"""The language of List calls: the one filter grammar (every List with a `filter`, WatchEvents
and saved views), the sort order, and the page tokens.

    filter = term { ["AND"] term }         all terms must hold
    term   = key op value
    op     = "=" | "!=" | "<" | "<=" | ">" | ">="
    value  = word | '"' text '"'           after = or !=, a comma-separated list: any of them

Text values may use `*` and `?` wildcards. Enum keys (status, state, type) take member
names in any case. Time keys take an RFC 3339 time or date (`2026-11-21T09:00:00Z`,
`2026-11-21`) or a duration before now (`-30s`, `-15m`, `-2h`, `-7d`). `label.KEY` and
`raw.KEY` compare as numbers when both sides are numbers. Example:

    status=FAILURE,UNKNOWN environment=external raw.queue=PRINT submitted>=-1d

Each list says which keys it takes and what their values are (a dict of Field); a list
whose records are few (providers, inventory) checks the terms on them, one with a table
(jobs, tasks, audit records, continuations) has the store turn them into SQL.

Sort: `order_by = key {"," key}`, each key optionally prefixed by "-" for descending.

Pages: `page_token` is opaque to callers: a tag and a number (an id to continue after, or an
offset), or the sort keys of the last row sent (keyset), base64-encoded. `Page` is one page of
any list.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import IntEnum
from typing import Callable, Generic, TypeVar

from ..errors import InvalidArgument
from .limits import MAX_FILTER, MAX_ID, MAX_NUMBER, MAX_ORDER_BY, check_text, shown

T = TypeVar("T")

OPS = ("!=", "<=", ">=", "=", "<", ">")
ORDERING = ("<", "<=", ">", ">=")
PREFIXES = ("label.", "raw.")
_DURATION = re.compile(r"-(\d+(?:\.\d+)?)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A key: a name, or label.KEY / raw.KEY where KEY is anything up to an operator (labels are free text).
_KEY = re.compile(r'[A-Za-z_][A-Za-z0-9_\-]*(?:\.[^\s=!<>,"]+)?')


@dataclass(frozen=True)
class Field:
    """What a key's values are: "enum" (with `enum`), "text", "number" or "time"."""

    kind: str
    enum: type[IntEnum] | None = None


TEXT = Field("text")
NUMBER = Field("number")
TIME = Field("time")


@dataclass(frozen=True)
class Term:
    key: str
    op: str
    values: tuple  # parsed: enum ints, floats (number, time) or str (text, may hold wildcards)
    pos: int

    def matches(self, actual: object) -> bool:
        """Whether the record's value for `key` satisfies the term; a missing value never does."""
        if actual is None:
            return self.op == "!="
        if isinstance(actual, tuple):  # several values (a job's environments): any of them
            hits = [Term(self.key, "=" if self.op == "!=" else self.op, self.values, self.pos).matches(a)
                    for a in actual]
            return not any(hits) if self.op == "!=" else any(hits)
        if self.op in ("=", "!="):
            hit = any(_equal(actual, v) for v in self.values)
            return hit if self.op == "=" else not hit
        return _compare(actual, self.values[0], self.op)


def _equal(actual: object, wanted: object) -> bool:
    if isinstance(wanted, str):
        text = str(actual)
        if "*" in wanted or "?" in wanted:
            return fnmatch.fnmatchcase(text, wanted)
        if text == wanted:
            return True
        a, w = _number(text), _number(wanted)
        return a is not None and a == w
    return actual == wanted


def _compare(actual: object, wanted: object, op: str) -> bool:
    if isinstance(wanted, str):  # label.* / raw.*: numbers when both are, else text
        a, w = _number(str(actual)), _number(wanted)
        actual, wanted = (a, w) if a is not None and w is not None else (str(actual), wanted)
    try:
        return {"<": actual < wanted, "<=": actual <= wanted, ">": actual > wanted, ">=": actual >= wanted}[op]
    except TypeError:
        return False


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def field_of(key: str, fields: dict[str, Field]) -> Field | None:
    if key in fields:
        return fields[key]
    prefix = next((p for p in PREFIXES if key.startswith(p) and len(key) > len(p)), None)
    return TEXT if prefix and prefix + "*" in fields else None


def parse_filter(text: str, fields: dict[str, Field], now: float) -> list[Term]:
    """Parse and validate `text`; errors name the position (0-based) and the fix."""
    check_text("filter", text, MAX_FILTER)
    terms = []
    pos = 0
    while True:
        pos = _skip_space(text, pos)
        if pos >= len(text):
            return terms
        if text[pos:pos + 4].upper() == "AND " and not _starts_term(text, pos):
            pos += 4
            continue
        term, pos = _term(text, pos, fields, now)
        terms.append(term)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _starts_term(text: str, pos: int) -> bool:
    match = _KEY.match(text, pos)
    return bool(match) and text.startswith(OPS, match.end())


def _term(text: str, start: int, fields: dict[str, Field], now: float) -> tuple[Term, int]:
    match = _KEY.match(text, start)
    if not match:
        raise InvalidArgument("filter", f"position {start}: expected a key such as status, got {text[start:start + 12]!r}")
    key = match.group()
    field = field_of(key, fields)
    if field is None:
        names = ", ".join(sorted(fields))
        raise InvalidArgument("filter", f"position {start}: unknown key {shown(key)}; use one of {names}")
    pos = match.end()
    op = next((o for o in OPS if text.startswith(o, pos)), None)
    if op is None:
        raise InvalidArgument("filter", f"position {pos}: expected an operator (= != < <= > >=) after {key!r}")
    pos += len(op)
    raw_values, pos = _values(text, pos)
    if op in ORDERING and len(raw_values) != 1:
        raise InvalidArgument("filter", f"position {start}: {key}{op} takes one value, not a list")
    values = tuple(_value(key, field, op, v, vpos, now) for v, vpos in raw_values)
    return Term(key, op, values, start), pos


def _values(text: str, pos: int) -> tuple[list[tuple[str, int]], int]:
    """The comma-separated values at `pos` (each quoted or a bare word) and the end."""
    out = []
    while True:
        start = pos
        if pos < len(text) and text[pos] == '"':
            end = pos + 1
            chars = []
            while end < len(text) and text[end] != '"':
                if text[end] == "\\" and end + 1 < len(text):
                    end += 1
                chars.append(text[end])
                end += 1
            if end >= len(text):
                raise InvalidArgument("filter", f"position {start}: unterminated quote; close it with \"")
            value, pos = "".join(chars), end + 1
        else:
            while pos < len(text) and not text[pos].isspace() and text[pos] != ",":
                pos += 1
            value = text[start:pos]
            if not value:
                raise InvalidArgument("filter", f"position {start}: expected a value (quote an empty one: \"\")")
        out.append((value, start))
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        if pos < len(text) and not text[pos].isspace():
            raise InvalidArgument("filter", f"position {pos}: expected a space before the next term")
        return out, pos


def _value(key: str, field: Field, op: str, value: str, pos: int, now: float) -> object:
    if field.kind == "enum":
        name = value.upper()
        if op in ORDERING or field.enum is None or name not in field.enum.__members__ or name.endswith("UNSPECIFIED"):
            names = ", ".join(n for n in field.enum.__members__ if not n.endswith("UNSPECIFIED"))
            how = f"{key} takes = or != " if op in ORDERING else f"{key}={value!r} is not a {key}; "
            raise InvalidArgument("filter", f"position {pos}: {how}use one of {names}")
        return int(field.enum[name])
    if field.kind == "number":
        number = _number(value)
        if number is None or not -MAX_NUMBER <= number <= MAX_NUMBER:  # NaN is neither
            raise InvalidArgument("filter", f"position {pos}: {key} takes a number from -{MAX_NUMBER:.0f} to "
                                            f"{MAX_NUMBER:.0f}, got {shown(value)}")
        return number
    if field.kind == "time":
        return parse_time(key, value, pos, now)
    return value


def parse_time(key: str, value: str, pos: int, now: float) -> float:
    """An RFC 3339 time or date (UTC unless it says otherwise), or `-N[smhd]` before now."""
    relative = _DURATION.fullmatch(value)
    if relative and float(relative.group(1)) * _UNIT[relative.group(2)] <= MAX_NUMBER:
        return now - float(relative.group(1)) * _UNIT[relative.group(2)]
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument("filter", f"position {pos}: {key} takes a time such as 2026-11-21T09:00:00Z,"
                                        f" 2026-11-21 or -2h, got {shown(value)}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def parse_order(text: str, fields: dict[str, Field]) -> list[tuple[str, bool]]:
    """`status,-submitted` -> [("status", False), ("submitted", True)] (True = descending)."""
    check_text("order_by", text, MAX_ORDER_BY)
    keys = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            if text.strip():
                raise InvalidArgument("order_by", f"empty key in {shown(text)}; separate keys with single commas")
            continue
        descending = part.startswith("-")
        key = part.lstrip("-+")
        if field_of(key, fields) is None:
            raise InvalidArgument("order_by", f"unknown key {shown(key)}; use one of {', '.join(sorted(fields))}")
        keys.append((key, descending))
    return keys


def matches_all(terms: list[Term], get: Callable[[str], object]) -> bool:
    """Whether every term holds for the record whose values `get(key)` returns."""
    return all(term.matches(get(term.key)) for term in terms)


# ----- pages -------------------------------------------------------------------------

@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the token of the next ("" at the end)."""

    items: list[T] = field(default_factory=list)
    next_page_token: str = ""


def encode_token(kind: str, value: int) -> str:
    """A page token: `kind` says what `value` is (e.g. "jp1" an id or offset, "jp2" a sorted offset)."""
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode_token(token: str, kind: str) -> int | None:
    """The value of a token `encode_token(kind, ...)` made; None for no token (the first page)."""
    if not token:
        return None
    try:
        tag, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if tag == kind and value.isascii() and value.isdigit() and int(value) <= MAX_ID:
            return int(value)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidArgument("page_token", "not a token from a previous response with the same filter and order_by; "
                                        "pass next_page_token as returned")


def encode_keys(values: Sequence[object]) -> str:
    """A keyset page token ("jp3"): the sort key values of the last row sent, then its id."""
    return base64.urlsafe_b64encode(("jp3:" + json.dumps(list(values), separators=(",", ":"))).encode()).decode()


def decode_keys(token: str, count: int) -> list | None:
    """The `count` values a token `encode_keys` made holds; None for no token (the first page)."""
    if not token:
        return None
    try:
        tag, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        values = json.loads(value) if tag == "jp3" else None
    except (ValueError, UnicodeDecodeError):
        values = None
    if isinstance(values, list) and len(values) == count and isinstance(values[-1], int) and all(
            v is None or isinstance(v, (str, int, float)) for v in values):
        return values
    raise InvalidArgument("page_token", "not a token from a previous response with the same filter and order_by; "
                                        "pass next_page_token as returned")


def page_of(items: Sequence[T], token: str, size: int) -> Page[T]:
    """A page of a list held whole (providers, rules, policies, tokens): by offset."""
    start = decode_token(token, "jp1") or 0
    more = len(items) > start + size
    return Page(list(items[start:start + size]), encode_token("jp1", start + size) if more else "")
