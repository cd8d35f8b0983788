"""ContinuationService: what happened (and what would happen) to the unfinished work of
failed or drained providers."""

from __future__ import annotations

import contextlib
import time

import grpc

from jobplane.v1 import continuation_pb2, continuation_pb2_grpc

from ..domain.model import EventKind
from ..errors import InvalidArgument, NotFound
from . import convert
from .base import Deps, page_size, rpc
from .watch import stream_events


class ContinuationService(continuation_pb2_grpc.ContinuationServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    @rpc
    async def ListContinuations(self, request, context):
        size = page_size(request.page_size)
        page = await self.d.read(self.d.reads.list_continuations, request.filter, request.page_token, size)
        return continuation_pb2.ListContinuationsResponse(
            continuations=[convert.continuation_to_proto(c) for c in page.items], next_page_token=page.next_page_token)

    @rpc
    async def GetContinuation(self, request, context):
        cid = convert.parse_id("continuation_id", request.continuation_id, "continuation")
        found = await self.d.read(self.d.reads.get_continuation, cid)
        if found is None:
            raise NotFound(f"continuation {cid} not found; `jobplane continuations list` shows them")
        return continuation_pb2.GetContinuationResponse(continuation=convert.continuation_to_proto(found))

    async def WatchContinuations(self, request, context):
        if request.after_event_id < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "after_event_id: must be >= 0 (0 = from the beginning)")
        async with contextlib.aclosing(stream_events(self.d, context, request.after_event_id,
                                                     kind=EventKind.CONTINUATION)) as frames:
            async for frame in frames:  # closed with this handler (see JobService.WatchEvents)
                yield frame  # a serialized WatchContinuationsResponse

    @rpc
    async def PlanContinuation(self, request, context):
        if not request.provider_id:
            raise InvalidArgument("provider_id", "must not be empty; name the provider to plan the failure of")
        at = convert.when("at", request.at) if request.HasField("at") else time.time()
        planned = await self.d.core.call(lambda engine: engine.plan(request.provider_id, at))
        return continuation_pb2.PlanContinuationResponse(
            provider_id=request.provider_id, at=convert.ts(at),
            tasks=[convert.planned_task_to_proto(p) for p in planned])
