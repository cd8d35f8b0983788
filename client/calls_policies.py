"""The SDK's policy and saved-view calls, defined once as every call in calls.py is and bound by both clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

from jobplane.client.calls import Paged, Unary, itself, nothing
from jobplane.client.policies import delete_request, get_request, policy_test_request, set_request, versions_request
from jobplane.client.views import save_request
from jobplane.v1 import policy_pb2, policy_pb2_grpc, view_pb2, view_pb2_grpc

POLICIES = policy_pb2_grpc.PolicyServiceStub
VIEWS = view_pb2_grpc.ViewServiceStub


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
    return Unary(POLICIES, "DeletePolicy", delete_request(scope, name), nothing)


def test_policy(*, environment: str, raw: Mapping[str, str], user: str = "", groups: Sequence[str] = ()
                ) -> Unary[policy_pb2.TestPolicyResponse]:
    """How `raw` values from `environment` would map for `user` (default: the caller) in
    `groups`: the normalized status, the deciding policy and rule, and why. Changes nothing."""
    request = policy_test_request(environment=environment, raw=raw, user=user, groups=groups)
    return Unary(POLICIES, "TestPolicy", request, itself, idempotent=True)


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
    return Unary(VIEWS, "DeleteView", view_pb2.DeleteViewRequest(name=name), nothing)
