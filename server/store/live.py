"""Lists of the engine's live state (providers and their inventory) in the same filter grammar
and pages as the tables, over the frozen snapshots Core hands out. These are the lists a
replica cannot serve from the database yet; the rest are in reads.py."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..domain.model import ProviderState
from ..domain.query import TEXT, Field, Page, Term, matches_all, page_of, parse_filter
from ..errors import InvalidArgument
from .records import InventoryView, ProviderView

PROVIDER_FIELDS: dict[str, Field] = {"state": Field("enum", ProviderState), "label.*": TEXT}
INVENTORY_FIELDS: dict[str, Field] = {"provider": TEXT, "signature": TEXT, "present": TEXT}


def list_providers(providers: Sequence[ProviderView], filter_text: str, token: str, size: int) -> Page[ProviderView]:
    """A page of the providers (in id order) the filter selects, e.g. `state=ACTIVE label.gpu=true`."""
    terms = parse_filter(filter_text, PROVIDER_FIELDS, time.time())
    return page_of([p for p in providers if matches_all(terms, lambda key: _provider_value(p, key))], token, size)


def list_inventory(providers: Sequence[ProviderView], filter_text: str, token: str,
                   size: int) -> Page[InventoryView]:
    """A page of the inventory entries (by provider, then signature) the filter selects, e.g.
    `provider=a1 present=false`."""
    terms = parse_filter(filter_text, INVENTORY_FIELDS, time.time())
    _check_present(terms)
    entries = [e for p in providers for e in p.inventory if matches_all(terms, lambda key: _entry_value(e, key))]
    return page_of(entries, token, size)


def _provider_value(p: ProviderView, key: str) -> object:
    if key == "state":
        return int(p.state)
    return p.labels.get(key[len("label."):], "")  # a missing label reads as empty


def _entry_value(e: InventoryView, key: str) -> object:
    if key == "present":
        return "true" if e.present else "false"
    return e.provider_id if key == "provider" else e.signature_id


def _check_present(terms: list[Term]) -> None:
    for t in terms:
        if t.key == "present" and (t.op not in ("=", "!=") or not set(t.values) <= {"true", "false"}):
            raise InvalidArgument("filter", f"position {t.pos}: present takes true or false")
