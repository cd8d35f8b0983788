"""The console's pages of tasks, providers, continuations, conflicts and holds, and its forms
(hold modes, conflict rules, saved views), over real HTTP against a real server and agents: who
may see and do what, and that whatever users put in names, labels and selectors is escaped."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from jobplane.client import Client
from support import wait_until
from support_http import HTTP, get, request, sign_in

pytestmark = pytest.mark.server_args(*HTTP)
RUNNING, QUEUED = 4, 2  # TASK_STATE_RUNNING, TASK_STATE_QUEUED
EVIL = '<script>alert("x")</script>'


def gated(gate) -> list[str]:
    return ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"]


def buttons(html: str) -> set[str]:
    return set(re.findall(r'<button class="([a-z-]+)"', html))


def test_every_page_needs_a_sign_in_and_shows_what_the_role_may_see(sqlite_cluster):
    c = sqlite_cluster
    server = c.server
    c.add_agent("a", slots=1)
    job = c.client.submit_job({"name": "j", "tasks": [{"name": "t", "command": ["true"]}]})
    c.client.wait_job(job.id, timeout=30)
    (task,) = c.client.list_tasks(job.id)
    for path in ("/providers", "/continuations", "/conflicts", f"/tasks/{task.id}"):
        first = get(server, path)
        assert first.status == 303 and first.headers["location"].startswith("/login?next="), path
    eve = sign_in(server, c.client.create_token("submitter", user="eve").secret)
    assert get(server, f"/tasks/{task.id}", cookie=eve).status == 404  # another user's task
    providers = get(server, "/providers", cookie=eve)
    assert providers.status == 200 and 'id="provider-a"' in providers.body
    assert "<h2>Inventory</h2>" not in providers.body and 'data-poll="5"' in providers.body
    assert 'href="/continuations"' not in providers.body  # a page a submitter may not see is not offered
    refused = get(server, "/continuations", cookie=eve)
    assert refused.status == 403 and "role" in refused.body  # the API's own refusal
    vic = sign_in(server, c.client.create_token("viewer", user="vic").secret)
    shown = get(server, "/continuations", cookie=vic)
    assert shown.status == 200 and 'name="plan"' not in shown.body  # the what-if is an operator's
    what_if = get(server, "/continuations?plan=a", cookie=vic)
    assert what_if.status == 403 and 'id="plan"' not in what_if.body
    assert "<h2>Inventory</h2>" in get(server, "/providers", cookie=vic).body
    assert 'href="/continuations"' in get(server, "/providers", cookie=vic).body
    olga = sign_in(server, c.client.create_token("operator", user="olga").secret)
    plan = get(server, "/continuations?plan=a", cookie=olga)
    assert plan.status == 200 and "If a failed at 20" in plan.body and "Nothing would continue" in plan.body
    bad_time = get(server, "/continuations?plan=a&at=tomorrow", cookie=olga)
    assert bad_time.status == 400 and "at: &#x27;tomorrow&#x27; is not an ISO 8601 time" in bad_time.body
    page = get(server, f"/tasks/{task.id}", cookie=olga)
    assert page.status == 200 and f'href="/tasks/{task.id}/output"' in page.body
    assert len(re.findall(r'<tr class="attempt">', page.body)) == 1
    assert "<dt>runs</dt><dd><code>true</code>" in page.body


def test_hold_buttons_follow_what_runs_and_the_role(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    server = c.server
    c.add_agent("a", slots=1)
    gate = tmp_path / "gate"
    job = c.client.submit_job({"name": "two", "tasks": [{"name": "x", "command": gated(gate)},
                                                       {"name": "y", "command": gated(gate)}]})
    wait_until(lambda: c.client.get_job(job.id).counts.running == 1, 30, "one task running")
    olga = sign_in(server, c.client.create_token("operator", user="olga").secret)
    assert buttons(get(server, f"/jobs/{job.id}", cookie=olga).body) == {"cancel", "suspend", "requeue", "hold"}
    vic = sign_in(server, c.client.create_token("viewer", user="vic").secret)
    assert buttons(get(server, f"/jobs/{job.id}", cookie=vic).body) == set()
    forged = request(server, "POST", f"/jobs/{job.id}/hold", cookie=vic, form={"mode": "suspend"})
    assert forged.status == 403 and c.client.get_job(job.id).hold == ""
    wrong = request(server, "POST", f"/jobs/{job.id}/hold", cookie=olga, form={"mode": "freeze"})
    assert wrong.status == 400 and "mode: &#x27;freeze&#x27; is not a hold mode" in wrong.body
    requeued = request(server, "POST", f"/jobs/{job.id}/hold", cookie=olga, form={"mode": "requeue"})
    assert requeued.status == 303
    wait_until(lambda: {t.state for t in c.client.list_tasks(job.id)} == {QUEUED}, 30, "its running task queued")
    page = get(server, f"/jobs/{job.id}", cookie=olga).body
    assert buttons(page) == {"cancel", "release"} and ">Release</button>" in page  # nothing paused: release
    c.client.cancel_job(job.id)
    one = c.client.submit_job({"name": "one", "tasks": [{"name": "z", "command": gated(gate)}]})
    wait_until(lambda: c.client.get_job(one.id).counts.running == 1, 30, "its task running")
    assert buttons(get(server, f"/jobs/{one.id}", cookie=olga).body) == {"cancel", "suspend", "requeue"}
    plain = request(server, "POST", f"/jobs/{one.id}/hold", cookie=olga, form={"reason": "x"})
    assert plain.status == 400 and "--suspend" in plain.body  # the API: a plain hold would hold nothing
    assert c.client.get_job(one.id).hold == ""
    held = request(server, "POST", f"/jobs/{one.id}/hold", cookie=olga, form={"mode": "suspend", "reason": "swap"})
    assert held.status == 303 and c.client.get_job(one.id).hold.startswith("swap")
    assert buttons(get(server, f"/jobs/{one.id}", cookie=olga).body) == {"cancel", "release"}
    assert ">Resume</button>" in get(server, f"/jobs/{one.id}", cookie=olga).body  # paused in place
    holds = get(server, "/conflicts", cookie=olga).body.split("Jobs on hold", 1)[1]
    assert f'<a href="/jobs/{one.id}">' in holds and "swap (by olga)" in holds
    assert '<input type="hidden" name="next" value="/conflicts">' in holds
    back = request(server, "POST", f"/jobs/{one.id}/release", cookie=olga, form={"next": "/conflicts"})
    assert back.status == 303 and back.headers["location"] == "/conflicts" and c.client.get_job(one.id).hold == ""
    gate.touch()
    c.client.wait_job(one.id, timeout=30)


def test_the_providers_page_shows_what_of_each_agents_capacity_its_tasks_use(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=2, extra=["--cpus", "4", "--memory", "8GiB", "--resource", "license=2"])
    gate = tmp_path / "gate"
    job = c.client.submit_job({"name": "sized", "tasks": [{"name": "t", "command": gated(gate), "cpus": 3,
                                                          "memory": "2GiB", "resources": {"license": 1}}]})
    wait_until(lambda: c.client.get_provider("a").slots_in_use == 1, 30, "the sized task out at a")
    vic = sign_in(c.server, c.client.create_token("viewer", user="vic").secret)
    page = get(c.server, "/providers", cookie=vic).body
    row = page[page.index('id="provider-a"'):].split("</tr>")[0]
    assert "cpus 3/4, memory 2 GiB/8 GiB, gpus 0/" in row and "license 1/2" in row
    gate.touch()
    c.client.wait_job(job.id, timeout=30)
    wait_until(lambda: "cpus 0/4" in get(c.server, "/providers", cookie=vic).body, 30, "the capacity given back")


def test_operators_add_and_remove_conflict_rules_and_viewers_may_not(sqlite_cluster):
    c = sqlite_cluster
    server = c.server
    vic = sign_in(server, c.client.create_token("viewer", user="vic").secret)
    page = get(server, "/conflicts", cookie=vic)
    assert page.status == 200 and "add-rule" not in page.body
    forged = request(server, "POST", "/conflicts/rules", cookie=vic, form={"name": "r", "jobs": "class=etl"})
    assert forged.status == 403 and list(c.client.list_conflict_rules()) == []
    olga = sign_in(server, c.client.create_token("operator", user="olga").secret)
    assert "add-rule" in get(server, "/conflicts", cookie=olga).body
    bad = request(server, "POST", "/conflicts/rules", cookie=olga, form={"name": "r", "jobs": "colour=red"})
    assert bad.status == 400 and "unknown key &#x27;colour&#x27;" in bad.body
    invalid = request(server, "POST", "/conflicts/rules", cookie=olga, form={"name": "bad name", "jobs": "class=a"})
    assert invalid.status == 400 and "name" in invalid.body and list(c.client.list_conflict_rules()) == []
    added = request(server, "POST", "/conflicts/rules", cookie=olga, form={
        "name": "loads", "kind": "exclusive", "jobs": f"class=etl label.team={EVIL}", "other": "name=backup-*"})
    assert added.status == 303 and [r.name for r in c.client.list_conflict_rules()] == ["loads"]
    shown = get(server, "/conflicts", cookie=olga).body
    assert EVIL not in shown and "label.team=&lt;script&gt;" in shown and "name=backup-*" in shown
    assert "remove-rule" in shown and "remove-rule" not in get(server, "/conflicts", cookie=vic).body
    assert request(server, "POST", "/conflicts/rules/loads/delete", cookie=vic).status == 403
    assert request(server, "POST", "/conflicts/rules/loads/delete", cookie=olga).status == 303
    assert list(c.client.list_conflict_rules()) == []


def test_saved_views_are_each_users_own(sqlite_cluster):
    c = sqlite_cluster
    server = c.server
    vic = sign_in(server, c.client.create_token("viewer", user="vic").secret)
    saved = request(server, "POST", "/views", cookie=vic, form={
        "name": "broken", "filter": "status=FAILURE", "order_by": "-submitted"})
    assert saved.status == 303 and saved.headers["location"] == "/jobs?view=broken"
    listed = get(server, "/jobs?view=broken", cookie=vic).body
    assert '<a href="/jobs?view=broken" title="status=FAILURE -submitted">broken</a>' in listed
    wrong = request(server, "POST", "/views", cookie=vic, form={"name": "w", "filter": "status=BOGUS"})
    assert wrong.status == 400 and "is not a status" in wrong.body
    admin = sign_in(server, server.token)
    assert 'href="/jobs?view=broken"' not in get(server, "/jobs", cookie=admin).body  # vic's, not the admin's
    assert request(server, "POST", "/views/broken/delete", cookie=vic).status == 303
    assert 'href="/jobs?view=broken"' not in get(server, "/jobs", cookie=vic).body


def test_what_users_wrote_is_escaped_on_every_page(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    server = c.server
    c.add_agent("a", slots=1, labels={"zone": EVIL})
    secret = c.client.create_token("submitter", user="eve").secret
    with Client.connect(server.address, token=secret, ca=server.ca) as eve:
        job = eve.submit_job({"name": "evil", "labels": {"x": EVIL}, "tasks": [
            {"name": "t", "command": ["sh", "-c", f"echo '{EVIL}'; exit 3"], "env": {"E": EVIL}}]})
    c.client.wait_job(job.id, timeout=30)
    (task,) = c.client.list_tasks(job.id)
    gate = tmp_path / "gate"
    held = c.client.submit_job({"name": "held", "tasks": [{"name": "first", "command": gated(gate)},
                                                          {"name": "then", "command": ["true"], "after": ["first"]}]})
    wait_until(lambda: c.client.get_job(held.id).counts.running == 1, 30, "its first task running")
    c.client.hold_job(held.id, reason=EVIL)
    admin = sign_in(server, server.token)
    for path in ("/", "/jobs", f"/jobs/{job.id}", f"/jobs/{held.id}", f"/tasks/{task.id}",
                 f"/tasks/{task.id}/output", "/providers", "/continuations", "/conflicts"):
        page = get(server, path, cookie=admin)
        assert page.status == 200 and EVIL not in page.body and "<script>" not in page.body.replace(
            '<script src="/static/console.js" defer></script>', ""), path
    assert "&lt;script&gt;" in get(server, f"/tasks/{task.id}", cookie=admin).body
    assert "zone=&lt;script&gt;" in get(server, "/providers", cookie=admin).body
    holds = get(server, "/conflicts", cookie=admin).body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; (by admin)" in holds
    c.client.cancel_job(held.id)


PERIOD_END = date.today() + timedelta(days=100)  # never today, so "now" is a quiet day


@pytest.mark.server_args(*HTTP, "--period-end", PERIOD_END.strftime("%m-%d"), "--timezone", "UTC")
def test_the_continuations_page_shows_the_plan_with_the_calendar_rule_and_then_what_happened(sqlite_cluster,
                                                                                               tmp_path):
    c = sqlite_cluster
    server = c.server
    c.add_agent("p1", slots=2)
    gate = tmp_path / "gate"
    first = c.client.submit_job({"name": "first", "continuation_priority": 4,
                                 "tasks": [{"name": "a", "command": gated(gate)}]})
    second = c.client.submit_job({"name": "second", "continuation_priority": 5,
                                  "continuation_rules": [{"kind": "end_of_period", "priority": 0}],
                                  "tasks": [{"name": "b", "command": gated(gate)}]})
    wait_until(lambda: c.client.get_job(second.id).counts.running == 1 and c.client.get_job(first.id).counts.running
               == 1, 30, "both running on p1")
    olga = sign_in(server, c.client.create_token("operator", user="olga").secret)
    quiet = get(server, "/continuations?plan=p1", cookie=olga).body
    assert re.findall(r'<a href="/jobs/(\d+)">', quiet.split('id="plan"', 1)[1]) == [first.id, second.id]
    at_end = get(server, f"/continuations?plan=p1&at={PERIOD_END.isoformat()}T12:00%2B00:00", cookie=olga).body
    plan = at_end.split('id="plan"', 1)[1]
    assert re.findall(r'<a href="/jobs/(\d+)">', plan) == [second.id, first.id]
    assert '<td>0 <span class="rule">(end_of_period)</span></td>' in plan and "would wait" in plan
    c.agents["p1"].kill()
    c.add_agent("p2", slots=2)
    def on_p2(j) -> bool:
        (task,) = c.client.list_tasks(j.id)
        return task.state == RUNNING and task.provider_id == "p2"

    wait_until(lambda: on_p2(first) and on_p2(second), 60, "both continued on p2")
    page = get(server, "/continuations", cookie=olga).body
    (section,) = re.findall(r'<section class="continuation".*?</section>', page)
    assert ": p1 at " in section and re.findall(r'<a href="/jobs/(\d+)">', section) == [first.id, second.id]
    assert section.count("<td>p2</td>") == 2
    gate.touch()
    for j in (first, second):
        c.client.wait_job(j.id, timeout=30)


def test_each_user_sees_statuses_through_their_own_policy(sqlite_cluster):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    job = c.client.submit_job({"name": "broke", "tasks": [{"name": "t", "command": ["sh", "-c", "exit 3"]}]})
    c.client.wait_job(job.id, timeout=30)
    secret = c.client.create_token("viewer", user="alice").secret
    with Client.connect(c.server.address, token=secret, ca=c.server.ca) as alice:
        alice.set_policy("user", "alice", {"rules": [
            {"environment": "jobplane", "when": {"state": "FAILED"}, "status": "UNKNOWN"}]})
    mine, admins = sign_in(c.server, secret), sign_in(c.server, c.server.token)
    facts = r'<dt>status</dt><dd><span class="status s-[a-z_]+">([A-Z_]+)</span>'
    assert re.findall(facts, get(c.server, f"/jobs/{job.id}", cookie=mine).body) == ["UNKNOWN"]
    assert re.findall(facts, get(c.server, f"/jobs/{job.id}", cookie=admins).body) == ["FAILURE"]
