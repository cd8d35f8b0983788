"""EventService: the ordered event log, replayed after an id, then live.

For this release the handler is JobService's (its deprecated WatchEvents is the same call):
both take the same fields and send the same frames (watch.py). When JobService.WatchEvents is
removed, its body and the event-filter helpers it uses move here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from jobplane.v1 import event_pb2_grpc

from .jobs import JobService


class EventService(event_pb2_grpc.EventServiceServicer):
    def __init__(self, jobs: JobService) -> None:
        self._jobs = jobs

    def WatchEvents(self, request, context) -> AsyncIterator[bytes]:
        return self._jobs.WatchEvents(request, context)
