"""Alert rules in the engine: a rule's deliveries join the notification outbox in the batch of
the status change, for the jobs its filter matches only; rules are checked (the filter, the
statuses, the destination) with the field named; deleted rules notify no more."""

import json

import pytest
from support_engine import cmd, engine, provider

from jobplane.server.domain.alerts import AlertRule, check_alert_rule
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import EventKind, JobSpec, Notify, Outcome, Report, ReportKind
from jobplane.server.domain.notifications import PENDING
from jobplane.server.errors import InvalidArgument, NotFound

HOOK = "http://127.0.0.1:9/hook"


def submit(e, name="nightly", labels=None):
    spec = JobSpec(name, 0, labels or {}, (cmd("t"),))
    return e.submit(spec, extract_tasks(spec, max_tasks=1000, default_max_attempts=1), owner="ann")


def finish(e, conn, job, outcome):
    [task_id] = job.task_ids
    e.report("a", conn, [Report(task_id, 1, ReportKind.STARTED), Report(task_id, 1, ReportKind.FINISHED, outcome,
                                                                         0 if outcome == Outcome.SUCCEEDED else 3)])
    return e.take_changes()


def rule(filter_text, on=(), name="etl failures"):
    return check_alert_rule(AlertRule(0, name, filter_text, Notify(on, webhook=HOOK), "olga"))


def test_a_failing_job_the_filter_matches_records_the_rules_delivery_in_the_same_batch():
    e = engine()
    conn = provider(e, "a", slots=10)
    made = e.create_alert_rule(rule("status=FAILURE label.team=etl"))
    assert e.take_changes().alert_rules == {made.id: made} and made.id == 1
    etl, other, etl2 = (submit(e, "etl-job", {"team": "etl"}), submit(e, "web-job", {"team": "web"}),
                        submit(e, "etl-job", {"team": "etl"}))
    assert not e.take_changes().notifications  # WAITING: the filter wants FAILURE
    assert not finish(e, conn, etl, Outcome.SUCCEEDED).notifications  # SUCCESS is not FAILURE
    assert not finish(e, conn, other, Outcome.FAILED).notifications  # team=web
    cs = finish(e, conn, etl2, Outcome.FAILED)
    [delivery] = cs.notifications
    failed = next(ev for ev in cs.events if ev.kind == EventKind.JOB and ev.job_id == etl2.id
                  and ev.raw_status == "FAILED")
    assert delivery.id == f"{failed.id}.a{made.id}" and delivery.state == PENDING and delivery.notify.webhook == HOOK
    body = json.loads(delivery.body)
    assert (body["job_id"], body["status"], body["alert"]) == (str(etl2.id), "FAILURE",
                                                               {"id": str(made.id), "name": "etl failures"})


def test_on_narrows_the_statuses_and_no_status_term_means_every_change():
    e = engine()
    conn = provider(e, "a", slots=10)
    e.create_alert_rule(rule("label.team=etl", name=""))  # every change of an etl job
    e.create_alert_rule(rule("label.team=etl", on=("SUCCESS",), name="done"))
    job = submit(e, "etl-job", {"team": "etl"})
    waiting = e.take_changes().notifications
    assert [json.loads(d.body)["status"] for d in waiting] == ["WAITING"]
    cs = finish(e, conn, job, Outcome.SUCCEEDED)
    statuses = sorted((json.loads(d.body)["status"], json.loads(d.body)["alert"]["name"]) for d in cs.notifications)
    assert statuses == [("RUNNING", "alert 1"), ("SUCCESS", "alert 1"), ("SUCCESS", "done")]


def test_a_deleted_rule_notifies_no_more_and_an_unknown_one_is_not_found():
    e = engine()
    conn = provider(e, "a", slots=10)
    made = e.create_alert_rule(rule("status=FAILURE"))
    e.take_changes()
    gone = e.delete_alert_rule(made.id)
    assert e.take_changes().alert_rules == {made.id: gone} and gone.deleted
    assert not finish(e, conn, submit(e), Outcome.FAILED).notifications
    with pytest.raises(NotFound, match="alerts list"):
        e.delete_alert_rule(made.id)
    assert e.create_alert_rule(rule("status=FAILURE")).id == 2, "ids are never reused"


@pytest.mark.parametrize("filter_text, notify, field, hint", [
    ("", Notify((), webhook=HOOK), "rule.filter", "status=FAILURE"),
    ("status=BROKEN", Notify((), webhook=HOOK), "rule.filter", "use one of RUNNING"),
    ("submitted>=-1h", Notify((), webhook=HOOK), "rule.filter", "unknown key"),
    ("raw.queue=PRINT", Notify((), webhook=HOOK), "rule.filter", "unknown key"),
    ("status=FAILURE", Notify(("FAILED",), webhook=HOOK), "rule.notify.on[0]", "normalized status"),
    ("status=FAILURE", Notify(()), "rule.notify", "exactly one of webhook"),
    ("status=FAILURE", Notify((), webhook="ftp://x/y"), "rule.notify.webhook", "http"),
    ("status=FAILURE", Notify((), command=("page",)), "rule.notify.command[0]", "absolute path"),
])
def test_a_bad_rule_is_refused_naming_its_field(filter_text, notify, field, hint):
    with pytest.raises(InvalidArgument) as refused:
        check_alert_rule(AlertRule(0, "", filter_text, notify))
    assert refused.value.field == field and hint in refused.value.problem
