"""Every SDK call, defined once: the request it sends, the RPC that carries it, what the caller gets.

`Client` (blocking, sync.py) and `AsyncClient` (asyncio, aio.py) do not define their calls: each
binds the definitions below (`get_job = bind(calls.get_job)`) and runs the call objects they
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from jobplane.client.conflicts import check_request, create_request
from jobplane.client.events import plan_request
from jobplane.client.jobfile import signature_structs
from jobplane.client.policies import delete_request, get_request, policy_test_request, set_request, versions_request
from jobplane.client.retry import submit_request
from jobplane.client.security import token_request
from jobplane.client.views import save_request
from jobplane.v1 import (
    conflict_pb2,
    conflict_pb2_grpc,
    continuation_pb2,
    continuation_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    inventory_pb2,
    inventory_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
    provider_pb2,
    provider_pb2_grpc,
    security_pb2,
    security_pb2_grpc,
    server_pb2,
    server_pb2_grpc,
    task_pb2,
    task_pb2_grpc,
    view_pb2,
    view_pb2_grpc,
)

T = TypeVar("T")

JOBS = job_pb2_grpc.JobServiceStub
EVENTS = event_pb2_grpc.EventServiceStub
TASKS = task_pb2_grpc.TaskServiceStub
PROVIDERS = provider_pb2_grpc.ProviderServiceStub
CONTINUATIONS = continuation_pb2_grpc.ContinuationServiceStub
INVENTORY = inventory_pb2_grpc.InventoryServiceStub
POLICIES = policy_pb2_grpc.PolicyServiceStub
VIEWS = view_pb2_grpc.ViewServiceStub
CONFLICTS = conflict_pb2_grpc.ConflictServiceStub
SECURITY = security_pb2_grpc.SecurityServiceStub
SERVERS = server_pb2_grpc.ServerServiceStub


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


def _nothing(response: Any) -> None:
    return None


def _listed(field: str) -> Callable[[Any], list[Any]]:
    return lambda response: list(getattr(response, field))


def _itself(response: T) -> T:
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


def get_job(job_id: str) -> Unary[job_pb2.Job]:
    """The job; NotFound if there is none (or it is not yours to see)."""
    return Unary(JOBS, "GetJob", job_pb2.GetJobRequest(job_id=job_id), attrgetter("job"), idempotent=True)


def list_jobs(*, filter: str = "", order_by: str = "", view: str = "", page_size: int = 100,
              full: bool = False) -> Paged[job_pb2.Job]:
    """Jobs matching `filter` (e.g. `status=FAILURE label.team=etl submitted>=-1d`), in
    `order_by` (e.g. `status,-submitted`), narrowed by your saved `view`; page by page. Each
    job comes without its spec's tasks (its `counts` say how they stand) unless `full`."""
    request = job_pb2.ListJobsRequest(filter=filter, order_by=order_by, view=view, page_size=page_size, full=full)
    return Paged(JOBS, "ListJobs", request, "jobs")


