"""What every servicer shares: domain errors to status codes, reads off the loop, paging."""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import grpc
from google.protobuf.message import Message

from ..core import Core
from ..errors import InvalidArgument, JobplaneError, details
from ..domain.limits import MAX_ID, PAGE_BYTES, shown
from ..events import EventHub
from ..metrics import ServerMetrics
from ..security.policy import current_caller
from ..store.repo import Store

log = logging.getLogger(__name__)

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def may_see(owner: str) -> bool:
    """Tenancy: whether the caller may see a job owned by `owner` (else it is NOT_FOUND to them)."""
    caller = current_caller.get()
    return caller.sees_all_jobs() or owner == caller.identity


def status_code(exc: JobplaneError) -> grpc.StatusCode:
    """The status an error is answered with (errors.py's table)."""
    return grpc.StatusCode[exc.code]


def rpc(method: Callable) -> Callable:
    """Map domain errors raised by a unary handler to their status codes; refuse a request
    with a NUL character in any text before the handler sees it."""

    @functools.wraps(method)
    async def handler(self, request, context):
        try:
            check_no_nul(request)
            return await method(self, request, context)
        except JobplaneError as exc:
            await context.abort(status_code(exc), details(exc))

    return handler


def check_no_nul(message: Message, path: str = "") -> None:
    """Raise InvalidArgument naming the first text field of `message` (at any depth) that holds a
    NUL character: no jobplane text may (PostgreSQL refuses to store one, programs cannot take one)."""
    for field, value in message.ListFields():
        where = f"{path}.{field.name}" if path else field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            items = [(f"{where}[{shown(k)}]", part) for k, v in value.items() for part in (k, v)]
        elif field.is_repeated:
            items = [(f"{where}[{i}]", item) for i, item in enumerate(value)]
        else:
            items = [(where, value)]
        for item_path, item in items:
            if isinstance(item, str) and "\x00" in item:
                raise InvalidArgument(item_path, "contains a NUL character, which no jobplane text may hold; remove it")
            if isinstance(item, Message):
                check_no_nul(item, item_path)


class Deps:
    """What a servicer needs from the server: the core, the store, the event hub, readers."""

    def __init__(self, core: Core, store: Store, hub: EventHub, readers: ThreadPoolExecutor, config) -> None:
        self.core = core
        self.store = store
        self.hub = hub
        self.readers = readers
        self.config = config
        self.policies = None  # services.policies.PolicyBook, set by the server
        self.views = None  # services.views.ViewBook, set by the server
        self.metrics = getattr(core, "metrics", None) or ServerMetrics()

    @property
    def page_bytes(self) -> int:
        """How many bytes of rows one List response may carry: well inside what may be sent."""
        return min(PAGE_BYTES, self.config.max_message_bytes // 2)

    async def read(self, fn: Callable[..., Any], *args) -> Any:
        """Run a blocking store read on the reader threads."""
        return await asyncio.get_running_loop().run_in_executor(self.readers, functools.partial(fn, *args))


def page_size(value: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", f"must be >= 0 (0 = {DEFAULT_PAGE}), got {value}")
    return min(value or DEFAULT_PAGE, MAX_PAGE)


def encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"jp1:{last_id}".encode()).decode()


def decode_token(token: str) -> int | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        tag, _, value = text.partition(":")
        if tag == "jp1" and value.isascii() and value.isdigit() and int(value) <= MAX_ID:
            return int(value)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidArgument("page_token", "not a token from a previous response; pass next_page_token as returned")
