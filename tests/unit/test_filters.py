"""The filters of the lists held in memory (providers and their inventory, server/store/live.py):
the one filter grammar (domain/query.py) over the snapshots the core hands out."""

import pytest

from jobplane.server.domain.model import ProviderState
from jobplane.server.domain.query import decode_token
from jobplane.server.errors import InvalidArgument
from jobplane.server.store.live import list_inventory, list_providers
from jobplane.server.store.records import InventoryView, ProviderView


def provider(name, state=ProviderState.ACTIVE, inventory=(), **labels):
    entries = tuple(InventoryView(name, sid, "", present, {}, "", 0.0, 1.0, "request") for sid, present in inventory)
    return ProviderView(name, state, {}, labels, 2, 0, 1.0, None, None, True, "", 0.0, None, 0.0, entries)


PROVIDERS = (provider("a1", gpu="true", zone="eu-west"), provider("a2", ProviderState.DRAINED, gpu="true"),
             provider("b1", zone="eu-north", inventory=[("s1", True), ("s2", False)]),
             provider("b2", ProviderState.SUSPECT, inventory=[("s1", False)]))


def names(text, **paging):
    return [p.id for p in list_providers(PROVIDERS, text, paging.get("token", ""), paging.get("size", 100)).items]


def test_terms_and_prefix():
    assert names("state=active label.zone=eu*  label.gpu=true") == ["a1"]
    assert names("state=ACTIVE") == ["a1", "b1"]
    assert names("label.zone=eu*") == ["a1", "b1"]
    assert names("") == ["a1", "a2", "b1", "b2"]


def test_pages_follow_the_token():
    first = list_providers(PROVIDERS, "", "", 3)
    assert [p.id for p in first.items] == ["a1", "a2", "b1"] and decode_token(first.next_page_token, "jp1") == 3
    assert names("", token=first.next_page_token, size=3) == ["b2"]


def test_inventory_by_provider_signature_and_presence():
    def entries(text):
        return [(e.provider_id, e.signature_id) for e in list_inventory(PROVIDERS, text, "", 100).items]

    assert entries("") == [("b1", "s1"), ("b1", "s2"), ("b2", "s1")]
    assert entries("signature=s1 present=false") == [("b2", "s1")]
    assert entries("provider=b1 present=true") == [("b1", "s1")]
    with pytest.raises(InvalidArgument, match="position 0: present takes true or false"):
        entries("present=maybe")


@pytest.mark.parametrize("text, words", [
    ("colour=red", "position 0: unknown key 'colour'"),
    ("label.gpu=true state", "position 20: expected an operator"),
    ("state=SLEEPING", "use one of ACTIVE, SUSPECT"),
    ("state=ACT*", "use one of ACTIVE, SUSPECT"),
])
def test_bad_filters_point_at_the_position(text, words):
    with pytest.raises(InvalidArgument, match=words):
        names(text)
