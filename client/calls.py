"""Every SDK call, defined once: the request it sends, the RPC that carries it, what the caller gets.
This module holds the kinds of call and the calls of jobs, tasks, events, providers, continuations
and inventory; each other service's calls are in a calls_*.py of their own (policies and views,
conflicts, security and servers, schedules, alerts), defined the same way.

`Client` (blocking, sync.py) and `AsyncClient` (asyncio, aio.py) do not define their calls: each
binds the definitions (`get_job = bind(calls.get_job)`) and runs the call objects they
return, differing only in how a stub is invoked and waited for. So the two clients cannot drift
apart; a call is added or changed here, once. A definition returns one of three kinds of call,
and its return annotation says which (the clients bind by it):

- `Unary`: one request, one response; `result` is what the caller gets from the response.
  `idempotent` marks the calls that may be tried again (on another replica) when the way to
  the server failed: reads, changes that end the same when repeated, and a submit with its
  request id. Any other call is tried again only when it certainly reached no server (retry.py).
- `Paged`: a List call (a read); the client asks page after page and yields the items of `field`.
- `Watch`: an event stream, endless unless `timeout`. When it breaks (the server went away or
  stopped, or cut the watcher off for falling behind), the client opens it again, on the same
  replica or another, after the last event it yielded: no gap, no duplicate.

Failed calls raise a `jobplane.client.JobplaneError` subclass (errors.py).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from jobplane.client.errors import InvalidArgument
from jobplane.client.events import plan_request
from jobplane.client.jobfile_signatures import signature_structs
from jobplane.client.retry import submit_request
from jobplane.v1 import (
    continuation_pb2,
    continuation_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    inventory_pb2,
    inventory_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    provider_pb2,
    provider_pb2_grpc,
    task_pb2,
    task_pb2_grpc,
)

T = TypeVar("T")

JOBS = job_pb2_grpc.JobServiceStub
EVENTS = event_pb2_grpc.EventServiceStub
TASKS = task_pb2_grpc.TaskServiceStub
PROVIDERS = provider_pb2_grpc.ProviderServiceStub
CONTINUATIONS = continuation_pb2_grpc.ContinuationServiceStub
INVENTORY = inventory_pb2_grpc.InventoryServiceStub


# The kinds of call


@dataclass(frozen=True)
class Unary(Generic[T]):
    """One request, one response; `result` picks what the caller gets from the response.
    `idempotent`: trying it twice ends as trying it once (so it is retried: retry.py)."""

    stub: type
    method: str
    request: Message
    result: Callable[[Any], T]
    idempotent: bool = False


@dataclass(frozen=True)
class Paged(Generic[T]):
    """A List call: page after page (the client sets `page_token`), yielding the items of `field`."""

    stub: type
    method: str
    request: Message
    field: str


@dataclass(frozen=True)
class Watch:
    """An event stream after `after_event_id`; `request_after(last)` is the request that resumes it.
    With `job_id`, it ends after that job's end event (the end as it stands: not one a rerun undid)."""

    stub: type
    method: str
    request_after: Callable[[int], Message]
    after_event_id: int
    timeout: float | None
    job_id: str = ""


@dataclass(frozen=True)
class Logs:
    """An attempt's output, chunk by chunk; `request_from(offset, attempt)` is the request that
    resumes it at byte `offset` of attempt `attempt` (0 at first: the first byte kept, the latest)."""

    stub: type
    method: str
    request_from: Callable[[int, int], Message]
    offset: int


Call = Unary[Any] | Paged[Any] | Watch | Logs


