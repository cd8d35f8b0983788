"""Saved views: one row per (owner, name), replaced in place when saved again."""

from __future__ import annotations

from peewee import Database

from .models import ViewRow


class ViewStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, owner: str, name: str) -> ViewRow | None:
        self.db.connect(reuse_if_open=True)
        return ViewRow.get_or_none((ViewRow.owner == owner) & (ViewRow.name == name))

    def list(self, owner: str) -> list[ViewRow]:
        self.db.connect(reuse_if_open=True)
        return list(ViewRow.select().where(ViewRow.owner == owner).order_by(ViewRow.name))

    def save(self, owner: str, name: str, resource: int, filter_text: str, order_by: str, time: float) -> ViewRow:
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            ViewRow.delete().where((ViewRow.owner == owner) & (ViewRow.name == name)).execute()
            ViewRow.insert(owner=owner, name=name, resource=resource, filter=filter_text, order_by=order_by,
                           time=time).execute()
        return self.get(owner, name)

    def delete(self, owner: str, name: str) -> bool:
        self.db.connect(reuse_if_open=True)
        return ViewRow.delete().where((ViewRow.owner == owner) & (ViewRow.name == name)).execute() > 0
