"""The asyncio SDK client: the same calls as `Client` (defined once, in calls.py), run on asyncio
channels, one per server replica, tried as retry.py says; unary calls are coroutines, lists and
watches async iterators."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Mapping
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

import grpc

from jobplane.client import calls, calls_alerts, calls_conflicts, calls_policies, calls_schedules, calls_security
from jobplane.client.calls import Logs, Paged, Unary, Watch
from jobplane.client.channel import locate_credentials, open_aio_channel, resolve_addresses
from jobplane.client.credentials import Credentials
from jobplane.client.errors import JobplaneError, Unavailable, rpc_errors
from jobplane.client.events import Deadline, fell_behind, is_finished, is_job_end, is_last_end
from jobplane.client.replicas import Replica, Replicas
from jobplane.client.retry import Retry, Tries, resumable
from jobplane.v1 import event_pb2, job_pb2, task_pb2

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@overload
def bind(build: Callable[P, Unary[T]]) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]: ...
@overload
def bind(build: Callable[P, Paged[T]]) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[T]]: ...
@overload
def bind(build: Callable[P, Watch]) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[event_pb2.Event]]: ...
@overload
def bind(build: Callable[P, Logs]) -> Callable[Concatenate[AsyncClient, P],
                                               AsyncIterator[task_pb2.StreamLogsResponse]]: ...


def bind(build: Callable[..., Any]) -> Callable[..., Any]:
    """The `AsyncClient` method that runs the call `build` defines: a coroutine function for a
    unary call, else a function returning an async iterator; with the call's name, docstring
    and signature."""
    kind, item = calls.kind_of(build)
    if kind is Unary:
        async def method(self: AsyncClient, *args: Any, **kwargs: Any) -> Any:
            return await self._unary(build(*args, **kwargs))
        return calls.as_method(method, build, item)
    if kind is Paged:
        def method(self: AsyncClient, *args: Any, **kwargs: Any) -> Any:
            return self._pages(build(*args, **kwargs))
        return calls.as_method(method, build, AsyncIterator[item])
    if kind is Logs:
        def method(self: AsyncClient, *args: Any, **kwargs: Any) -> Any:
            return self._chunks(build(*args, **kwargs))
        return calls.as_method(method, build, AsyncIterator[item])

    def method(self: AsyncClient, *args: Any, **kwargs: Any) -> Any:
        return self._events(build(*args, **kwargs))
    return calls.as_method(method, build, AsyncIterator[item])


class AsyncClient:
    """An asyncio connection to a jobplane server; the calls and their semantics are `Client`'s.

        async with AsyncClient.connect() as client:     # or: client = await AsyncClient.connect()
            job = await client.submit_job(spec)
    """

    def __init__(self, channel: grpc.aio.Channel | Mapping[str, grpc.aio.Channel], *, target: str = "",
                 timeout: float = 10.0, credentials: Credentials | None = None, retry: Retry = Retry()) -> None:
        channels = channel if isinstance(channel, Mapping) else {target: channel}
        self.target = target or ",".join(channels)
        self.timeout = timeout
        self.retry = retry  # how calls that may be retried are retried (retry.py)
        self.credentials = credentials  # of the first replica; None when built from channels: unknown
        self._replicas = Replicas(channels)

    @classmethod
    def connect(
        cls,
        address: str | None = None,
        *,
        token: str | None = None,
        ca: str | Path | bytes | None = None,
        insecure: bool = False,
        cert: str | Path | bytes | None = None,
        key: str | Path | bytes | None = None,
        timeout: float = 10.0,
        retry: Retry = Retry(),
    ) -> Connecting:
        """Open a channel to `address` (or one to each replica it lists, comma-separated);
        connects lazily. Options as for `Client.connect`.

        Await it for the client (`await AsyncClient.connect()`), or enter it (`async with
        AsyncClient.connect() as client:`) to have the client closed at the end of the block.
        """
        def open_client() -> AsyncClient:
            addresses = resolve_addresses(address)
            given = Credentials.from_options(token=token, ca=ca, cert=cert, key=key, insecure=insecure)
            credentials = {target: locate_credentials(target, given) for target in addresses}
            channels = {target: open_aio_channel(target, found) for target, found in credentials.items()}
            return cls(channels, target=",".join(addresses), timeout=timeout, credentials=credentials[addresses[0]],
                       retry=retry)

        return Connecting(open_client)

    async def close(self) -> None:
        for channel in self._replicas.channels:
            await channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # The calls (calls.py says what each does)

    submit_job = bind(calls.submit_job)
    submit_job_once = bind(calls.submit_job_once)
    get_job = bind(calls.get_job)
    list_jobs = bind(calls.list_jobs)
    summarize_jobs = bind(calls.summarize_jobs)
    cancel_job = bind(calls.cancel_job)
    hold_job = bind(calls.hold_job)
    release_job = bind(calls.release_job)
    rerun_job = bind(calls.rerun_job)
    purge_jobs = bind(calls.purge_jobs)
    watch = bind(calls.watch)
    logs = bind(calls.logs)
    watch_continuations = bind(calls.watch_continuations)
    list_tasks = bind(calls.list_tasks)
    get_task = bind(calls.get_task)
    list_providers = bind(calls.list_providers)
    get_provider = bind(calls.get_provider)
    drain_provider = bind(calls.drain_provider)
    resume_provider = bind(calls.resume_provider)
    revoke_provider = bind(calls.revoke_provider)
    list_continuations = bind(calls.list_continuations)
    get_continuation = bind(calls.get_continuation)
    plan_continuation = bind(calls.plan_continuation)
    list_inventory = bind(calls.list_inventory)
    scan_provider = bind(calls.scan_provider)
    get_policy = bind(calls_policies.get_policy)
    list_policies = bind(calls_policies.list_policies)
    list_policy_versions = bind(calls_policies.list_policy_versions)
    set_policy = bind(calls_policies.set_policy)
    delete_policy = bind(calls_policies.delete_policy)
    test_policy = bind(calls_policies.test_policy)
    save_view = bind(calls_policies.save_view)
    get_view = bind(calls_policies.get_view)
    list_views = bind(calls_policies.list_views)
    delete_view = bind(calls_policies.delete_view)
    list_conflict_rules = bind(calls_conflicts.list_conflict_rules)
    create_conflict_rule = bind(calls_conflicts.create_conflict_rule)
    apply_conflict_rule = bind(calls_conflicts.apply_conflict_rule)
    delete_conflict_rule = bind(calls_conflicts.delete_conflict_rule)
    check_conflicts = bind(calls_conflicts.check_conflicts)
    suggest_conflicts = bind(calls_conflicts.suggest_conflicts)
    create_token = bind(calls_security.create_token)
    list_tokens = bind(calls_security.list_tokens)
    revoke_token = bind(calls_security.revoke_token)
    list_audit_records = bind(calls_security.list_audit_records)
    get_authority = bind(calls_security.get_authority)
    whoami = bind(calls_security.whoami)
    list_servers = bind(calls_security.list_servers)
    create_schedule = bind(calls_schedules.create_schedule)
    get_schedule = bind(calls_schedules.get_schedule)
    list_schedules = bind(calls_schedules.list_schedules)
    pause_schedule = bind(calls_schedules.pause_schedule)
    resume_schedule = bind(calls_schedules.resume_schedule)
    run_schedule_now = bind(calls_schedules.run_schedule_now)
    delete_schedule = bind(calls_schedules.delete_schedule)
    create_alert_rule = bind(calls_alerts.create_alert_rule)
    get_alert_rule = bind(calls_alerts.get_alert_rule)
    list_alert_rules = bind(calls_alerts.list_alert_rules)
    delete_alert_rule = bind(calls_alerts.delete_alert_rule)

    async def wait(self, job_id: str, *, timeout: float | None = None) -> job_pb2.Job:
        """Wait until the job succeeded, failed or was cancelled and return it (then
        `job.succeeded` says which).

        Raises DeadlineExceeded after `timeout` seconds, NotFound for an unknown job.
        """
        job = await self.get_job(job_id, summary=True)  # its state is all this needs; the whole job once it ends
        if is_finished(job):
            return await self.get_job(job_id)
        # From event 0: a job that ends between get_job and here still shows its end event; only the job's own.
        events = self.watch(job_id, timeout=timeout, filter="type=JOB")
        try:
            async for _ in events:
                pass  # the watch of one job ends with it
        finally:
            await events.aclose()
        job = await self.get_job(job_id)
        if not is_finished(job):
            raise Unavailable(f"the event stream closed before job {job_id} finished")
        return job

    wait_job = wait  # the name of earlier releases

    async def _ends(self, call: Watch, event: event_pb2.Event) -> bool:
        """Whether `event` ends a watch of one job: its end, and not one a rerun undid."""
        return (bool(call.job_id) and is_job_end(event, call.job_id)
                and is_last_end(event, await self.get_job(call.job_id, summary=True)))

    # Running a call

    async def _invoke(self, replica: Replica, call: Unary[Any] | Paged[Any], request: Any) -> Any:
        with rpc_errors():
            return await replica.stubs.method(call)(request, timeout=self.timeout)

    async def _call(self, call: Unary[Any] | Paged[Any], request: Any, *, idempotent: bool) -> Any:
        """The response to `request`, tried on the replicas as retry.py says."""
        tries = Tries(self.retry, self._replicas, call.method, idempotent=idempotent)
        while True:
            replica = self._replicas.current
            try:
                return await self._invoke(replica, call, request)
            except JobplaneError as error:
                pause = tries.after(error, replica)
                if pause is None:
                    raise
            await asyncio.sleep(pause)

    async def _unary(self, call: Unary[T]) -> T:
        return call.result(await self._call(call, call.request, idempotent=call.idempotent))

    async def _pages(self, call: Paged[T]) -> AsyncIterator[T]:
        while True:
            response = await self._call(call, call.request, idempotent=True)
            for item in getattr(response, call.field):
                yield item
            if not response.next_page_token:
                return
            call.request.page_token = response.next_page_token

    async def _events(self, call: Watch) -> AsyncIterator[event_pb2.Event]:
        last = call.after_event_id
        responses = self._resumed(call, lambda: call.request_after(last), Deadline(call.timeout),
                                  lambda: f"the watch after event {last}")
        try:
            async for response in responses:
                for event in response.events:
                    last = event.id
                    yield event
                    if await self._ends(call, event):
                        return
        finally:
            await responses.aclose()

    async def _chunks(self, call: Logs) -> AsyncIterator[task_pb2.StreamLogsResponse]:
        offset, attempt = call.offset, 0
        responses = self._resumed(call, lambda: call.request_from(offset, attempt), Deadline(None),
                                  lambda: f"the output at byte {offset}")
        try:
            async for response in responses:
                offset, attempt = response.offset + len(response.data), response.attempt
                yield response
        finally:
            await responses.aclose()

    async def _resumed(self, call: Watch | Logs, request: Callable[[], Any], deadline: Deadline,
                 place: Callable[[], str]) -> AsyncIterator[Any]:
        """The responses of a server stream, resumed on the replica retry.py picks after a break
        it may resume from, with `request()` (from where the last response taken left off;
        `place()` says where, for the log). A watch has no end of its own: its stream ending
        is a break too."""
        tries = Tries(self.retry, self._replicas, call.method, idempotent=True)
        while True:
            replica = self._replicas.current
            stream = replica.stubs.method(call)(request(), timeout=deadline.remaining())
            try:
                with rpc_errors():
                    async for response in stream:
                        tries.progressed()
                        yield response
                if not isinstance(call, Watch):
                    return
                error: JobplaneError = Unavailable(f"the server at {replica.address} ended the event stream")
            except JobplaneError as exc:
                if fell_behind(exc):
                    log.info("the server cut off this stream for falling behind; resuming %s", place())
                    continue
                if not resumable(exc):
                    raise
                error = exc
            finally:
                stream.cancel()
            pause = tries.after(error, replica)
            if pause is None:
                raise error
            log.info("resuming %s", place())
            await asyncio.sleep(pause)


class Connecting:
    """What `AsyncClient.connect` returns: await it for the client, or `async with` it to have
    the client closed at the end of the block."""

    def __init__(self, open_client: Callable[[], AsyncClient]) -> None:
        self._open_client = open_client
        self._client: AsyncClient | None = None

    def __await__(self) -> Generator[Any, None, AsyncClient]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncClient:
        self._client = await self._open()
        return self._client

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            await self._client.close()

    async def _open(self) -> AsyncClient:
        return self._open_client()
