"""The console's pages of the plane beyond jobs: providers (with their inventory), continuations
(the order lost providers' tasks continue in, and the what-if plan), and conflicts and holds.
Reads with the signed-in user's token: the API's roles decide what each user may see."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from jobplane.v1 import conflict_pb2, continuation_pb2, inventory_pb2, job_pb2, provider_pb2, status_pb2

from . import pages, plane_html
from .gateway import Gateway
from .server import Request, Response
from .web import HTTP_OF, operates, page, who

PAGE = 200  # rows a page of the plane shows; the CLI lists the rest


class Plane:
    def __init__(self, gateway: Gateway, live: Callable[..., dict[str, str]]) -> None:
        self._api = gateway
        self._live = live

    async def providers(self, request: Request, token: str, me) -> Response:
        live = self._live(me)
        listed = await self._api.call(self._api.providers.ListProviders, provider_pb2.ListProvidersRequest(
            page_size=PAGE), token)
        try:
            inventory = list((await self._api.call(self._api.inventory.ListInventory,
                                                   inventory_pb2.ListInventoryRequest(page_size=PAGE), token)).entries)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
            inventory = None  # a submitter's role does not show the inventory
        body = plane_html.providers(list(listed.providers), inventory, now=time.time())
        return page(200, pages.layout("Providers", body, who=who(me), live=live))

    async def continuations(self, request: Request, token: str, me) -> Response:
        """The continuations so far and, for `?plan=PROVIDER[&at=ISO time]`, the what-if plan."""
        live = self._live(me)
        listed = await self._api.call(self._api.continuations.ListContinuations,
                                      continuation_pb2.ListContinuationsRequest(page_size=PAGE), token)
        providers = await self._api.call(self._api.providers.ListProviders, provider_pb2.ListProvidersRequest(
            page_size=PAGE), token)
        provider, at_text = request.query.get("plan", ""), request.query.get("at", "").strip()
        plan, problem, status = None, "", 200
        if provider:
            try:
                asked = continuation_pb2.PlanContinuationRequest(provider_id=provider, at=_timestamp(at_text))
                plan = await self._api.call(self._api.continuations.PlanContinuation, asked, token)
            except ValueError as exc:
                problem, status = str(exc), 400
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                                      grpc.StatusCode.PERMISSION_DENIED):
                    raise
                problem, status = exc.details() or exc.code().name, HTTP_OF[exc.code()]
        form = plane_html.plan_form([p.id for p in providers.providers], provider, at_text, problem) \
            if operates(me) else ""
        body = plane_html.continuations(list(listed.continuations), plan)
        return page(status, pages.layout("Continuations", body, who=who(me), live=live, extra=form))

    async def conflicts(self, request: Request, token: str, me) -> Response:
        """The conflict rules (add and remove for operators) and the jobs on hold, with why and
        their buttons."""
        live = self._live(me)
        rules = await self._api.call(self._api.conflicts.ListConflictRules,
                                     conflict_pb2.ListConflictRulesRequest(page_size=PAGE), token)
        body = plane_html.conflicts(list(rules.rules), await self._held(token), me)
        extra = plane_html.rule_form() if operates(me) else ""
        return page(200, pages.layout("Conflicts and holds", body, who=who(me), live=live, extra=extra))

    async def _held(self, token: str) -> list[job_pb2.Job]:
        """Jobs ON_HOLD (by a rule, a window, or suspended) and jobs held by hand whose tasks still
        run (their status is RUNNING): no filter key says "held", so the unfinished jobs are read."""
        held: dict[str, job_pb2.Job] = {}
        for text in ("status=ON_HOLD", "state=QUEUED,RUNNING"):
            listed = await self._api.call(self._api.jobs.ListJobs, job_pb2.ListJobsRequest(
                filter=text, page_size=PAGE), token)
            held.update((j.id, j) for j in listed.jobs if j.hold or j.status == status_pb2.NORMALIZED_STATUS_ON_HOLD)
        return sorted(held.values(), key=lambda j: int(j.id) if j.id.isdigit() else 0)


def _timestamp(text: str) -> Timestamp | None:
    """An ISO 8601 time (a zone, else UTC) as a Timestamp; None for none; ValueError naming the field."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"at: {text!r} is not an ISO 8601 time; write e.g. 2026-09-30T12:00+02:00") from None
    stamp = Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
    return stamp
