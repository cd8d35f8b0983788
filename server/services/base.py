"""What every servicer shares: domain errors to status codes, reads off the loop, page sizes,
who the caller may see, and the repositories it reads through (Deps)."""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Generic, TypeVar

import grpc
from google.protobuf.message import Message

from ..core import Core
from ..errors import Deposed, InvalidArgument, JobplaneError, details
from ..domain.limits import PAGE_BYTES, shown
from ..domain.policies import DEFAULT_POLICY, Policy
from ..events import EventHub
from ..metrics import ServerMetrics
from ..security.policy import current_caller
from ..store.conflicts import ConflictStore
from ..store.reads import Reads
from ..store.failures import reading
from ..store.repo import Store

log = logging.getLogger(__name__)

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def may_see(owner: str) -> bool:
    """Tenancy: whether the caller may see a job owned by `owner` (else it is NOT_FOUND to them)."""
    caller = current_caller.get()
    return caller.sees_all_jobs() or owner == caller.identity


def visible_owner() -> str | None:
    """Tenancy as a read's scope: the one owner whose jobs the caller sees, None for all."""
    caller = current_caller.get()
    return None if caller.sees_all_jobs() else caller.identity


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
    NUL character: no jobplane text may (PostgreSQL refuses to store one, programs cannot take one).
    A message whose encoding holds no zero byte holds no NUL (UTF-8 writes one as a zero byte):
    it passes without the walk, which costs microseconds per task of a big job's submit."""
    if not path and b"\0" not in message.SerializeToString():
        return
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
    """What a servicer needs from the server: the core (ops, and snapshots of live state), the
    repositories it reads through (`reads`, `conflicts`: frozen views, never rows), the event
    hub, the reader threads and the configuration. `store` is only what the repositories
    default to."""

    def __init__(self, core: Core | None, store: Store, hub: EventHub, readers: ThreadPoolExecutor, config, *,
                 reads: Reads | None = None, conflicts: ConflictStore | None = None,
                 metrics: ServerMetrics | None = None) -> None:
        self._core = core
        self.hub = hub
        self.readers = readers
        self.config = config
        self.reads = reads if reads is not None else store.reads
        self.conflicts = conflicts if conflicts is not None else ConflictStore(store.db)
        self.policies = None  # services.policies.PolicyBook, set by the server
        self.views = None  # services.views.ViewBook, set by the server
        self.finished = None  # services.finished.FinishedJobs (reruns and purges), set by the server
        self.agent_links = None  # services.providers.ProviderService (logs from agents), set by the server
        self.metrics = metrics or getattr(core, "metrics", None) or ServerMetrics()

    @property
    def core(self) -> Core:
        """The engine's core while this replica leads; a follower has none (its calls that
        need one are forwarded to the leader before they get here, save a call that was
        under way as the replica stepped down)."""
        if self._core is None:
            raise Deposed("this server replica does not lead (it stepped down, or has not yet taken over); retry")
        return self._core

    @core.setter
    def core(self, core: Core | None) -> None:
        self._core = core

    @property
    def leading(self) -> bool:
        return self._core is not None

    def status_of(self):
        """The caller's own normalization (convert.StatusOf), or None when the default policy is
        all it has, so stored statuses are its statuses."""
        return self.policies.status_of(current_caller.get()) if self.policies is not None else None

    def class_of(self):
        """The caller's own priority classes (convert.ClassOf), or None when the default policy
        is all it has."""
        return self.policies.class_of(current_caller.get()) if self.policies is not None else None

    @property
    def default_policy(self) -> Policy:
        """The default policy in force (the built-in one until an operator stores another)."""
        return self.policies.default if self.policies is not None else DEFAULT_POLICY

    @property
    def page_bytes(self) -> int:
        """How many bytes of rows one List response may carry: well inside what may be sent."""
        return min(PAGE_BYTES, self.config.max_message_bytes // 2)

    async def read(self, fn: Callable[..., Any], *args) -> Any:
        """Run a blocking store read on the reader threads (its database errors are UNAVAILABLE)."""
        return await asyncio.get_running_loop().run_in_executor(
            self.readers, functools.partial(reading, self.reads.db, fn, *args))


def page_size(value: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", f"must be >= 0 (0 = {DEFAULT_PAGE}), got {value}")
    return min(value or DEFAULT_PAGE, MAX_PAGE)


M = TypeVar("M")


class Converted(Generic[M]):
    """Views converted to messages once each: `size` measures a view as it will be sent (the
    store stops a page at a byte budget), `messages` gives the page's messages."""

    def __init__(self, convert: Callable[[Any], M]) -> None:
        self._convert = convert
        self._done: dict[int, tuple[Any, M]] = {}  # id(view) -> (view, its message)

    def size(self, view: Any) -> int:
        message = self._convert(view)
        self._done[id(view)] = (view, message)
        return message.ByteSize()

    def messages(self, views: list) -> list[M]:
        return [self._message(v) for v in views]

    def _message(self, view: Any) -> M:
        done = self._done.get(id(view))
        return done[1] if done is not None and done[0] is view else self._convert(view)
