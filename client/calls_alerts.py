"""The SDK's alert rule calls (server-wide notifications for the jobs a filter matches),
defined once as every call in calls.py is and bound by both clients."""

from __future__ import annotations

from operator import attrgetter

from jobplane.v1 import alert_pb2, alert_pb2_grpc

from jobplane.client.calls import Paged, Unary

ALERTS = alert_pb2_grpc.AlertServiceStub


def create_alert_rule(rule: alert_pb2.AlertRule) -> Unary[alert_pb2.AlertRule]:
    """A new rule: `filter` (ListJobs' grammar, e.g. "status=FAILURE label.team=etl") and `notify`
    (a webhook or a command; `on` optional). Raises InvalidArgument naming the field at fault."""
    return Unary(ALERTS, "CreateAlertRule", alert_pb2.CreateAlertRuleRequest(rule=rule), attrgetter("rule"))


def get_alert_rule(rule_id: str) -> Unary[alert_pb2.AlertRule]:
    """One rule: its filter, destination, statuses, and who made it when."""
    request = alert_pb2.GetAlertRuleRequest(rule_id=str(rule_id))
    return Unary(ALERTS, "GetAlertRule", request, attrgetter("rule"), idempotent=True)


def list_alert_rules(*, page_size: int = 100) -> Paged[alert_pb2.AlertRule]:
    """Every rule, by id."""
    return Paged(ALERTS, "ListAlertRules", alert_pb2.ListAlertRulesRequest(page_size=page_size), "rules")


def delete_alert_rule(rule_id: str) -> Unary[None]:
    """The rule notifies no more (deliveries it made already are still delivered)."""
    request = alert_pb2.DeleteAlertRuleRequest(rule_id=str(rule_id))
    return Unary(ALERTS, "DeleteAlertRule", request, lambda response: None)
