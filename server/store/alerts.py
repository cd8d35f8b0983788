"""Alert rules in the database. Changes are written with the engine's batch (Store.apply);
reads (list, get: followers answer them too) and the restart's snapshot are here, with the
row codecs."""

from __future__ import annotations

import json
from dataclasses import asdict

from peewee import Database, fn

from ..domain.alerts import AlertRule
from .codec import notify_from_dict
from .models import AlertRuleRow


def alert_row(r: AlertRule) -> dict:
    return {"id": r.id, "name": r.name, "filter": r.filter, "notify": json.dumps(asdict(r.notify)),
            "created_by": r.created_by, "create_time": r.create_time, "deleted": int(r.deleted)}


def alert_from_row(row: AlertRuleRow) -> AlertRule:
    return AlertRule(row.id, row.name, row.filter, notify_from_dict(json.loads(row.notify)), row.created_by,
                     row.create_time, bool(row.deleted))


def apply_alert_rules(changes: dict[int, AlertRule]) -> None:
    """Inside the batch's transaction: rules created, and deleted ones marked."""
    for rule in changes.values():
        row = alert_row(rule)
        (AlertRuleRow.insert(row)
         .on_conflict(conflict_target=[AlertRuleRow.id], update={k: v for k, v in row.items() if k != "id"})
         .execute())


class AlertStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def for_restore(self) -> tuple[list[AlertRule], int]:
        """The rules not deleted, and the highest id there ever was (deleted ones count)."""
        return self.list(), AlertRuleRow.select(fn.MAX(AlertRuleRow.id)).scalar() or 0

    def list(self) -> list[AlertRule]:
        """Every rule not deleted, by id."""
        self.db.connect(reuse_if_open=True)
        rows = AlertRuleRow.select().where(AlertRuleRow.deleted == 0).order_by(AlertRuleRow.id)
        return [alert_from_row(r) for r in rows]

    def get(self, rule_id: int) -> AlertRule | None:
        self.db.connect(reuse_if_open=True)
        row = AlertRuleRow.get_or_none((AlertRuleRow.id == rule_id) & (AlertRuleRow.deleted == 0))
        return alert_from_row(row) if row is not None else None


__all__ = ["AlertStore", "alert_from_row", "apply_alert_rules"]
