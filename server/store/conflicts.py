"""The conflict matrix and learned overlaps in the database. Rule changes and overlaps are
written with the engine's batch (Store.apply); these are their queries and row codecs."""

from __future__ import annotations

import json
from dataclasses import asdict

from peewee import Database

from ..domain.conflicts import ConflictRule, Selector
from .models import ConflictOverlapRow, ConflictRuleRow
from .records import OverlapView


def rule_row(rule: ConflictRule) -> dict:
    document = {k: v for k, v in asdict(rule).items() if k not in ("name", "created_by", "create_time")}
    return {"name": rule.name, "document": json.dumps(document, sort_keys=True), "created_by": rule.created_by,
            "create_time": rule.create_time}


def rule_from_row(row: ConflictRuleRow) -> ConflictRule:
    d = json.loads(row.document)
    return ConflictRule(row.name, d["kind"], Selector(**d["jobs"]), Selector(**d["other"]), d.get("resource", ""),
                        d.get("mode", 0), row.created_by, row.create_time)


def apply_rules(changes: dict[str, ConflictRule | None]) -> None:
    """Inside the batch's transaction: rules added (or replaced) and deleted."""
    for name, rule in changes.items():
        ConflictRuleRow.delete().where(ConflictRuleRow.name == name).execute()
        if rule is not None:
            ConflictRuleRow.insert(rule_row(rule)).execute()


def apply_overlaps(overlaps: list) -> None:
    """Count each pair of job classes seen together at a transient failure (domain Overlap)."""
    width = ConflictOverlapRow.class_a.max_length
    for overlap in overlaps:
        a, b, when = overlap.first, overlap.second, overlap.time
        a, b = a[:width], b[:width]  # "class=" + a 200-character class: keep the row, not the whole label
        (ConflictOverlapRow.insert(class_a=a, class_b=b, failures=1, last_time=when)
         .on_conflict(conflict_target=[ConflictOverlapRow.class_a, ConflictOverlapRow.class_b],
                      update={ConflictOverlapRow.failures: ConflictOverlapRow.failures + 1,
                              ConflictOverlapRow.last_time: when})
         .execute())


class ConflictStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def rules(self) -> list[ConflictRule]:
        self.db.connect(reuse_if_open=True)
        return [rule_from_row(r) for r in ConflictRuleRow.select().order_by(ConflictRuleRow.name)]

    def overlaps(self, min_failures: int) -> list[OverlapView]:
        """Pairs of job classes that failed together at least `min_failures` times, most first."""
        self.db.connect(reuse_if_open=True)
        rows = (ConflictOverlapRow.select().where(ConflictOverlapRow.failures >= min_failures)
                .order_by(ConflictOverlapRow.failures.desc(), ConflictOverlapRow.class_a))
        return [OverlapView.from_row(r) for r in rows]