class Stubs:
    """The stubs of one channel (blocking or asyncio alike), each made on first use."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel
        self._made: dict[type, Any] = {}

    def method(self, call: Call) -> Callable[..., Any]:
        """The stub method that carries `call`."""
        stub = self._made.get(call.stub)
        if stub is None:
            stub = self._made[call.stub] = call.stub(self._channel)
        return getattr(stub, call.method)


def kind_of(build: Callable[..., Any]) -> tuple[type, Any]:
    """(Unary, Paged or Watch; what each item or the result is) for a definition, from its annotation."""
    returns = typing.get_type_hints(build)["return"]
    kind = typing.get_origin(returns) or returns
    item = {Watch: event_pb2.Event, Logs: task_pb2.StreamLogsResponse}.get(kind) or typing.get_args(returns)[0]
    return kind, item


def as_method(method: Callable[..., Any], build: Callable[..., Any], returns: Any) -> Callable[..., Any]:
    """`method`, named and documented as the call `build` defines, with its signature plus `self`
    and the return annotation `returns` (so `help(Client.get_job)` reads as a written method)."""
    signature = inspect.signature(build)
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_parameter, *signature.parameters.values()], return_annotation=returns)
    method.__name__ = method.__qualname__ = build.__name__
    method.__doc__ = build.__doc__
    method.__module__ = build.__module__
    return method


# What a Unary call's caller gets from the response, for the calls of every calls_*.py.

def nothing(response: Any) -> None:
    return None


def listed(field: str) -> Callable[[Any], list[Any]]:
    return lambda response: list(getattr(response, field))


def itself(response: T) -> T:
    return response


# Jobs


def submit_job(spec: job_pb2.JobSpec | Mapping[str, Any], *, request_id: str | None = None) -> Unary[job_pb2.Job]:
    """Submit a job; a mapping is the parsed job-file dict (raises JobFileError if malformed).

    Idempotent: the submit carries `request_id` (a UUID; default a fresh one per call) and is
    tried again with it (on the next replica, if there are several) on Unavailable and
    DeadlineExceeded, as `retry` says. The server makes
    one job per id (for a day, `--request-id-ttl`), so a retry whose first answer was lost gets
    that same job back. Pass your own id to repeat a submit safely across processes; the same
    id with another spec raises AlreadyExists. `request_id=""` sends none and never retries.
    """
    request = submit_request(spec, request_id)
    return Unary(JOBS, "SubmitJob", request, attrgetter("job"), idempotent=bool(request.request_id))


def submit_job_once(spec: job_pb2.JobSpec | Mapping[str, Any], *,
                    request_id: str) -> Unary[job_pb2.SubmitJobResponse]:
    """`submit_job` under your `request_id`, answering whether this submit made the job: the
    response's `job`, and `already_submitted` (true: an earlier submit with this id made it, and
    nothing new was made; false when this call's own first try made it and only its answer was
    lost: its retries carry the same `call_id`)."""
    if not request_id:
        raise InvalidArgument("request_id: submit_job_once needs one (a UUID); submit_job makes one up")
    request = submit_request(spec, request_id)
    return Unary(JOBS, "SubmitJob", request, itself, idempotent=True)


def get_job(job_id: str, *, summary: bool = False) -> Unary[job_pb2.Job]:
    """The job; NotFound if there is none (or it is not yours to see). `summary`: without its
    spec's tasks (its `counts` say how they stand), cheap to poll for a big job."""
    return Unary(JOBS, "GetJob", job_pb2.GetJobRequest(job_id=job_id, summary=summary), attrgetter("job"),
                 idempotent=True)


def list_jobs(*, filter: str = "", order_by: str = "", view: str = "", page_size: int = 100,
              full: bool = False) -> Paged[job_pb2.Job]:
    """Jobs matching `filter` (e.g. `status=FAILURE label.team=etl submitted>=-1d`), in
    `order_by` (e.g. `status,-submitted`), narrowed by your saved `view`; page by page. Each
    job comes without its spec's tasks (its `counts` say how they stand) unless `full`."""
    request = job_pb2.ListJobsRequest(filter=filter, order_by=order_by, view=view, page_size=page_size, full=full)
    return Paged(JOBS, "ListJobs", request, "jobs")


def summarize_jobs(*, filter: str = "", view: str = "") -> Unary[job_pb2.SummarizeJobsResponse]:
    """How many jobs matching `filter` (and `view`) are in each normalized status (the dashboard)."""
    return Unary(JOBS, "SummarizeJobs", job_pb2.SummarizeJobsRequest(filter=filter, view=view), itself,
                 idempotent=True)


def cancel_job(job_id: str, *, reason: str = "") -> Unary[job_pb2.Job]:
    """Cancel the job: queued tasks never start, running ones are stopped."""
    return Unary(JOBS, "CancelJob", job_pb2.CancelJobRequest(job_id=job_id, reason=reason), attrgetter("job"))


HOLD_MODES = {"": job_pb2.HOLD_MODE_UNSPECIFIED, "suspend": job_pb2.HOLD_MODE_SUSPEND,
              "requeue": job_pb2.HOLD_MODE_REQUEUE}


