"""ContinuationService: what happened to the unfinished work of lost providers."""

from __future__ import annotations

from jobplane.v1 import continuation_pb2, continuation_pb2_grpc

from ..domain.filters import parse_filter
from ..errors import NotFound
from . import convert
from .base import Deps, decode_token, encode_token, page_size, rpc


class ContinuationService(continuation_pb2_grpc.ContinuationServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    @rpc
    async def ListContinuations(self, request, context):
        size = page_size(request.page_size)
        before = decode_token(request.page_token)
        terms = parse_filter(request.filter, {"provider": None})
        provider = next((t.value for t in terms if t.key == "provider"), None)
        rows = await self.d.read(self.d.store.list_continuations, provider, before, size + 1)
        token = encode_token(rows[size - 1][0].id) if len(rows) > size else ""
        return continuation_pb2.ListContinuationsResponse(
            continuations=[convert.continuation_to_proto(r, t) for r, t in rows[:size]], next_page_token=token)

    @rpc
    async def GetContinuation(self, request, context):
        cid = convert.parse_id("continuation_id", request.continuation_id, "continuation")
        found = await self.d.read(self.d.store.get_continuation, cid)
        if found is None:
            raise NotFound(f"continuation {cid} not found; `jobplane continuations list` shows them")
        return continuation_pb2.GetContinuationResponse(continuation=convert.continuation_to_proto(*found))
