"""ViewService: each user's saved filters and sort orders, and their use in lists and watches."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor

from jobplane.v1 import view_pb2, view_pb2_grpc

from ..domain.query import page_of
from ..domain.limits import MAX_FILTER, MAX_ORDER_BY, check_text, shown
from ..errors import InvalidArgument, NotFound
from ..security.policy import current_caller
from ..store.reads import check_query
from ..store.records import SavedView
from ..store.views import ViewStore
from . import convert
from .base import page_size, rpc

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
WORD = {view_pb2.VIEW_RESOURCE_JOBS: "jobs", view_pb2.VIEW_RESOURCE_TASKS: "tasks"}


class ViewBook:
    """Saved views: reads on the reader threads, writes on the writer thread."""

    def __init__(self, store: ViewStore, writer: ThreadPoolExecutor, readers: ThreadPoolExecutor) -> None:
        self._store = store
        self._writer = writer
        self._readers = readers

    async def _run(self, pool: ThreadPoolExecutor, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def get(self, name: str) -> SavedView:
        row = await self._run(self._readers, self._store.get, current_caller.get().identity, _valid_name(name))
        if row is None:
            raise NotFound(f"you have no view {name!r}; `jobplane views list` shows yours")
        return row

    async def resolve(self, name: str, resource: int | None, filter_text: str, order_by: str) -> tuple[str, str]:
        """The filter and order a request means: the view's terms and the request's together,
        and the request's order if it gives one, else the view's. `resource` None: any."""
        check_text("filter", filter_text, MAX_FILTER)
        check_text("order_by", order_by, MAX_ORDER_BY)
        if not name:
            return filter_text, order_by
        row = await self.get(name)
        if resource is not None and row.resource != resource:
            raise InvalidArgument("view", f"{name!r} is a view of {WORD[row.resource]}; use it where "
                                          f"{WORD[row.resource]} are listed")
        combined = f"{row.filter} {filter_text}".strip()
        if len(combined) > MAX_FILTER:
            raise InvalidArgument("filter", f"with the terms of view {name!r} it has {len(combined)} characters; "
                                            f"at most {MAX_FILTER} in all: narrow the view or use fewer terms")
        return combined, order_by or row.order_by

    async def save(self, view: view_pb2.View) -> SavedView:
        name = _valid_name(view.name)
        if view.resource not in WORD:
            raise InvalidArgument("view.resource", "must be VIEW_RESOURCE_JOBS or VIEW_RESOURCE_TASKS")
        try:
            check_query(WORD[view.resource], view.filter, view.order_by)
        except InvalidArgument as exc:
            raise InvalidArgument(f"view.{exc.field}", exc.problem) from None
        return await self._run(self._writer, self._store.save, current_caller.get().identity, name, view.resource,
                               view.filter, view.order_by, time.time())

    async def list(self) -> list[SavedView]:
        return await self._run(self._readers, self._store.list, current_caller.get().identity)

    async def delete(self, name: str) -> None:
        if not await self._run(self._writer, self._store.delete, current_caller.get().identity, _valid_name(name)):
            raise NotFound(f"you have no view {name!r}; `jobplane views list` shows yours")


def _valid_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidArgument("name", f"{shown(name)}: use 1 to 64 letters, digits, '-', '_' or '.'")
    return name


def view_to_proto(v: SavedView) -> view_pb2.View:
    return view_pb2.View(name=v.name, resource=v.resource, filter=v.filter, order_by=v.order_by,
                         owner=v.owner, update_time=convert.ts(v.time))


class ViewService(view_pb2_grpc.ViewServiceServicer):
    def __init__(self, book: ViewBook) -> None:
        self._book = book

    @rpc
    async def SaveView(self, request, context):
        if not request.HasField("view"):
            raise InvalidArgument("view", "missing; send the view to save (name, resource, filter, order_by)")
        return view_pb2.SaveViewResponse(view=view_to_proto(await self._book.save(request.view)))

    @rpc
    async def GetView(self, request, context):
        return view_pb2.GetViewResponse(view=view_to_proto(await self._book.get(request.name)))

    @rpc
    async def ListViews(self, request, context):
        page = page_of(await self._book.list(), request.page_token, page_size(request.page_size))
        return view_pb2.ListViewsResponse(views=[view_to_proto(r) for r in page.items],
                                          next_page_token=page.next_page_token)

    @rpc
    async def DeleteView(self, request, context):
        await self._book.delete(request.name)
        return view_pb2.DeleteViewResponse()
