"""AlertService: server-wide alert rules (create, get, list, delete). Changes go through the
engine (domain/alerts.py), which matches each job's status changes against the rules and records
their deliveries in the notification outbox; reads come from the database, so followers answer
them too."""

from __future__ import annotations

from jobplane.v1 import alert_pb2, alert_pb2_grpc

from ..domain.alerts import AlertRule, check_alert_rule
from ..domain.query import page_of
from ..errors import InvalidArgument, NotFound
from ..security.policy import current_caller
from ..store.alerts import AlertStore
from . import convert
from .base import Deps, page_size, rpc
from .spec_fields import notify_entry_from_proto, notify_to_proto


def rule_from_proto(m: alert_pb2.AlertRule, by: str) -> AlertRule:
    if not m.HasField("notify"):
        raise InvalidArgument("rule.notify", "missing; send where to notify: webhook (a URL) or command (an argv)")
    notify = notify_entry_from_proto(m.notify, "rule.notify")
    return check_alert_rule(AlertRule(0, m.name.strip(), m.filter.strip(), notify, by))


def rule_to_proto(r: AlertRule) -> alert_pb2.AlertRule:
    return alert_pb2.AlertRule(id=str(r.id), name=r.name, filter=r.filter, notify=notify_to_proto((r.notify,))[0],
                               created_by=r.created_by, create_time=convert.ts(r.create_time))


class AlertService(alert_pb2_grpc.AlertServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self.store = AlertStore(deps.reads.db)

    @rpc
    async def CreateAlertRule(self, request, context):
        if not request.HasField("rule"):
            raise InvalidArgument("rule", "missing; send the rule (filter, and notify with a webhook or command)")
        rule = rule_from_proto(request.rule, current_caller.get().identity)
        made = await self.d.core.call(lambda engine: engine.create_alert_rule(rule))
        return alert_pb2.CreateAlertRuleResponse(rule=rule_to_proto(made))

    @rpc
    async def GetAlertRule(self, request, context):
        rule_id = self._id(request)
        rule = await self.d.read(self.store.get, rule_id)
        if rule is None:
            raise NotFound(f"alert rule {rule_id} not found; `jobplane alerts list` shows the rules there are")
        return alert_pb2.GetAlertRuleResponse(rule=rule_to_proto(rule))

    @rpc
    async def ListAlertRules(self, request, context):
        rules = await self.d.read(self.store.list)
        page = page_of(rules, request.page_token, page_size(request.page_size))
        return alert_pb2.ListAlertRulesResponse(rules=[rule_to_proto(r) for r in page.items],
                                                next_page_token=page.next_page_token)

    @rpc
    async def DeleteAlertRule(self, request, context):
        rule_id = self._id(request)
        await self.d.core.call(lambda engine: engine.delete_alert_rule(rule_id))
        return alert_pb2.DeleteAlertRuleResponse()

    @staticmethod
    def _id(request) -> int:
        return convert.parse_id("rule_id", request.rule_id, "alert rule")


__all__ = ["AlertService", "rule_from_proto", "rule_to_proto"]
