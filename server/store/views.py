"""Saved views (ViewService): one row per (owner, name), replaced in place when saved again.
Not to be confused with the read views of records.py: these are users' saved filters."""

from __future__ import annotations

from peewee import Database

from .models import ViewRow
from .records import SavedView


class ViewStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, owner: str, name: str) -> SavedView | None:
        self.db.connect(reuse_if_open=True)
        row = ViewRow.get_or_none((ViewRow.owner == owner) & (ViewRow.name == name))
        return None if row is None else SavedView.from_row(row)

    def list(self, owner: str) -> list[SavedView]:
        self.db.connect(reuse_if_open=True)
        return [SavedView.from_row(r) for r in ViewRow.select().where(ViewRow.owner == owner).order_by(ViewRow.name)]

    def save(self, owner: str, name: str, resource: int, filter_text: str, order_by: str, time: float) -> SavedView:
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            ViewRow.delete().where((ViewRow.owner == owner) & (ViewRow.name == name)).execute()
            ViewRow.insert(owner=owner, name=name, resource=resource, filter=filter_text, order_by=order_by,
                           time=time).execute()
        return self.get(owner, name)

    def delete(self, owner: str, name: str) -> bool:
        self.db.connect(reuse_if_open=True)
        return ViewRow.delete().where((ViewRow.owner == owner) & (ViewRow.name == name)).execute() > 0
