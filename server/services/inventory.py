"""InventoryService: which provider has which prerequisites, and explicit scans."""

from __future__ import annotations

from google.protobuf import json_format

from jobplane.v1 import inventory_pb2, inventory_pb2_grpc

from ..domain.filters import parse_filter
from ..domain.signatures import parse_signatures
from ..errors import InvalidArgument
from . import convert
from .base import Deps, decode_token, encode_token, page_size, rpc

FILTER_KEYS = {"provider": None, "signature": None, "present": None}


class InventoryService(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    @rpc
    async def ListInventory(self, request, context):
        size, start = page_size(request.page_size), decode_token(request.page_token) or 0
        terms = {t.key: t.value for t in parse_filter(request.filter, FILTER_KEYS)}
        if terms.get("present", "true") not in ("true", "false"):
            raise InvalidArgument("filter", "present takes true or false")
        entries = [(p.id, sid, e) for p in sorted(self.d.core.engine.providers.values(), key=lambda p: p.id)
                   for sid, e in sorted(p.inventory.items()) if _matches(p.id, sid, e, terms)]
        token = encode_token(start + size) if len(entries) > start + size else ""
        return inventory_pb2.ListInventoryResponse(
            entries=[convert.inventory_entry_to_proto(*entry) for entry in entries[start:start + size]],
            next_page_token=token)

    @rpc
    async def ScanProvider(self, request, context):
        if not request.provider_id:
            raise InvalidArgument("provider_id", "must not be empty; name the provider to scan")
        if not request.signatures:
            raise InvalidArgument("signatures", "give at least one signature to scan for")
        raw = [json_format.MessageToDict(s) for s in request.signatures]
        signatures = parse_signatures("signatures", raw)
        ids = await self.d.core.call(lambda engine: engine.request_scan(request.provider_id, signatures))
        return inventory_pb2.ScanProviderResponse(signature_ids=ids)


def _matches(provider_id: str, signature_id: str, entry, terms: dict[str, str]) -> bool:
    if terms.get("provider", provider_id) != provider_id or terms.get("signature", signature_id) != signature_id:
        return False
    return "present" not in terms or entry.present == (terms["present"] == "true")