def hold_job(job_id: str, *, reason: str = "", mode: str = "") -> Unary[job_pb2.Job]:
    """Hold the job by hand: none of its tasks starts until release_job. `mode` says what
    becomes of running tasks: "" carry on (refused when every unfinished task runs),
    "suspend" paused in place (slots kept), "requeue" stopped and run again from their
    checkpoint on release. It keeps its place in line; `Job.hold` says who held it and why."""
    if mode not in HOLD_MODES:
        raise ValueError(f"mode {mode!r}: use 'suspend', 'requeue' or '' (a plain hold)")
    request = job_pb2.HoldJobRequest(job_id=job_id, reason=reason, mode=HOLD_MODES[mode])
    return Unary(JOBS, "HoldJob", request, attrgetter("job"))


def release_job(job_id: str) -> Unary[job_pb2.Job]:
    """Undo hold_job: the job's tasks may start again (unless a conflict or its window holds them);
    suspended ones continue where they were paused."""
    return Unary(JOBS, "ReleaseJob", job_pb2.ReleaseJobRequest(job_id=job_id), attrgetter("job"))


def rerun_job(job_id: str, *, failed_only: bool = False) -> Unary[job_pb2.RerunJobResponse]:
    """Run a finished job's unsuccessful tasks again, as new attempts of the same tasks: its
    FAILED ones (and, unless `failed_only`, its CANCELLED ones); dependents cancelled because
    of them wait for them again. The response has the job (RUNNING again) and the `task_ids`
    that run again. FailedPrecondition if the job has not finished or has nothing to rerun."""
    request = job_pb2.RerunJobRequest(job_id=job_id, failed_only=failed_only)
    return Unary(JOBS, "RerunJob", request, itself)


def purge_jobs(finished_before: datetime) -> Unary[int]:
    """Delete the jobs that finished before `finished_before` (an aware datetime, at most now)
    with their tasks, attempts and events; returns how many were purged. Admins only."""
    request = job_pb2.PurgeJobsRequest()
    request.finished_before.FromDatetime(finished_before)
    return Unary(JOBS, "PurgeJobs", request, attrgetter("purged_count"))


def watch(job_id: str = "", *, after_event_id: int = 0, timeout: float | None = None, filter: str = "",
          view: str = "") -> Watch:
    """Events (of one job, or all) after `after_event_id`, then live; one job's end after its end
    event (not an end a rerun undid), all jobs' never; either at `timeout` (DeadlineExceeded).
    `filter` (e.g. `status=FAILURE environment=external`) and `view` keep only some events.

    A watch that breaks (its server went away or stopped, or cut it off for falling behind)
    resumes after the last event it yielded, on the same replica or the next, as the client's
    `retry` allows: no event is missed or seen twice. Stopping the iteration (break, close)
    cancels the stream.
    """
    def request_after(last: int) -> event_pb2.WatchEventsRequest:
        return event_pb2.WatchEventsRequest(job_id=job_id, after_event_id=last, filter=filter, view=view)

    return Watch(EVENTS, "WatchEvents", request_after, after_event_id, timeout, job_id)


def logs(task_id: str, *, attempt: int = 0, follow: bool = False, stderr: bool = False,
         offset: int = 0) -> Logs:
    """A task attempt's stdout (stderr with `stderr`), as the agent that ran it keeps it: the
    chunks (`data`, bytes; `offset`, where they begin) from byte `offset` (0: the first kept), of
    attempt `attempt` (0: the latest). With `follow`, it goes on while the attempt runs and ends
    when it ends. A stream that breaks resumes after the last byte it yielded. Raises NotFound
    (no such task or attempt, or output no longer kept), Unavailable (the agent that keeps it is
    not connected), OutOfRange (the bytes asked for were rotated away)."""
    stream = task_pb2.LOG_STREAM_STDERR if stderr else task_pb2.LOG_STREAM_STDOUT

    def request_from(at: int, pinned: int) -> task_pb2.StreamLogsRequest:
        return task_pb2.StreamLogsRequest(task_id=task_id, attempt=pinned or attempt, stream=stream,
                                          follow=follow, offset=at)

    return Logs(TASKS, "StreamLogs", request_from, offset)


def watch_continuations(*, after_event_id: int = 0, timeout: float | None = None) -> Watch:
    """Failover events after `after_event_id`, then live; endless unless `timeout`; resumes as
    `watch` does."""

    def request_after(last: int) -> continuation_pb2.WatchContinuationsRequest:
        return continuation_pb2.WatchContinuationsRequest(after_event_id=last)

    return Watch(CONTINUATIONS, "WatchContinuations", request_after, after_event_id, timeout)


# Tasks


