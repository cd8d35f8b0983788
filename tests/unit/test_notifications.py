"""What the engine records for a job's `notify`: a delivery in the same batch as the status
change it tells of, only on a change to a status an entry names; how it ended as an event.
And the job file's `notify` key: its shape checked and its problems located."""

import json

import pytest
from support_engine import cmd, engine, provider

from jobplane.client import JobFileError, parse_job_file
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import EventKind, JobSpec, Notify, Outcome, Report, ReportKind, Status
from jobplane.server.domain.notifications import DELIVERED, GAVE_UP, PENDING, check_notify
from jobplane.server.errors import InvalidArgument

HOOK = "http://127.0.0.1:9/hook"


def submit(e, *notify, tasks=(cmd("t"),)):
    spec = JobSpec("nightly", 0, {"team": "etl"}, tuple(tasks), notify=tuple(notify))
    return e.submit(spec, extract_tasks(spec, max_tasks=1000, default_max_attempts=1), owner="ann")


def finish(e, conn, outcome):
    task = next(iter(e.tasks.values()))
    e.report("a", conn, [Report(task.id, 1, ReportKind.STARTED), Report(task.id, 1, ReportKind.FINISHED, outcome,
                                                                         0 if outcome == Outcome.SUCCEEDED else 3)])
    return e.take_changes()


def test_a_failure_records_its_delivery_with_the_status_change():
    e = engine()
    conn = provider(e, "a")
    job = submit(e, Notify(("SUCCESS",), command=("/bin/true",)), Notify(("FAILURE",), webhook=HOOK))
    assert not e.take_changes().notifications  # WAITING, then RUNNING: neither is named
    cs = finish(e, conn, Outcome.FAILED)
    [delivery] = cs.notifications
    failed = next(ev for ev in cs.events if ev.kind == EventKind.JOB and ev.raw_status == "FAILED")
    assert delivery.id == f"{failed.id}.1" and delivery.state == PENDING and delivery.notify.webhook == HOOK
    body = json.loads(delivery.body)
    assert (body["job_id"], body["name"], body["owner"], body["status"], body["previous_status"]) == (
        str(job.id), "nightly", "ann", "FAILURE", "RUNNING")
    assert body["counts"]["failure"] == 1 and body["event_id"] == failed.id and body["labels"] == {"team": "etl"}


def test_the_same_status_shown_again_records_nothing_new():
    e = engine()
    conn = provider(e, "a")
    job = submit(e, Notify(("RUNNING",), webhook=HOOK))
    e.take_changes()
    e.report("a", conn, [Report(next(iter(e.tasks)), 1, ReportKind.STARTED)])
    first = e.take_changes().notifications
    e.event(1, job_id=job.id, raw_status="RUNNING", status=Status.RUNNING, message="again")
    assert len(first) == 1 and not e.take_changes().notifications


def test_settling_a_delivery_writes_its_row_and_an_event():
    e = engine()
    conn = provider(e, "a")
    submit(e, Notify(("SUCCESS",), webhook=HOOK))
    e.take_changes()
    [delivery] = finish(e, conn, Outcome.SUCCEEDED).notifications
    e.settle_delivery(delivery, True, 3)
    cs = e.take_changes()
    assert [(d.id, d.state, d.attempts) for d in cs.notifications] == [(delivery.id, DELIVERED, 3)]
    [event] = cs.events
    assert (event.raw_status, event.status, event.raw["attempts"]) == ("NOTIFIED", Status.SUCCESS, "3")
    e.settle_delivery(delivery, False, 8, "HTTP 500")
    cs = e.take_changes()
    assert cs.notifications[0].state == GAVE_UP and "gave up" in cs.events[0].message and "HTTP 500" in cs.events[0].message


@pytest.mark.parametrize("entry, field", [
    (Notify(("FAILURE",), webhook="file:///etc/passwd"), "spec.notify[0].webhook"),
    (Notify(("FAILURE",), webhook="http://"), "spec.notify[0].webhook"),
    (Notify(("FAILURE",), command=("page",)), "spec.notify[0].command[0]"),
    (Notify((), webhook=HOOK), "spec.notify[0].on"),
    (Notify(("FAILED",), webhook=HOOK), "spec.notify[0].on[0]"),
    (Notify(("FAILURE",), webhook=HOOK, command=("/bin/true",)), "spec.notify[0]"),
])
def test_check_notify_names_the_field(entry, field):
    with pytest.raises(InvalidArgument) as refused:
        check_notify((entry,))
    assert refused.value.field == field


def test_check_notify_limits_the_entries():
    with pytest.raises(InvalidArgument, match=r"spec.notify: has 9 entries; give at most 8"):
        check_notify(tuple(Notify(("FAILURE",), webhook=HOOK) for _ in range(9)))


JOB = '''name = "x"
notify = [
  { on = ["FAILURE", "late_to_start"], webhook = "https://hooks.example.com/jobs" },
  {{ENTRY}},
]
[[tasks]]
name = "t"
command = ["true"]
'''


def test_the_job_file_converts_notify():
    spec = parse_job_file(JOB.replace("{{ENTRY}}", '{ on = "SUCCESS", command = ["/bin/page", "-q"] }')).spec
    assert [(list(n.on), n.webhook, list(n.command)) for n in spec.notify] == [
        ([2, 8], "https://hooks.example.com/jobs", []), ([4], "", ["/bin/page", "-q"])]


@pytest.mark.parametrize("entry, problem", [
    ('{ on = ["FAIL"], webhook = "http://x" }', "job.toml:4: notify[1].on[0]: 'FAIL' is not a normalized status"),
    ('{ webhook = "http://x" }', "job.toml:4: notify[1].on: missing"),
    ('{ on = ["FAILURE"] }', "job.toml:4: notify[1]: set exactly one of webhook"),
    ('{ on = ["FAILURE"], url = "http://x", webhook = "http://x" }', "job.toml:4: notify[1].url: unknown key"),
])
def test_the_job_file_names_the_line_of_a_bad_notify_entry(entry, problem):
    with pytest.raises(JobFileError) as caught:
        parse_job_file(JOB.replace("{{ENTRY}}", entry), name="job.toml")
    assert str(caught.value.problems[0]).startswith(problem)


def test_a_server_message_about_notify_points_at_its_line():
    job = parse_job_file(JOB.replace("{{ENTRY}}", '{ on = ["SUCCESS"], command = ["page"] }'), name="job.toml")
    problem = job.locate("spec.notify[1].command[0]: 'page' is not an absolute path")
    assert str(problem).startswith("job.toml:4: notify[1].command: ")
