"""The SDK's conflict rule calls, defined once as every call in calls.py is and bound by both clients."""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import Any

from jobplane.client.calls import HOLD_MODES, Paged, Unary, itself, listed, nothing
from jobplane.client.conflicts import check_request, create_request
from jobplane.v1 import conflict_pb2, conflict_pb2_grpc, job_pb2

CONFLICTS = conflict_pb2_grpc.ConflictServiceStub


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
    return Unary(CONFLICTS, "CreateConflictRule", request, itself)


def delete_conflict_rule(name: str) -> Unary[None]:
    """Remove a rule; jobs it held start if nothing else holds them."""
    return Unary(CONFLICTS, "DeleteConflictRule", conflict_pb2.DeleteConflictRuleRequest(name=name), nothing)


def check_conflicts(*, job_id: str = "", spec: job_pb2.JobSpec | Mapping[str, Any] | None = None
                    ) -> Unary[conflict_pb2.CheckConflictsResponse]:
    """Whether a submitted job (`job_id`) or one not submitted yet (`spec`, a JobSpec or job-file
    mapping) would be held now, and by what. Changes nothing. ValueError unless exactly one is given."""
    return Unary(CONFLICTS, "CheckConflicts", check_request(job_id, spec), itself, idempotent=True)


def suggest_conflicts(*, min_failures: int = 0) -> Unary[list[conflict_pb2.ConflictSuggestion]]:
    """Pairs of job classes whose overlapping runs ended in at least `min_failures` (0: the
    server's 3) transient failures, most first, each with the command that adds a rule for it."""
    request = conflict_pb2.SuggestConflictsRequest(min_failures=min_failures)
    return Unary(CONFLICTS, "SuggestConflicts", request, listed("suggestions"), idempotent=True)
