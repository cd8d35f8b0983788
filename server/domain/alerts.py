"""Alert rules: server-wide notifications for any job matching a filter (`jobplane alerts add
--filter 'status=FAILURE label.team=etl' --webhook URL`). A rule is a job's notify entry that
applies to every job its filter accepts: when a job's status changes, notifications.py asks
`matching` which rules want it, and records their deliveries in the same outbox, with the same
batch, as the job's own entries.

The filter is the job list's grammar (query.py), on the keys a job has in the engine at the
moment its status changes; `status` is its new status. A component of Engine."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

from ..errors import InvalidArgument, NotFound
from .limits import MAX_NAME, check_text
from .model import JobState, Notify, Status
from .notifications import check_destination
from .query import NUMBER, TEXT, Field, Term, matches_all, parse_filter

if TYPE_CHECKING:
    from .engine import Engine
    from .state import JobRt

# The keys of ListJobs' filter a job has in the engine. Times are left out: `submitted>=-1h`
# is read relative to the moment it is parsed, which for a standing rule means nothing.
ALERT_FIELDS: dict[str, Field] = {
    "status": Field("enum", Status), "state": Field("enum", JobState), "name": TEXT, "owner": TEXT,
    "priority": NUMBER, "id": NUMBER, "schedule": NUMBER, "label.*": TEXT}
MAX_ALERT_RULES = 1000


@dataclass(frozen=True)
class AlertRule:
    id: int
    name: str
    filter: str
    notify: Notify  # `on` empty: every status change the filter accepts
    created_by: str = ""
    create_time: float = 0.0
    deleted: bool = False

    @cached_property
    def terms(self) -> list[Term]:
        return parse_filter(self.filter, ALERT_FIELDS, 0.0)

    @property
    def label(self) -> str:
        """How events and bodies name it."""
        return self.name or f"alert {self.id}"

    def wants(self, job: JobRt, status: Status) -> bool:
        """Whether the job, now showing `status`, is one this rule notifies of."""
        if self.notify.on and status.name not in self.notify.on:
            return False
        return matches_all(self.terms, lambda key: _value(job, status, key))


def _value(job: JobRt, status: Status, key: str) -> object:
    if key.startswith("label."):
        return job.spec.labels.get(key[6:])
    return {"status": lambda: int(status), "state": lambda: int(job.state), "name": lambda: job.name,
            "owner": lambda: job.owner, "priority": lambda: job.priority, "id": lambda: job.id,
            "schedule": lambda: job.schedule_id}[key]()


def check_alert_rule(rule: AlertRule) -> AlertRule:
    """Refuse a rule that could never match or never be delivered, naming the field and the fix."""
    check_text("rule.name", rule.name, MAX_NAME)
    if not rule.filter.strip():
        raise InvalidArgument("rule.filter", "is empty; say which jobs, e.g. status=FAILURE label.team=etl")
    try:
        terms = parse_filter(rule.filter, ALERT_FIELDS, 0.0)
    except InvalidArgument as exc:
        raise InvalidArgument("rule.filter", exc.problem) from None
    if not terms:
        raise InvalidArgument("rule.filter", "has no terms; say which jobs, e.g. status=FAILURE label.team=etl")
    check_destination("rule.notify", rule.notify)
    return rule


class Alerts:
    """The rules in force, by id; deleted ones are dropped (their rows are kept, marked)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rules: dict[int, AlertRule] = {}
        self._next_id = 1

    def restore(self, rules: list[AlertRule], max_id: int) -> None:
        self.rules = {r.id: r for r in rules}
        self._next_id = max_id + 1

    def create(self, rule: AlertRule) -> AlertRule:
        """Add a rule (checked by the caller with check_alert_rule); it gets its id here."""
        if len(self.rules) >= MAX_ALERT_RULES:
            raise InvalidArgument("rule", f"there are {len(self.rules)} alert rules, the most a server keeps; "
                                          "delete some first (`jobplane alerts list`)")
        rule = replace(rule, id=self._next_id, create_time=self.engine.now)
        self._next_id += 1
        self.rules[rule.id] = rule
        self.engine.changes.alert_rules[rule.id] = rule
        return rule

    def delete(self, rule_id: int) -> AlertRule:
        rule = self.rules.pop(rule_id, None)
        if rule is None:
            raise NotFound(f"alert rule {rule_id} not found; `jobplane alerts list` shows the rules there are")
        gone = replace(rule, deleted=True)
        self.engine.changes.alert_rules[rule_id] = gone
        return gone

    def matching(self, job: JobRt, status: Status) -> list[AlertRule]:
        """The rules that notify of this job now showing `status`, by id."""
        return [r for _, r in sorted(self.rules.items()) if r.wants(job, status)]


__all__ = ["ALERT_FIELDS", "AlertRule", "Alerts", "MAX_ALERT_RULES", "check_alert_rule"]
