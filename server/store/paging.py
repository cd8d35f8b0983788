"""Pages of a table as one caller sees them: terms SQL answers are in the query, the rest are
checked on the views, in chunks. Paging is by keyset: after the last id sent in the default
order, after the last row's sort keys when an order is given; an order the database cannot
sort is sorted in memory (up to a cap) and paged by offset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from itertools import accumulate
from typing import Generic, TypeVar

from ..domain.limits import PAGE_BYTES
from ..domain.query import Page, decode_keys, decode_token, encode_keys, encode_token, matches_all
from ..errors import FailedPrecondition
from .queries import Query, after_keys, conjunction

V = TypeVar("V")

CHUNK = 500  # rows read per round when terms are checked on the views
MAX_SCAN = 20_000  # rows examined for one page before answering with what was found
SORT_CAP = 20_000  # matching rows a sort the database cannot do may hold in memory

# A view's size as it will be sent (the caller converts it): pages stop at a byte budget.
Measure = Callable[[object], int]


@dataclass
class Source(Generic[V]):
    """How to read one table: `fetch(cond, after, offset, limit, order)` views (ids after
    `after` in the table's own direction, or in `order` from `offset`); `value(view, key)` for
    the terms SQL left and for sorting; `tie`: the id column and whether the table's own order
    is descending (what breaks ties in a sort, for keyset pages). Views have an `id`."""

    fetch: Callable[[object, int | None, int, int, list | None], list[V]]
    value: Callable[[V, str], object]
    tie: tuple[object, bool] | None = None


def page(source: Source[V], query: Query, token: str, size: int, measure: Measure | None = None,
         max_bytes: int = PAGE_BYTES) -> Page[V]:
    """One page of matching views. With `measure`, a page stops early at `max_bytes` (but holds
    at least one view), so big rows never make a response too large to send. Pages go on from
    the last row sent (its id, or its sort keys and id), so a row is never sent twice and
    none is skipped, however deep the page."""
    if query.sorted and (query.sql_order is None or source.tie is None):
        return _sorted_in_memory(source, query, decode_token(token, "jp2") or 0, size, measure, max_bytes)
    if query.sorted:
        return _scan(source, query, size, measure, max_bytes, _Keyset(source, query, token))
    return _scan(source, query, size, measure, max_bytes, _ById(source, query, token))


def every(source: Source[V], query: Query) -> list[V]:
    """Every matching view, page after page (counts the database cannot make)."""
    out: list[V] = []
    token = ""
    while True:
        found = page(source, query, token, CHUNK)
        out += found.items
        token = found.next_page_token
        if not token:
            return out


class _ById:
    """Pages in the table's own order (by id), each after the last id sent."""

    def __init__(self, source: Source, query: Query, token: str) -> None:
        self.source, self.query, self.start = source, query, decode_token(token, "jp1")

    def read(self, after: int | None, limit: int) -> list:
        return self.source.fetch(self.query.sql, after, 0, limit, None)

    @staticmethod
    def mark(view) -> int:
        return view.id

    @staticmethod
    def token(after: int | None) -> str:
        return encode_token("jp1", after) if after is not None else ""


class _Keyset:
    """Pages in a sort the database makes, each after the sort keys (and id) of the last row sent."""

    def __init__(self, source: Source, query: Query, token: str) -> None:
        self.source, self.query = source, query
        self.start = decode_keys(token, len(query.order) + 1)

    def read(self, after: list | None, limit: int) -> list:
        cond = self.query.sql if after is None else conjunction(
            [self.query.sql, after_keys(self.query.sql_order, self.source.tie, after)])
        return self.source.fetch(cond, None, 0, limit, self.query.sql_order)

    def mark(self, view) -> list:
        values = []
        for (key, _), (column, _) in zip(self.query.order, self.query.sql_order):
            value = self.source.value(view, key)
            values.append(None if value == "" and column.null else int(value) if isinstance(value, IntEnum) else value)
        return [*values, view.id]

    @staticmethod
    def token(after: list | None) -> str:
        return encode_keys(after) if after is not None else ""


def _keeps(source: Source[V], query: Query) -> Callable[[V], bool]:
    return lambda v: matches_all(query.rest, lambda key: source.value(v, key))


def _scan(source: Source[V], query: Query, size: int, measure: Measure | None, max_bytes: int, cursor) -> Page[V]:
    keep = _keeps(source, query)
    found: list[V] = []
    scanned = used = 0
    chunk = size + 1 if not query.rest or query.rechecks else CHUNK
    after = cursor.start
    while True:
        views = cursor.read(after, chunk)
        for i, view in enumerate(views):
            if keep(view):
                used += measure(view) if measure is not None else 0
                if found and used > max_bytes:  # full: the next page starts with this row
                    return Page(found, cursor.token(cursor.mark(views[i - 1]) if i else after))
                found.append(view)
            scanned += 1
            if len(found) == size or scanned >= MAX_SCAN:
                more = i + 1 < len(views) or len(views) == chunk
                return Page(found, cursor.token(cursor.mark(view)) if more else "")
        if len(views) < chunk:
            return Page(found, "")
        after = cursor.mark(views[-1])


def _sorted_in_memory(source: Source[V], query: Query, offset: int, size: int, measure: Measure | None,
                      max_bytes: int) -> Page[V]:
    views = source.fetch(query.sql, None, 0, SORT_CAP + 1, None)
    if len(views) > SORT_CAP:
        raise FailedPrecondition(f"order_by: more than {SORT_CAP} rows match; narrow the filter, or sort by "
                                 "keys the server can sort in the database (not label.*, raw.*, environment)")
    keep = _keeps(source, query)
    views = [v for v in views if keep(v)]
    for key, descending in reversed(query.order):
        present = [v for v in views if _sortable(source.value(v, key)) is not None]
        absent = [v for v in views if _sortable(source.value(v, key)) is None]
        present.sort(key=lambda v: _sortable(source.value(v, key)), reverse=descending)
        views = present + absent  # missing values last, either way
    chunk = views[offset:offset + size]
    if measure is not None:
        sizes = accumulate(measure(v) for v in chunk)
        chunk = chunk[:max(1, sum(1 for used in sizes if used <= max_bytes))]
    end = offset + len(chunk)
    return Page(chunk, encode_token("jp2", end) if end < len(views) else "")


def _sortable(value: object) -> object:
    if isinstance(value, tuple):
        value = min(value) if value else None
    if isinstance(value, str):
        try:
            return (0, float(value), "")
        except ValueError:
            return (1, 0.0, value)
    return value
