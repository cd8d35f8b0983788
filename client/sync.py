"""The blocking SDK client. Its calls are defined once, in calls.py (shared with `AsyncClient`);
this module binds them and runs them on blocking channels, one per server replica, tried as
retry.py says."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

import grpc

from jobplane.client import calls, calls_alerts, calls_conflicts, calls_policies, calls_schedules, calls_security
from jobplane.client.calls import Logs, Paged, Unary, Watch
from jobplane.client.channel import locate_credentials, open_channel, resolve_addresses
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
def bind(build: Callable[P, Unary[T]]) -> Callable[Concatenate[Client, P], T]: ...
@overload
def bind(build: Callable[P, Paged[T]]) -> Callable[Concatenate[Client, P], Iterator[T]]: ...
@overload
def bind(build: Callable[P, Watch]) -> Callable[Concatenate[Client, P], Iterator[event_pb2.Event]]: ...
@overload
def bind(build: Callable[P, Logs]) -> Callable[Concatenate[Client, P], Iterator[task_pb2.StreamLogsResponse]]: ...


def bind(build: Callable[..., Any]) -> Callable[..., Any]:
    """The `Client` method that runs the call `build` defines, with its name, docstring and signature."""
    kind, item = calls.kind_of(build)
    if kind is Unary:
        def method(self: Client, *args: Any, **kwargs: Any) -> Any:
            return self._unary(build(*args, **kwargs))
        return calls.as_method(method, build, item)
    if kind is Paged:
        def method(self: Client, *args: Any, **kwargs: Any) -> Any:
            return self._pages(build(*args, **kwargs))
        return calls.as_method(method, build, Iterator[item])
    if kind is Logs:
        def method(self: Client, *args: Any, **kwargs: Any) -> Any:
            return self._chunks(build(*args, **kwargs))
        return calls.as_method(method, build, Iterator[item])

    def method(self: Client, *args: Any, **kwargs: Any) -> Any:
        return self._events(build(*args, **kwargs))
    return calls.as_method(method, build, Iterator[item])


class Client:
    """A connection to a jobplane server, or to its replicas. Unary calls get `timeout` as
    deadline; streams get none.

    Every failed call raises a `jobplane.client.JobplaneError` subclass (NotFound, Unavailable, ...).
    `channel` is one channel, or a channel per replica ({address: channel}, in the order to try).
    """

    def __init__(self, channel: grpc.Channel | Mapping[str, grpc.Channel], *, target: str = "",
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
    ) -> Client:
        """Open a channel to `address` (default: `channel.resolve_target`). Connects lazily:
        an unreachable server shows as Unavailable on the first call.

        `address` may list the server's replicas, comma-separated (`a:7070,b:7070,c:7070`): a
        call that finds one unreachable goes to the next (see `retry`), and a watch resumes
        on another where it broke off.

        `token` is the secret or `@PATH` of a file holding it; `ca` the CA bundle (a path or PEM);
        `cert`/`key` a client certificate. What is not given comes from $JOBPLANE_TOKEN,
        $JOBPLANE_CA and $JOBPLANE_INSECURE, then for a server on this machine from the running
        `jobplane up` or the server's data directory (see `channel.locate_credentials`).
        Raises CredentialsError (an InvalidArgument) for unreadable or contradictory options.
        `timeout` is each call's deadline; `retry` says how often, and after what pauses, a
        call that may be retried is tried again (reads, and a submit with its request id).
        """
        addresses = resolve_addresses(address)
        given = Credentials.from_options(token=token, ca=ca, cert=cert, key=key, insecure=insecure)
        credentials = {address: locate_credentials(address, given) for address in addresses}
        channels = {address: open_channel(address, found) for address, found in credentials.items()}
        return cls(channels, target=",".join(addresses), timeout=timeout, credentials=credentials[addresses[0]],
                   retry=retry)

    def close(self) -> None:
        for channel in self._replicas.channels:
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
    watch_continuations = bind(calls.watch_continuations)
    logs = bind(calls.logs)
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

    def wait(self, job_id: str, *, timeout: float | None = None) -> job_pb2.Job:
        """Block until the job succeeded, failed or was cancelled and return it (then
        `job.succeeded` says which).

        Raises DeadlineExceeded after `timeout` seconds, NotFound for an unknown job.
        """
        job = self.get_job(job_id, summary=True)  # its state is all this needs; the whole job once it ends
        if is_finished(job):
            return self.get_job(job_id)
        # From event 0: a job that ends between get_job and here still shows its end event. Only
        # the job's own events: a job of 10,000 tasks makes 40,000 task events the wait needs none of.
        with closing(self.watch(job_id, timeout=timeout, filter="type=JOB")) as events:
            for _ in events:
                pass  # the watch of one job ends with it
        job = self.get_job(job_id)
        if not is_finished(job):
            raise Unavailable(f"the event stream closed before job {job_id} finished")
        return job

    wait_job = wait  # the name of earlier releases

    def _ends(self, call: Watch, event: event_pb2.Event) -> bool:
        """Whether `event` ends a watch of one job: its end, and not one a rerun undid."""
        return bool(call.job_id) and is_job_end(event, call.job_id) and is_last_end(event, self.get_job(call.job_id, summary=True))

    # Running a call

    def _invoke(self, replica: Replica, call: Unary[Any] | Paged[Any], request: Any) -> Any:
        with rpc_errors():
            return replica.stubs.method(call)(request, timeout=self.timeout)

    def _call(self, call: Unary[Any] | Paged[Any], request: Any, *, idempotent: bool) -> Any:
        """The response to `request`, tried on the replicas as retry.py says."""
        tries = Tries(self.retry, self._replicas, call.method, idempotent=idempotent)
        while True:
            replica = self._replicas.current
            try:
                return self._invoke(replica, call, request)
            except JobplaneError as error:
                pause = tries.after(error, replica)
                if pause is None:
                    raise
            time.sleep(pause)

    def _unary(self, call: Unary[T]) -> T:
        return call.result(self._call(call, call.request, idempotent=call.idempotent))

    def _pages(self, call: Paged[T]) -> Iterator[T]:
        while True:
            response = self._call(call, call.request, idempotent=True)
            yield from getattr(response, call.field)
            if not response.next_page_token:
                return
            call.request.page_token = response.next_page_token

    def _events(self, call: Watch) -> Iterator[event_pb2.Event]:
        last = call.after_event_id
        responses = self._resumed(call, lambda: call.request_after(last), Deadline(call.timeout),
                                  lambda: f"the watch after event {last}")
        try:
            for response in responses:
                for event in response.events:
                    last = event.id
                    yield event
                    if self._ends(call, event):
                        return
        finally:
            responses.close()

    def _chunks(self, call: Logs) -> Iterator[task_pb2.StreamLogsResponse]:
        offset, attempt = call.offset, 0
        responses = self._resumed(call, lambda: call.request_from(offset, attempt), Deadline(None),
                                  lambda: f"the output at byte {offset}")
        try:
            for response in responses:
                offset, attempt = response.offset + len(response.data), response.attempt
                yield response
        finally:
            responses.close()

    def _resumed(self, call: Watch | Logs, request: Callable[[], Any], deadline: Deadline,
                 place: Callable[[], str]) -> Iterator[Any]:
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
                    for response in stream:
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
            time.sleep(pause)