def summarize_jobs(*, filter: str = "", view: str = "") -> Unary[job_pb2.SummarizeJobsResponse]:
    """How many jobs matching `filter` (and `view`) are in each normalized status (the dashboard)."""
    return Unary(JOBS, "SummarizeJobs", job_pb2.SummarizeJobsRequest(filter=filter, view=view), _itself,
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
    return Unary(JOBS, "RerunJob", request, _itself)


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
    return Unary(CONTINUATIONS, "PlanContinuation", plan_request(provider_id, at), _itself, idempotent=True)


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
    return Unary(INVENTORY, "ScanProvider", request, _listed("signature_ids"), idempotent=True)


# Policies


def get_policy(scope: str, name: str = "", version: int = 0) -> Unary[policy_pb2.Policy]:
    """The current version of a policy (or `version`): scope "default" (no name), "group" or "user".

    Raises ValueError for another scope, NotFound when that group or user has no policy.
    """
    return Unary(POLICIES, "GetPolicy", get_request(scope, name, version), attrgetter("policy"), idempotent=True)


def list_policy_versions(scope: str, name: str = "", *, page_size: int = 100) -> Paged[policy_pb2.Policy]:
    """Every version of a policy, newest first (the default policy's last is its built-in version 1)."""
    return Paged(POLICIES, "ListPolicyVersions", versions_request(scope, name, page_size), "policies")


def list_policies(*, page_size: int = 100) -> Paged[policy_pb2.Policy]:
    """Every policy: the default one, then group and user policies."""
    return Paged(POLICIES, "ListPolicies", policy_pb2.ListPoliciesRequest(page_size=page_size), "policies")


def set_policy(scope: str, name: str, document: Mapping[str, Any]) -> Unary[policy_pb2.Policy]:
    """Store the next version of a "default" (no name), "group" or "user" policy; returns it.

    `document` is `{"rules": [{"environment": "external", "when": {"status": "ABEND"},
    "status": "FAILURE"}, ...]}` (or a Struct). Raises ValueError for an unknown scope,
    JobFileError for a document that cannot be sent (a date, say), and InvalidArgument naming
    e.g. `policy.rules[3].when.status` for rules the server refuses.
    """
    return Unary(POLICIES, "SetPolicy", set_request(scope, name, document), attrgetter("policy"))


def delete_policy(scope: str, name: str) -> Unary[None]:
    """Delete a "group" or "user" policy: its members fall back to the next level. The "default"
    policy returns to the built-in rules."""
    return Unary(POLICIES, "DeletePolicy", delete_request(scope, name), _nothing)


def test_policy(*, environment: str, raw: Mapping[str, str], user: str = "", groups: Sequence[str] = ()
                ) -> Unary[policy_pb2.TestPolicyResponse]:
    """How `raw` values from `environment` would map for `user` (default: the caller) in
    `groups`: the normalized status, the deciding policy and rule, and why. Changes nothing."""
    request = policy_test_request(environment=environment, raw=raw, user=user, groups=groups)
    return Unary(POLICIES, "TestPolicy", request, _itself, idempotent=True)


# Views


def save_view(name: str, *, resource: str = "jobs", filter: str = "", order_by: str = "") -> Unary[view_pb2.View]:
    """Save (or replace) your view `name` of "jobs" or "tasks"; use it as `view=name` in
    list_jobs / list_tasks / summarize_jobs / watch. The server validates filter and order."""
    return Unary(VIEWS, "SaveView", save_request(name, resource, filter, order_by), attrgetter("view"),
                 idempotent=True)


def get_view(name: str) -> Unary[view_pb2.View]:
    """Your saved view `name`."""
    return Unary(VIEWS, "GetView", view_pb2.GetViewRequest(name=name), attrgetter("view"), idempotent=True)


def list_views(*, page_size: int = 100) -> Paged[view_pb2.View]:
    """Your saved views, by name."""
    return Paged(VIEWS, "ListViews", view_pb2.ListViewsRequest(page_size=page_size), "views")


def delete_view(name: str) -> Unary[None]:
    """Delete your saved view `name`."""
    return Unary(VIEWS, "DeleteView", view_pb2.DeleteViewRequest(name=name), _nothing)


# Conflicts


def list_conflict_rules(*, page_size: int = 100) -> Paged[conflict_pb2.ConflictRule]:
    """Every conflict rule, by name."""
    request = conflict_pb2.ListConflictRulesRequest(page_size=page_size)
    return Paged(CONFLICTS, "ListConflictRules", request, "rules")


def create_conflict_rule(rule: conflict_pb2.ConflictRule | Mapping[str, Any]) -> Unary[conflict_pb2.ConflictRule]:
    """Add a rule; jobs already running keep running. A mapping reads like
    `{"name": "loads", "kind": "exclusive", "jobs": "class=etl-load", "other": "class=backup"}` or
    `{"name": "w", "kind": "lock", "resource": "orders", "mode": "write", "jobs": "name=load-*"}`
    (see `conflicts.rule_from_mapping`; ValueError if it cannot be read). Raises AlreadyExists
    for a name in use, InvalidArgument naming e.g. `rule.jobs` for a rule the server refuses."""
    return Unary(CONFLICTS, "CreateConflictRule", create_request(rule), attrgetter("rule"))


def apply_conflict_rule(rule: conflict_pb2.ConflictRule | Mapping[str, Any], *,
                        to_running: str) -> Unary[conflict_pb2.CreateConflictRuleResponse]:
    """Add a rule (as create_conflict_rule) and resolve the conflicts it finds among jobs that run
    now: of each pair the later job is held, its running tasks suspended (`to_running="suspend"`)
    or requeued ("requeue"), until the other ends. The response names the jobs held
    (`held_job_ids`). FailedPrecondition, adding nothing, if one of them cannot be held so."""
    if to_running not in ("suspend", "requeue"):
        raise ValueError(f"to_running {to_running!r}: use 'suspend' or 'requeue'")
    request = create_request(rule)
    request.apply_to_running = HOLD_MODES[to_running]
    return Unary(CONFLICTS, "CreateConflictRule", request, _itself)


def delete_conflict_rule(name: str) -> Unary[None]:
    """Remove a rule; jobs it held start if nothing else holds them."""
    return Unary(CONFLICTS, "DeleteConflictRule", conflict_pb2.DeleteConflictRuleRequest(name=name), _nothing)


def check_conflicts(*, job_id: str = "", spec: job_pb2.JobSpec | Mapping[str, Any] | None = None
                    ) -> Unary[conflict_pb2.CheckConflictsResponse]:
    """Whether a submitted job (`job_id`) or one not submitted yet (`spec`, a JobSpec or job-file
    mapping) would be held now, and by what. Changes nothing. ValueError unless exactly one is given."""
    return Unary(CONFLICTS, "CheckConflicts", check_request(job_id, spec), _itself, idempotent=True)


def suggest_conflicts(*, min_failures: int = 0) -> Unary[list[conflict_pb2.ConflictSuggestion]]:
    """Pairs of job classes whose overlapping runs ended in at least `min_failures` (0: the
    server's 3) transient failures, most first, each with the command that adds a rule for it."""
    request = conflict_pb2.SuggestConflictsRequest(min_failures=min_failures)
    return Unary(CONFLICTS, "SuggestConflicts", request, _listed("suggestions"), idempotent=True)


# Security


def create_token(role: str | int, *, user: str = "", groups: Iterable[str] = (), ttl: float | timedelta = 0,
                 uses: int = 0, name_prefix: str = "") -> Unary[security_pb2.CreateTokenResponse]:
    """Admin: a join token (role "agent") or an API token (other roles; needs `user`).

    `ttl`/`uses` 0 take the server's defaults (join tokens: 1 hour, one use; API tokens: no
    limit). The response holds the secret, which the server never shows again.
    Raises ValueError for an unknown role.
    """
    request = token_request(role, user=user, groups=groups, ttl=ttl, uses=uses, name_prefix=name_prefix)
    return Unary(SECURITY, "CreateToken", request, _itself)


def list_tokens(*, page_size: int = 100) -> Paged[security_pb2.Token]:
    """Admin: every token, with what it may do and how long it lasts (never its secret)."""
    return Paged(SECURITY, "ListTokens", security_pb2.ListTokensRequest(page_size=page_size), "tokens")


def revoke_token(token_id: str) -> Unary[security_pb2.Token]:
    """Admin: the token stops working now."""
    return Unary(SECURITY, "RevokeToken", security_pb2.RevokeTokenRequest(token_id=token_id), attrgetter("token"),
                 idempotent=True)


def list_audit_records(*, filter: str = "", page_size: int = 100) -> Paged[security_pb2.AuditRecord]:
    """Admin: mutating calls, newest first, matching `filter` (e.g. `identity=alice code=OK`)."""
    request = security_pb2.ListAuditRecordsRequest(filter=filter, page_size=page_size)
    return Paged(SECURITY, "ListAuditRecords", request, "records")


def get_authority() -> Unary[security_pb2.GetAuthorityResponse]:
    """The CA bundle agents and clients should trust, with its subject, fingerprint and validity."""
    return Unary(SECURITY, "GetAuthority", security_pb2.GetAuthorityRequest(), _itself, idempotent=True)


def whoami() -> Unary[security_pb2.WhoAmIResponse]:
    """Who the server takes this client for: identity, role, groups, and how it authenticated."""
    return Unary(SECURITY, "WhoAmI", security_pb2.WhoAmIRequest(), _itself, idempotent=True)


# Servers


def list_servers() -> Unary[server_pb2.ListServersResponse]:
    """The server replicas that share the database, the leader first, and which one answered.
    A server that predates replicas answers UNIMPLEMENTED (a JobplaneError with that code)."""
    return Unary(SERVERS, "ListServers", server_pb2.ListServersRequest(), _itself, idempotent=True)
