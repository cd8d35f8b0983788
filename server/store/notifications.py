"""Queries for the notification outbox (written with the engine's batches: `apply_deliveries`
runs inside the batch's transaction) and for the server-wide secrets replicas share."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Callable

from peewee import Database

from ..domain.notifications import PENDING, Delivery
from .codec import notify_from_dict
from .models import NotificationRow, SecretRow

_UPDATED = ("state", "attempts", "error", "end_time")


def apply_deliveries(deliveries: list[Delivery]) -> None:
    """Inside the batch's transaction: new deliveries, and how settled ones ended."""
    for d in deliveries:
        NotificationRow.insert(_row(d)).on_conflict(
            conflict_target=[NotificationRow.id],
            preserve=[getattr(NotificationRow, name) for name in _UPDATED]).execute()


def _row(d: Delivery) -> dict:
    return {"id": d.id, "job": d.job_id, "notify": json.dumps(asdict(d.notify)), "status": d.status, "body": d.body,
            "time": d.time, "state": d.state, "attempts": d.attempts, "error": d.error, "end_time": d.end_time}


def pending_deliveries(db: Database) -> list[Delivery]:
    """Deliveries not delivered nor given up yet, oldest first: a new leader resumes them."""
    db.connect(reuse_if_open=True)
    rows = NotificationRow.select().where(NotificationRow.state == PENDING).order_by(NotificationRow.time)
    return [Delivery(r.id, r.job, notify_from_dict(json.loads(r.notify)), r.status, r.body, r.time, r.state,
                     r.attempts, r.error, r.end_time) for r in rows]


def shared_secret(db: Database, name: str, make: Callable[[], str]) -> str:
    """The secret `name`: the one in the database, or `make()` stored as it if there is none yet
    (two replicas starting together both read back the one that was stored first)."""
    db.connect(reuse_if_open=True)
    with db.atomic():
        SecretRow.insert(name=name, value=make(), create_time=time.time()).on_conflict_ignore().execute()
    return SecretRow.get_by_id(name).value


__all__ = ["apply_deliveries", "pending_deliveries", "shared_secret"]
