"""InventoryService: which provider has which prerequisites, and explicit scans."""

from __future__ import annotations

from google.protobuf import json_format

from jobplane.v1 import inventory_pb2, inventory_pb2_grpc

from ..domain.signatures import parse_signatures
from ..errors import InvalidArgument
from ..store.live import list_inventory
from . import convert
from .base import Deps, page_size, rpc


class InventoryService(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    @rpc
    async def ListInventory(self, request, context):
        page = list_inventory(self.d.core.providers_view(), request.filter, request.page_token,
                              page_size(request.page_size))
        return inventory_pb2.ListInventoryResponse(
            entries=[convert.inventory_entry_to_proto(e) for e in page.items], next_page_token=page.next_page_token)

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
