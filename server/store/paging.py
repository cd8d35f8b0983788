"""Pages of a table as one caller sees them: terms SQL answers are in the query, the rest are
checked on the views, in chunks. Paging is by id when the default order applies and by offset
when an order is given; an order the database cannot sort is sorted in memory (up to a cap)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Generic, TypeVar

from ..domain.limits import PAGE_BYTES
from ..domain.query import Page, decode_token, encode_token, matches_all
from ..errors import FailedPrecondition
from .queries import Query

V = TypeVar("V")

CHUNK = 500  # rows read per round when terms are checked on the views
MAX_SCAN = 20_000  # rows examined for one page before answering with what was found
SORT_CAP = 20_000  # matching rows a sort the database cannot do may hold in memory

# A view's size as it will be sent (the caller converts it): pages stop at a byte budget.
Measure = Callable[[object], int]


@dataclass
class Source(Generic[V]):
    """How to read one table: `fetch(cond, after, offset, limit, order)` views (ids after
    `after` in the table's own direction, or `order` from `offset`); `value(view, key)` for
    the terms SQL left and for sorting. Views have an `id`."""

    fetch: Callable[[object, int | None, int, int, list | None], list[V]]
    value: Callable[[V, str], object]


def page(source: Source[V], query: Query, token: str, size: int, measure: Measure | None = None,
         max_bytes: int = PAGE_BYTES) -> Page[V]:
    """One page of matching views. With `measure`, a page stops early at `max_bytes` (but holds
    at least one view), so big rows never make a response too large to send."""
    if query.sorted and query.sql_order is None:
        return _sorted_in_memory(source, query, decode_token(token, "jp2") or 0, size, measure, max_bytes)
    if query.sorted:
        return _scan(source, query, size, measure, max_bytes, offset=decode_token(token, "jp2") or 0)
    return _scan(source, query, size, measure, max_bytes, after=decode_token(token, "jp1"))


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


def _keeps(source: Source[V], query: Query) -> Callable[[V], bool]:
    return lambda v: matches_all(query.rest, lambda key: source.value(v, key))


def _scan(source: Source[V], query: Query, size: int, measure: Measure | None, max_bytes: int,
          after: int | None = None, offset: int | None = None) -> Page[V]:
    keep = _keeps(source, query)
    found: list[V] = []
    scanned = used = 0
    chunk = size + 1 if not query.rest else CHUNK
    while True:
        views = source.fetch(query.sql, after, offset or 0, chunk, query.sql_order)
        for i, view in enumerate(views):
            if keep(view):
                used += measure(view) if measure is not None else 0
                if found and used > max_bytes:  # full: the next page starts with this row
                    if offset is not None:
                        return Page(found, encode_token("jp2", offset + i))
                    return Page(found, encode_token("jp1", views[i - 1].id if i else after))
                found.append(view)
            scanned += 1
            if len(found) == size or scanned >= MAX_SCAN:
                more = i + 1 < len(views) or len(views) == chunk
                if offset is not None:
                    return Page(found, encode_token("jp2", offset + i + 1) if more else "")
                return Page(found, encode_token("jp1", view.id) if more else "")
        if len(views) < chunk:
            return Page(found, "")
        if offset is not None:
            offset += len(views)
        else:
            after = views[-1].id


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