def list_tasks(job_id: str = "", *, filter: str = "", order_by: str = "", view: str = "",
               page_size: int = 100) -> Paged[task_pb2.Task]:
    """Tasks of a job (or of every job you may see) matching `filter` (e.g.
    `status=FAILURE provider=local-1`), in `order_by`, narrowed by your saved `view`."""
    request = task_pb2.ListTasksRequest(job_id=job_id, filter=filter, order_by=order_by, view=view,
                                        page_size=page_size)
    return Paged(TASKS, "ListTasks", request, "tasks")


def get_task(task_id: str) -> Unary[task_pb2.Task]:
    """The task, with its attempts so far."""
    return Unary(TASKS, "GetTask", task_pb2.GetTaskRequest(task_id=task_id), attrgetter("task"), idempotent=True)


# Providers and continuations


def list_providers(*, filter: str = "", page_size: int = 100) -> Paged[provider_pb2.Provider]:
    """Providers matching `filter` (e.g. `state=ACTIVE label.gpu=true`)."""
    request = provider_pb2.ListProvidersRequest(filter=filter, page_size=page_size)
    return Paged(PROVIDERS, "ListProviders", request, "providers")


def get_provider(provider_id: str) -> Unary[provider_pb2.Provider]:
    """The provider: state, slots, labels, facts and last signal."""
    request = provider_pb2.GetProviderRequest(provider_id=provider_id)
    return Unary(PROVIDERS, "GetProvider", request, attrgetter("provider"), idempotent=True)


def drain_provider(provider_id: str, *, wait: bool = False, deadline: float = 0.0) -> Unary[provider_pb2.Provider]:
    """No new work to the provider; its tasks go on elsewhere now, or (wait) finish first."""
    request = provider_pb2.DrainProviderRequest(provider_id=provider_id, wait=wait, deadline_seconds=deadline)
    return Unary(PROVIDERS, "DrainProvider", request, attrgetter("provider"), idempotent=True)


def resume_provider(provider_id: str) -> Unary[provider_pb2.Provider]:
    """Undo drain_provider: the provider takes work again (a drain lasts until this, across restarts)."""
    request = provider_pb2.ResumeProviderRequest(provider_id=provider_id)
    return Unary(PROVIDERS, "ResumeProvider", request, attrgetter("provider"))


def revoke_provider(provider_id: str, *, reason: str = "") -> Unary[provider_pb2.Provider]:
    """Close the provider's stream, hand its tasks on and refuse it from now on."""
    request = provider_pb2.RevokeProviderRequest(provider_id=provider_id, reason=reason)
    return Unary(PROVIDERS, "RevokeProvider", request, attrgetter("provider"), idempotent=True)


def list_continuations(*, filter: str = "", page_size: int = 100) -> Paged[continuation_pb2.Continuation]:
    """Continuations (tasks moved off a failed provider) matching `filter`."""
    request = continuation_pb2.ListContinuationsRequest(filter=filter, page_size=page_size)
    return Paged(CONTINUATIONS, "ListContinuations", request, "continuations")


def get_continuation(continuation_id: str) -> Unary[continuation_pb2.Continuation]:
    """One continuation: what moved where, in what order."""
    request = continuation_pb2.GetContinuationRequest(continuation_id=continuation_id)
    return Unary(CONTINUATIONS, "GetContinuation", request, attrgetter("continuation"), idempotent=True)


def plan_continuation(provider_id: str, *, at: float | None = None
                      ) -> Unary[continuation_pb2.PlanContinuationResponse]:
    """What would continue where, in what order, if the provider failed now (or at the
    Unix time `at`). Changes nothing."""
    return Unary(CONTINUATIONS, "PlanContinuation", plan_request(provider_id, at), itself, idempotent=True)


# Inventory


def list_inventory(*, filter: str = "", page_size: int = 100) -> Paged[inventory_pb2.InventoryEntry]:
    """What providers were last found to have, matching `filter` (e.g. `provider=gpu-1 present=true`;
    keys: provider, signature, present)."""
    request = inventory_pb2.ListInventoryRequest(filter=filter, page_size=page_size)
    return Paged(INVENTORY, "ListInventory", request, "entries")


def scan_provider(provider_id: str, signatures: Iterable[Mapping[str, Any]]) -> Unary[list[str]]:
    """Ask a provider to scan these signatures (dicts such as `{"kind": "file", "path": "/data/ref.fa"}`)
    now; returns the signature ids the results will show under in `list_inventory`.

    Raises JobFileError for a signature that is not a mapping with a string `kind`, before sending.
    """
    request = inventory_pb2.ScanProviderRequest(provider_id=provider_id, signatures=signature_structs(signatures))
    return Unary(INVENTORY, "ScanProvider", request, listed("signature_ids"), idempotent=True)
