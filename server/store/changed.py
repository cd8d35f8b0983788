"""Row updates that name an indexed column only when its value changed.

SQLite rewrites every index on a column an UPDATE sets, whether or not the value differs: a
task row set whole on each move rewrote all eleven of its listing indexes (state, status,
provider, exit code, the promoted raw properties...), several times the pages each group commit
wrote. So the store remembers, for rows it wrote lately, the indexed values it wrote, and sets
only those that moved; unindexed columns are set every time (they cost no index). PostgreSQL
compares values itself (HOT updates) and is served the same statements.

What is remembered is what this store committed: it is forgotten when a commit fails (the
transaction rolled back) and when the engine loads anew (another leader may have written since).
A row that is not remembered is set whole, so forgetting costs speed, never truth."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import compress
from operator import ne

Update = tuple[str, list[tuple]]  # (SQL with ? placeholders, parameter rows)


class ChangedColumns:
    """UPDATEs of `table` by id: `always` columns in every statement, `indexed` ones when changed.

    Remembers up to `cap` rows (the oldest are forgotten first); a row that ended (`final`)
    is forgotten at once: it is not written again on the hot path."""

    def __init__(self, table: str, always: Sequence[str], indexed: Sequence[str], cap: int = 50_000) -> None:
        self.table, self.always, self.indexed, self.cap = table, tuple(always), tuple(indexed), cap
        self._written: dict[int, tuple] = {}
        self._everything = tuple(range(len(self.indexed)))
        self._sql: dict[tuple[int, ...], str] = {}

    def remember(self, row_id: int, indexed: tuple) -> None:
        """A row was inserted with these indexed values."""
        self._keep(row_id, indexed)

    def forget_all(self) -> None:
        self._written.clear()

    def updates(self, rows: Iterable[tuple[int, tuple, tuple, bool]]) -> list[Update]:
        """Statements for rows given as (id, always values, indexed values, final), grouped so
        that rows changing the same indexed columns share one statement. Both values are tuples."""
        groups: dict[tuple[int, ...], list[tuple]] = {}
        everything = self._everything
        written = self._written
        for row_id, always, indexed, final in rows:
            before = written.get(row_id)
            if before is None:
                changed, params = everything, always + indexed + (row_id,)
            elif before == indexed:
                changed, params = (), always + (row_id,)
            else:  # which moved, compared and picked in C (compress, map): no generator frame per row
                changed = tuple(compress(everything, map(ne, before, indexed)))
                params = always + tuple(map(indexed.__getitem__, changed)) + (row_id,)
            group = groups.get(changed)
            if group is None:
                groups[changed] = [params]
            else:
                group.append(params)
            if final:
                written.pop(row_id, None)
            else:
                self._keep(row_id, indexed)
        return [(self._statement(changed), params) for changed, params in groups.items()]

    def _keep(self, row_id: int, indexed: tuple) -> None:
        """Remember a row's indexed values; past the cap the oldest rows are forgotten first (a
        dict keeps insertion order)."""
        self._written[row_id] = indexed
        while len(self._written) > self.cap:
            del self._written[next(iter(self._written))]

    def _statement(self, changed: tuple[int, ...]) -> str:
        sql = self._sql.get(changed)
        if sql is None:
            columns = self.always + tuple(self.indexed[i] for i in changed)
            sets = ", ".join(f'"{c}"=?' for c in columns)
            sql = self._sql[changed] = f'UPDATE "{self.table}" SET {sets} WHERE id=?'
        return sql


__all__ = ["ChangedColumns"]
