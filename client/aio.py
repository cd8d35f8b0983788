"""The asyncio SDK client: the twin of `Client` with the same method names."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc

from jobplane.client.channel import locate_credentials, open_aio_channel, resolve_target
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


class AsyncClient:
    """An asyncio connection to a jobplane server; see `Client` for the semantics of each method."""

    def __init__(self, channel: grpc.aio.Channel, *, target: str, timeout: float = 10.0,
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
    async def connect(
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
    ) -> AsyncClient:
        """Open a channel to `address`; connects lazily. Options as for `Client.connect`."""
        target = resolve_target(address)
        given = Credentials.from_options(token=token, ca=ca, cert=cert, key=key, insecure=insecure)
        credentials = locate_credentials(target, given)
        return cls(open_aio_channel(target, credentials), target=target, timeout=timeout, credentials=credentials,
                   retry=retry)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # Jobs

    async def submit_job(
        self, spec: job_pb2.JobSpec | Mapping[str, Any], *, request_id: str | None = None
    ) -> job_pb2.Job:
        request = submit_request(spec, request_id)
        pauses = self.retry.pauses()
        while True:
            try:
                return (await self._unary(self._jobs.SubmitJob, request)).job
            except JobplaneError as error:
                pause = next_pause(pauses, error, request)
                if pause is None:
                    raise
            await asyncio.sleep(pause)

    async def get_job(self, job_id: str) -> job_pb2.Job:
        return (await self._unary(self._jobs.GetJob, job_pb2.GetJobRequest(job_id=job_id))).job

    def list_jobs(self, *, filter: str = "", order_by: str = "", view: str = "",
                  page_size: int = 100) -> AsyncIterator[job_pb2.Job]:
        request = job_pb2.ListJobsRequest(filter=filter, order_by=order_by, view=view, page_size=page_size)
        return self._pages(self._jobs.ListJobs, request, "jobs")

    async def summarize_jobs(self, *, filter: str = "", view: str = "") -> job_pb2.SummarizeJobsResponse:
        return await self._unary(self._jobs.SummarizeJobs, job_pb2.SummarizeJobsRequest(filter=filter, view=view))

    async def cancel_job(self, job_id: str, *, reason: str = "") -> job_pb2.Job:
        request = job_pb2.CancelJobRequest(job_id=job_id, reason=reason)
        return (await self._unary(self._jobs.CancelJob, request)).job

    async def hold_job(self, job_id: str, *, reason: str = "") -> job_pb2.Job:
        request = job_pb2.HoldJobRequest(job_id=job_id, reason=reason)
        return (await self._unary(self._jobs.HoldJob, request)).job

    async def release_job(self, job_id: str) -> job_pb2.Job:
        return (await self._unary(self._jobs.ReleaseJob, job_pb2.ReleaseJobRequest(job_id=job_id))).job

    async def watch(
        self, job_id: str = "", *, after_event_id: int = 0, timeout: float | None = None, filter: str = "",
        view: str = ""
    ) -> AsyncIterator[event_pb2.Event]:
        def open_stream(last: int, remaining: float | None) -> Any:
            request = job_pb2.WatchEventsRequest(job_id=job_id, after_event_id=last, filter=filter, view=view)
            return self._jobs.WatchEvents(request, timeout=remaining)

        async for event in self._events(open_stream, after_event_id, timeout):
            yield event

    async def watch_continuations(
        self, *, after_event_id: int = 0, timeout: float | None = None
    ) -> AsyncIterator[event_pb2.Event]:
        def open_stream(last: int, remaining: float | None) -> Any:
            request = continuation_pb2.WatchContinuationsRequest(after_event_id=last)
            return self._continuations.WatchContinuations(request, timeout=remaining)

        async for event in self._events(open_stream, after_event_id, timeout):
            yield event

    async def _events(self, open_stream: Callable[[int, float | None], Any], after_event_id: int,
                      timeout: float | None) -> AsyncIterator[event_pb2.Event]:
        deadline = Deadline(timeout)
        last = after_event_id
        while True:
            call = open_stream(last, deadline.remaining())
            try:
                with rpc_errors():
                    async for response in call:
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

    async def wait_job(self, job_id: str, *, timeout: float | None = None) -> job_pb2.Job:
        job = await self.get_job(job_id)
        if is_finished(job):
            return job
        events = self.watch(job_id, timeout=timeout)
        try:
            async for event in events:
                if is_job_end(event, job_id):
                    break
        finally:
            await events.aclose()
        job = await self.get_job(job_id)
        if not is_finished(job):
            raise Unavailable(f"the event stream closed before job {job_id} finished")
        return job

    # Tasks

    def list_tasks(self, job_id: str = "", *, filter: str = "", order_by: str = "", view: str = "",
                   page_size: int = 100) -> AsyncIterator[task_pb2.Task]:
        request = task_pb2.ListTasksRequest(job_id=job_id, filter=filter, order_by=order_by, view=view,
                                            page_size=page_size)
        return self._pages(self._tasks.ListTasks, request, "tasks")

    async def get_task(self, task_id: str) -> task_pb2.Task:
        return (await self._unary(self._tasks.GetTask, task_pb2.GetTaskRequest(task_id=task_id))).task

    # Providers and continuations

    def list_providers(self, *, filter: str = "", page_size: int = 100) -> AsyncIterator[provider_pb2.Provider]:
        request = provider_pb2.ListProvidersRequest(filter=filter, page_size=page_size)
        return self._pages(self._providers.ListProviders, request, "providers")

    async def get_provider(self, provider_id: str) -> provider_pb2.Provider:
        request = provider_pb2.GetProviderRequest(provider_id=provider_id)
        return (await self._unary(self._providers.GetProvider, request)).provider

    async def drain_provider(
        self, provider_id: str, *, wait: bool = False, deadline: float = 0.0
    ) -> provider_pb2.Provider:
        request = provider_pb2.DrainProviderRequest(provider_id=provider_id, wait=wait, deadline_seconds=deadline)
        return (await self._unary(self._providers.DrainProvider, request)).provider

    async def revoke_provider(self, provider_id: str, *, reason: str = "") -> provider_pb2.Provider:
        request = provider_pb2.RevokeProviderRequest(provider_id=provider_id, reason=reason)
        return (await self._unary(self._providers.RevokeProvider, request)).provider

    def list_continuations(
        self, *, filter: str = "", page_size: int = 100
    ) -> AsyncIterator[continuation_pb2.Continuation]:
        request = continuation_pb2.ListContinuationsRequest(filter=filter, page_size=page_size)
        return self._pages(self._continuations.ListContinuations, request, "continuations")

    async def get_continuation(self, continuation_id: str) -> continuation_pb2.Continuation:
        request = continuation_pb2.GetContinuationRequest(continuation_id=continuation_id)
        return (await self._unary(self._continuations.GetContinuation, request)).continuation

    async def plan_continuation(
        self, provider_id: str, *, at: float | None = None
    ) -> continuation_pb2.PlanContinuationResponse:
        return await self._unary(self._continuations.PlanContinuation, plan_request(provider_id, at))

    # Inventory

    def list_inventory(
        self, *, filter: str = "", page_size: int = 100
    ) -> AsyncIterator[inventory_pb2.InventoryEntry]:
        request = inventory_pb2.ListInventoryRequest(filter=filter, page_size=page_size)
        return self._pages(self._inventory.ListInventory, request, "entries")

    async def scan_provider(self, provider_id: str, signatures: Iterable[Mapping[str, Any]]) -> list[str]:
        request = inventory_pb2.ScanProviderRequest(provider_id=provider_id, signatures=signature_structs(signatures))
        return list((await self._unary(self._inventory.ScanProvider, request)).signature_ids)

    # Policies

    async def get_policy(self, scope: str, name: str = "") -> policy_pb2.Policy:
        return (await self._unary(self._policies.GetPolicy, get_request(scope, name))).policy

    def list_policies(self, *, page_size: int = 100) -> AsyncIterator[policy_pb2.Policy]:
        request = policy_pb2.ListPoliciesRequest(page_size=page_size)
        return self._pages(self._policies.ListPolicies, request, "policies")

    async def set_policy(self, scope: str, name: str, document: Mapping[str, Any]) -> policy_pb2.Policy:
        return (await self._unary(self._policies.SetPolicy, set_request(scope, name, document))).policy

    async def delete_policy(self, scope: str, name: str) -> None:
        await self._unary(self._policies.DeletePolicy, delete_request(scope, name))

    async def test_policy(
        self, *, environment: str, raw: Mapping[str, str], user: str = "", groups: Sequence[str] = ()
    ) -> policy_pb2.TestPolicyResponse:
        request = policy_test_request(environment=environment, raw=raw, user=user, groups=groups)
        return await self._unary(self._policies.TestPolicy, request)

    # Views

    async def save_view(self, name: str, *, resource: str = "jobs", filter: str = "",
                        order_by: str = "") -> view_pb2.View:
        return (await self._unary(self._views.SaveView, save_request(name, resource, filter, order_by))).view

    async def get_view(self, name: str) -> view_pb2.View:
        return (await self._unary(self._views.GetView, view_pb2.GetViewRequest(name=name))).view

    async def list_views(self) -> list[view_pb2.View]:
        return list((await self._unary(self._views.ListViews, view_pb2.ListViewsRequest())).views)

    async def delete_view(self, name: str) -> None:
        await self._unary(self._views.DeleteView, view_pb2.DeleteViewRequest(name=name))

    # Conflicts

    def list_conflict_rules(self, *, page_size: int = 100) -> AsyncIterator[conflict_pb2.ConflictRule]:
        request = conflict_pb2.ListConflictRulesRequest(page_size=page_size)
        return self._pages(self._conflicts.ListConflictRules, request, "rules")

    async def create_conflict_rule(
        self, rule: conflict_pb2.ConflictRule | Mapping[str, Any]
    ) -> conflict_pb2.ConflictRule:
        return (await self._unary(self._conflicts.CreateConflictRule, create_request(rule))).rule

    async def delete_conflict_rule(self, name: str) -> None:
        await self._unary(self._conflicts.DeleteConflictRule, conflict_pb2.DeleteConflictRuleRequest(name=name))

    async def check_conflicts(
        self, *, job_id: str = "", spec: job_pb2.JobSpec | Mapping[str, Any] | None = None
    ) -> conflict_pb2.CheckConflictsResponse:
        return await self._unary(self._conflicts.CheckConflicts, check_request(job_id, spec))

    async def suggest_conflicts(self, *, min_failures: int = 0) -> list[conflict_pb2.ConflictSuggestion]:
        request = conflict_pb2.SuggestConflictsRequest(min_failures=min_failures)
        return list((await self._unary(self._conflicts.SuggestConflicts, request)).suggestions)

    # Security

    async def create_token(
        self,
        role: str | int,
        *,
        user: str = "",
        groups: Iterable[str] = (),
        ttl: float | timedelta = 0,
        uses: int = 0,
        name_prefix: str = "",
    ) -> security_pb2.CreateTokenResponse:
        request = token_request(role, user=user, groups=groups, ttl=ttl, uses=uses, name_prefix=name_prefix)
        return await self._unary(self._security.CreateToken, request)

    def list_tokens(self, *, page_size: int = 100) -> AsyncIterator[security_pb2.Token]:
        return self._pages(self._security.ListTokens, security_pb2.ListTokensRequest(page_size=page_size), "tokens")

    async def revoke_token(self, token_id: str) -> security_pb2.Token:
        request = security_pb2.RevokeTokenRequest(token_id=token_id)
        return (await self._unary(self._security.RevokeToken, request)).token

    def list_audit_records(
        self, *, filter: str = "", page_size: int = 100
    ) -> AsyncIterator[security_pb2.AuditRecord]:
        request = security_pb2.ListAuditRecordsRequest(filter=filter, page_size=page_size)
        return self._pages(self._security.ListAuditRecords, request, "records")

    async def get_authority(self) -> security_pb2.GetAuthorityResponse:
        return await self._unary(self._security.GetAuthority, security_pb2.GetAuthorityRequest())

    async def whoami(self) -> security_pb2.WhoAmIResponse:
        return await self._unary(self._security.WhoAmI, security_pb2.WhoAmIRequest())

    # Plumbing

    async def _unary(self, method: Callable[..., Any], request: Any) -> Any:
        with rpc_errors():
            return await method(request, timeout=self.timeout)

    async def _pages(self, method: Callable[..., Any], request: Any, field: str) -> AsyncIterator[Any]:
        while True:
            response = await self._unary(method, request)
            for item in getattr(response, field):
                yield item
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token
