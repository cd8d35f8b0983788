"""The blocking SDK client."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc

from jobplane.client.channel import locate_credentials, open_channel, resolve_target
from jobplane.client.credentials import Credentials
from jobplane.client.conflicts import check_request, create_request
from jobplane.client.errors import JobplaneError, ResourceExhausted, Unavailable, rpc_errors
from jobplane.client.events import Deadline, fell_behind, is_finished, is_job_end, plan_request
from jobplane.client.jobfile import signature_structs
from jobplane.client.policies import delete_request, get_request, policy_test_request, set_request
from jobplane.client.retry import Retry, next_pause, submit_request
from jobplane.client.security import token_request
from jobplane.client.views import save_request
from jobplane.v1 import (
    conflict_pb2,
    conflict_pb2_grpc,
    continuation_pb2,
    continuation_pb2_grpc,
    event_pb2,
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
    task_pb2,
    task_pb2_grpc,
    view_pb2,
    view_pb2_grpc,
)

log = logging.getLogger(__name__)


class Client:
    """A connection to a jobplane server. Unary calls get `timeout` as deadline; streams get none.

    Every failed call raises a `jobplane.client.JobplaneError` subclass (NotFound, Unavailable, ...).
    """

    def __init__(self, channel: grpc.Channel, *, target: str, timeout: float = 10.0,
                 credentials: Credentials | None = None, retry: Retry = Retry()) -> None:
        self.target = target
        self.timeout = timeout
        self.retry = retry  # how submit_job retries (the only call that does)
        self.credentials = credentials  # None when built from a channel: unknown
        self._channel = channel
        self._jobs = job_pb2_grpc.JobServiceStub(channel)
        self._tasks = task_pb2_grpc.TaskServiceStub(channel)
        self._providers = provider_pb2_grpc.ProviderServiceStub(channel)
        self._continuations = continuation_pb2_grpc.ContinuationServiceStub(channel)
        self._security = security_pb2_grpc.SecurityServiceStub(channel)
        self._inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
        self._policies = policy_pb2_grpc.PolicyServiceStub(channel)
        self._views = view_pb2_grpc.ViewServiceStub(channel)
        self._conflicts = conflict_pb2_grpc.ConflictServiceStub(channel)

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

        `token` is the secret or `@PATH` of a file holding it; `ca` the CA bundle (a path or PEM);
        `cert`/`key` a client certificate. What is not given comes from $JOBPLANE_TOKEN,
        $JOBPLANE_CA and $JOBPLANE_INSECURE, then for a server on this machine from the running
        `jobplane up` or the server's data directory (see `channel.locate_credentials`).
        Raises CredentialsError (an InvalidArgument) for unreadable or contradictory options.
        `timeout` is each call's deadline; `retry` says how `submit_job` retries.
        """
        target = resolve_target(address)
        given = Credentials.from_options(token=token, ca=ca, cert=cert, key=key, insecure=insecure)
        credentials = locate_credentials(target, given)
        return cls(open_channel(target, credentials), target=target, timeout=timeout, credentials=credentials,
                   retry=retry)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Jobs

    def submit_job(self, spec: job_pb2.JobSpec | Mapping[str, Any], *, request_id: str | None = None) -> job_pb2.Job:
        """Submit a job; a mapping is the parsed job-file dict (raises JobFileError if malformed).

        Idempotent: the submit carries `request_id` (a UUID; default a fresh one per call) and is
        tried again with it on Unavailable and DeadlineExceeded, as `retry` says. The server makes
        one job per id (for a day, `--request-id-ttl`), so a retry whose first answer was lost gets
        that same job back. Pass your own id to repeat a submit safely across processes; the same
        id with another spec raises AlreadyExists. `request_id=""` sends none and never retries.
        """
        request = submit_request(spec, request_id)
        pauses = self.retry.pauses()
        while True:
            try:
                return self._unary(self._jobs.SubmitJob, request).job
            except JobplaneError as error:
                pause = next_pause(pauses, error, request)
                if pause is None:
                    raise
            time.sleep(pause)

    def get_job(self, job_id: str) -> job_pb2.Job:
        return self._unary(self._jobs.GetJob, job_pb2.GetJobRequest(job_id=job_id)).job

    def list_jobs(self, *, filter: str = "", order_by: str = "", view: str = "",
                  page_size: int = 100) -> Iterator[job_pb2.Job]:
        """Jobs matching `filter` (e.g. `status=FAILURE label.team=etl submitted>=-1d`), in
        `order_by` (e.g. `status,-submitted`), narrowed by your saved `view`; page by page."""
        request = job_pb2.ListJobsRequest(filter=filter, order_by=order_by, view=view, page_size=page_size)
        return self._pages(self._jobs.ListJobs, request, "jobs")

    def summarize_jobs(self, *, filter: str = "", view: str = "") -> job_pb2.SummarizeJobsResponse:
        """How many jobs matching `filter` (and `view`) are in each normalized status (the dashboard)."""
        return self._unary(self._jobs.SummarizeJobs, job_pb2.SummarizeJobsRequest(filter=filter, view=view))

    def cancel_job(self, job_id: str, *, reason: str = "") -> job_pb2.Job:
        return self._unary(self._jobs.CancelJob, job_pb2.CancelJobRequest(job_id=job_id, reason=reason)).job

    def hold_job(self, job_id: str, *, reason: str = "") -> job_pb2.Job:
        """Hold the job by hand: none of its tasks starts (running ones carry on) until release_job.
        It keeps its place in line; `Job.hold` says who held it and why."""
        return self._unary(self._jobs.HoldJob, job_pb2.HoldJobRequest(job_id=job_id, reason=reason)).job

    def release_job(self, job_id: str) -> job_pb2.Job:
        """Undo hold_job: the job's tasks may start again (unless a conflict or its window holds them)."""
        return self._unary(self._jobs.ReleaseJob, job_pb2.ReleaseJobRequest(job_id=job_id)).job

    def watch(
        self, job_id: str = "", *, after_event_id: int = 0, timeout: float | None = None, filter: str = "",
        view: str = ""
    ) -> Iterator[event_pb2.Event]:
        """Events (of one job, or all) after `after_event_id`, then live; endless unless `timeout`.
        `filter` (e.g. `status=FAILURE environment=external`) and `view` keep only some.

        A watcher the server cut off for falling behind resumes from the last event it got.
        Stopping the iteration (break, close) cancels the stream.
        """
        def open_stream(last: int, remaining: float | None) -> Any:
            request = job_pb2.WatchEventsRequest(job_id=job_id, after_event_id=last, filter=filter, view=view)
            return self._jobs.WatchEvents(request, timeout=remaining)

        return self._events(open_stream, after_event_id, timeout)

    def watch_continuations(
        self, *, after_event_id: int = 0, timeout: float | None = None
    ) -> Iterator[event_pb2.Event]:
        """Failover events after `after_event_id`, then live; endless unless `timeout`."""

        def open_stream(last: int, remaining: float | None) -> Any:
            request = continuation_pb2.WatchContinuationsRequest(after_event_id=last)
            return self._continuations.WatchContinuations(request, timeout=remaining)

        return self._events(open_stream, after_event_id, timeout)

    def _events(self, open_stream: Callable[[int, float | None], Any], after_event_id: int,
                timeout: float | None) -> Iterator[event_pb2.Event]:
        deadline = Deadline(timeout)
        last = after_event_id
        while True:
            call = open_stream(last, deadline.remaining())
            try:
                with rpc_errors():
                    for response in call:
                        for event in response.events:
                            last = event.id
                            yield event
                return
            except ResourceExhausted as exc:
                if not fell_behind(exc):
                    raise  # another limit (e.g. too many streams): retrying at once would only spin
                log.info("the server cut off this watcher for falling behind; resuming after event %d", last)
            finally:
                call.cancel()

    def wait_job(self, job_id: str, *, timeout: float | None = None) -> job_pb2.Job:
        """Block until the job succeeded, failed or was cancelled and return it.

        Raises DeadlineExceeded after `timeout` seconds, NotFound for an unknown job.
        """
        job = self.get_job(job_id)
        if is_finished(job):
            return job
        # From event 0: a job that ends between get_job and here still shows its end event.
        with closing(self.watch(job_id, timeout=timeout)) as events:
            for event in events:
                if is_job_end(event, job_id):
                    break
        job = self.get_job(job_id)
        if not is_finished(job):
            raise Unavailable(f"the event stream closed before job {job_id} finished")
        return job

    # Tasks

    def list_tasks(self, job_id: str = "", *, filter: str = "", order_by: str = "", view: str = "",
                   page_size: int = 100) -> Iterator[task_pb2.Task]:
        """Tasks of a job (or of every job you may see) matching `filter` (e.g.
        `status=FAILURE provider=local-1`), in `order_by`, narrowed by your saved `view`."""
        request = task_pb2.ListTasksRequest(job_id=job_id, filter=filter, order_by=order_by, view=view,
                                            page_size=page_size)
        return self._pages(self._tasks.ListTasks, request, "tasks")

    def get_task(self, task_id: str) -> task_pb2.Task:
        return self._unary(self._tasks.GetTask, task_pb2.GetTaskRequest(task_id=task_id)).task

    # Providers and continuations

    def list_providers(self, *, filter: str = "", page_size: int = 100) -> Iterator[provider_pb2.Provider]:
        """Providers matching `filter` (e.g. `state=ACTIVE label.gpu=true`)."""
        request = provider_pb2.ListProvidersRequest(filter=filter, page_size=page_size)
        return self._pages(self._providers.ListProviders, request, "providers")

    def get_provider(self, provider_id: str) -> provider_pb2.Provider:
        request = provider_pb2.GetProviderRequest(provider_id=provider_id)
        return self._unary(self._providers.GetProvider, request).provider

    def drain_provider(self, provider_id: str, *, wait: bool = False, deadline: float = 0.0) -> provider_pb2.Provider:
        """No new work to the provider; its tasks go on elsewhere now, or (wait) finish first."""
        request = provider_pb2.DrainProviderRequest(provider_id=provider_id, wait=wait, deadline_seconds=deadline)
        return self._unary(self._providers.DrainProvider, request).provider

    def revoke_provider(self, provider_id: str, *, reason: str = "") -> provider_pb2.Provider:
        """Close the provider's stream, hand its tasks on and refuse it from now on."""
        request = provider_pb2.RevokeProviderRequest(provider_id=provider_id, reason=reason)
        return self._unary(self._providers.RevokeProvider, request).provider

    def list_continuations(
        self, *, filter: str = "", page_size: int = 100
    ) -> Iterator[continuation_pb2.Continuation]:
        request = continuation_pb2.ListContinuationsRequest(filter=filter, page_size=page_size)
        return self._pages(self._continuations.ListContinuations, request, "continuations")

    def get_continuation(self, continuation_id: str) -> continuation_pb2.Continuation:
        request = continuation_pb2.GetContinuationRequest(continuation_id=continuation_id)
        return self._unary(self._continuations.GetContinuation, request).continuation

    def plan_continuation(
        self, provider_id: str, *, at: float | None = None
    ) -> continuation_pb2.PlanContinuationResponse:
        """What would continue where, in what order, if the provider failed now (or at the
        Unix time `at`). Changes nothing."""
        return self._unary(self._continuations.PlanContinuation, plan_request(provider_id, at))

    # Inventory

    def list_inventory(self, *, filter: str = "", page_size: int = 100) -> Iterator[inventory_pb2.InventoryEntry]:
        """What providers were last found to have, matching `filter` (e.g. `provider=gpu-1 present=true`;
        keys: provider, signature, present)."""
        request = inventory_pb2.ListInventoryRequest(filter=filter, page_size=page_size)
        return self._pages(self._inventory.ListInventory, request, "entries")

    def scan_provider(self, provider_id: str, signatures: Iterable[Mapping[str, Any]]) -> list[str]:
        """Ask a provider to scan these signatures (dicts such as `{"kind": "file", "path": "/data/ref.fa"}`)
        now; returns the signature ids the results will show under in `list_inventory`.

        Raises JobFileError for a signature that is not a mapping with a string `kind`, before sending.
        """
        request = inventory_pb2.ScanProviderRequest(provider_id=provider_id, signatures=signature_structs(signatures))
        return list(self._unary(self._inventory.ScanProvider, request).signature_ids)

    # Policies

    def get_policy(self, scope: str, name: str = "") -> policy_pb2.Policy:
        """The current version of a policy: scope "default" (no name), "group" or "user".

        Raises ValueError for another scope, NotFound when that group or user has no policy.
        """
        return self._unary(self._policies.GetPolicy, get_request(scope, name)).policy

    def list_policies(self, *, page_size: int = 100) -> Iterator[policy_pb2.Policy]:
        """Every policy: the default one, then group and user policies."""
        request = policy_pb2.ListPoliciesRequest(page_size=page_size)
        return self._pages(self._policies.ListPolicies, request, "policies")

    def set_policy(self, scope: str, name: str, document: Mapping[str, Any]) -> policy_pb2.Policy:
        """Store the next version of a "group" or "user" policy; returns it.

        `document` is `{"rules": [{"environment": "external", "when": {"status": "ABEND"},
        "status": "FAILURE"}, ...]}` (or a Struct). Raises ValueError for an unknown scope,
        JobFileError for a document that cannot be sent (a date, say), and InvalidArgument naming
        e.g. `policy.rules[3].when.status` for rules the server refuses.
        """
        return self._unary(self._policies.SetPolicy, set_request(scope, name, document)).policy

    def delete_policy(self, scope: str, name: str) -> None:
        """Delete a "group" or "user" policy: its members fall back to the next level."""
        self._unary(self._policies.DeletePolicy, delete_request(scope, name))

    def test_policy(
        self, *, environment: str, raw: Mapping[str, str], user: str = "", groups: Sequence[str] = ()
    ) -> policy_pb2.TestPolicyResponse:
        """How `raw` values from `environment` would map for `user` (default: the caller) in
        `groups`: the normalized status, the deciding policy and rule, and why. Changes nothing."""
        request = policy_test_request(environment=environment, raw=raw, user=user, groups=groups)
        return self._unary(self._policies.TestPolicy, request)

    # Views

    def save_view(self, name: str, *, resource: str = "jobs", filter: str = "", order_by: str = "") -> view_pb2.View:
        """Save (or replace) your view `name` of "jobs" or "tasks"; use it as `view=name` in
        list_jobs / list_tasks / summarize_jobs / watch. The server validates filter and order."""
        return self._unary(self._views.SaveView, save_request(name, resource, filter, order_by)).view

    def get_view(self, name: str) -> view_pb2.View:
        return self._unary(self._views.GetView, view_pb2.GetViewRequest(name=name)).view

    def list_views(self) -> list[view_pb2.View]:
        return list(self._unary(self._views.ListViews, view_pb2.ListViewsRequest()).views)

    def delete_view(self, name: str) -> None:
        self._unary(self._views.DeleteView, view_pb2.DeleteViewRequest(name=name))

    # Conflicts

    def list_conflict_rules(self, *, page_size: int = 100) -> Iterator[conflict_pb2.ConflictRule]:
        """Every conflict rule, by name."""
        request = conflict_pb2.ListConflictRulesRequest(page_size=page_size)
        return self._pages(self._conflicts.ListConflictRules, request, "rules")

    def create_conflict_rule(self, rule: conflict_pb2.ConflictRule | Mapping[str, Any]) -> conflict_pb2.ConflictRule:
        """Add a rule; jobs already running keep running. A mapping reads like
        `{"name": "loads", "kind": "exclusive", "jobs": "class=etl-load", "other": "class=backup"}` or
        `{"name": "w", "kind": "lock", "resource": "orders", "mode": "write", "jobs": "name=load-*"}`
        (see `conflicts.rule_from_mapping`; ValueError if it cannot be read). Raises AlreadyExists
        for a name in use, InvalidArgument naming e.g. `rule.jobs` for a rule the server refuses."""
        return self._unary(self._conflicts.CreateConflictRule, create_request(rule)).rule

    def delete_conflict_rule(self, name: str) -> None:
        """Remove a rule; jobs it held start if nothing else holds them."""
        self._unary(self._conflicts.DeleteConflictRule, conflict_pb2.DeleteConflictRuleRequest(name=name))

    def check_conflicts(
        self, *, job_id: str = "", spec: job_pb2.JobSpec | Mapping[str, Any] | None = None
    ) -> conflict_pb2.CheckConflictsResponse:
        """Whether a submitted job (`job_id`) or one not submitted yet (`spec`, a JobSpec or job-file
        mapping) would be held now, and by what. Changes nothing. ValueError unless exactly one is given."""
        return self._unary(self._conflicts.CheckConflicts, check_request(job_id, spec))

    def suggest_conflicts(self, *, min_failures: int = 0) -> list[conflict_pb2.ConflictSuggestion]:
        """Pairs of job classes whose overlapping runs ended in at least `min_failures` (0: the
        server's 3) transient failures, most first, each with the command that adds a rule for it."""
        request = conflict_pb2.SuggestConflictsRequest(min_failures=min_failures)
        return list(self._unary(self._conflicts.SuggestConflicts, request).suggestions)

    # Security

    def create_token(
        self,
        role: str | int,
        *,
        user: str = "",
        groups: Iterable[str] = (),
        ttl: float | timedelta = 0,
        uses: int = 0,
        name_prefix: str = "",
    ) -> security_pb2.CreateTokenResponse:
        """Admin: a join token (role "agent") or an API token (other roles; needs `user`).

        `ttl`/`uses` 0 take the server's defaults (join tokens: 1 hour, one use; API tokens: no
        limit). The response holds the secret, which the server never shows again.
        Raises ValueError for an unknown role.
        """
        request = token_request(role, user=user, groups=groups, ttl=ttl, uses=uses, name_prefix=name_prefix)
        return self._unary(self._security.CreateToken, request)

    def list_tokens(self, *, page_size: int = 100) -> Iterator[security_pb2.Token]:
        """Admin: every token, with what it may do and how long it lasts (never its secret)."""
        return self._pages(self._security.ListTokens, security_pb2.ListTokensRequest(page_size=page_size), "tokens")

    def revoke_token(self, token_id: str) -> security_pb2.Token:
        """Admin: the token stops working now."""
        return self._unary(self._security.RevokeToken, security_pb2.RevokeTokenRequest(token_id=token_id)).token

    def list_audit_records(self, *, filter: str = "", page_size: int = 100) -> Iterator[security_pb2.AuditRecord]:
        """Admin: mutating calls, newest first, matching `filter` (e.g. `identity=alice code=OK`)."""
        request = security_pb2.ListAuditRecordsRequest(filter=filter, page_size=page_size)
        return self._pages(self._security.ListAuditRecords, request, "records")

    def get_authority(self) -> security_pb2.GetAuthorityResponse:
        """The CA bundle agents and clients should trust, with its subject, fingerprint and validity."""
        return self._unary(self._security.GetAuthority, security_pb2.GetAuthorityRequest())

    def whoami(self) -> security_pb2.WhoAmIResponse:
        """Who the server takes this client for: identity, role, groups, and how it authenticated."""
        return self._unary(self._security.WhoAmI, security_pb2.WhoAmIRequest())

    # Plumbing

    def _unary(self, method: Callable[..., Any], request: Any) -> Any:
        with rpc_errors():
            return method(request, timeout=self.timeout)

    def _pages(self, method: Callable[..., Any], request: Any, field: str) -> Iterator[Any]:
        while True:
            response = self._unary(method, request)
            yield from getattr(response, field)
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token
