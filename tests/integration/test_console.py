"""The web console over real HTTP against a real server and agents: signing in, the cookie,
tenancy, what a job's page and the dashboard show, and the live event stream."""

from __future__ import annotations

import json
import re

import pytest

from jobplane.client import Client
from support import wait_until
from support_http import HTTP, EventStream, get, request, sign_in

pytestmark = pytest.mark.server_args(*HTTP)


def statuses(html: str) -> list[str]:
    return re.findall(r'<span class="status s-[a-z_]+">([A-Z_]+)</span>', html)


def test_sign_in_keeps_the_token_in_an_http_only_cookie(sqlite_cluster):
    server = sqlite_cluster.server
    first = get(server, "/jobs?filter=status%3DFAILURE")
    assert first.status == 303 and first.headers["location"].startswith("/login?next=")
    bad = request(server, "POST", "/login", form={"token": "jpu_not_a_real_token"})
    assert bad.status == 401 and "Not signed in" in bad.body and "set-cookie" not in bad.headers
    join = sqlite_cluster.client.create_token("agent").secret
    refused = request(server, "POST", "/login", form={"token": join})
    assert refused.status == 401 and "join token" in refused.body
    signed = request(server, "POST", "/login", form={"token": server.token, "next": "/jobs?filter=x"})
    assert signed.status == 303 and signed.headers["location"] == "/jobs?filter=x"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and server.token in cookie
    assert request(server, "POST", "/login", form={"token": server.token, "next": "//evil.example"}
                   ).headers["location"] == "/"  # no open redirect
    page = get(server, "/", cookie=cookie.split(";")[0])
    assert page.status == 200 and "admin (admin)" in page.body
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    out = request(server, "POST", "/logout", cookie=cookie.split(";")[0])
    assert out.status == 303 and "Max-Age=0" in out.headers["set-cookie"]


def test_a_revoked_token_signs_the_user_out(sqlite_cluster):
    made = sqlite_cluster.client.create_token("viewer", user="vic")
    cookie = sign_in(sqlite_cluster.server, made.secret)
    assert get(sqlite_cluster.server, "/", cookie=cookie).status == 200
    sqlite_cluster.client.revoke_token(made.token.id)
    after = get(sqlite_cluster.server, "/", cookie=cookie)
    assert after.status == 303 and after.headers["location"].startswith("/login")
    assert "Max-Age=0" in after.headers["set-cookie"]


def test_a_submitter_sees_only_their_own_jobs(sqlite_cluster):
    c = sqlite_cluster
    server = c.server
    secrets = {name: c.client.create_token("submitter", user=name).secret for name in ("alice", "bob")}
    jobs = {}
    for name, secret in secrets.items():
        with Client.connect(server.address, token=secret, ca=server.ca) as user:
            jobs[name] = user.submit_job({"name": f"{name}-job", "wait_for_providers": True,
                                          "tasks": [{"name": "t", "command": ["true"]}]})
    alice, bob = sign_in(server, secrets["alice"]), sign_in(server, secrets["bob"])
    listed = get(server, "/jobs", cookie=alice).body
    assert "alice-job" in listed and "bob-job" not in listed
    assert '<span class="total">1 jobs</span>' in get(server, "/", cookie=alice).body
    assert get(server, f"/jobs/{jobs['bob'].id}", cookie=alice).status == 404
    assert "bob-job" in get(server, f"/jobs/{jobs['bob'].id}", cookie=bob).body
    with EventStream(server, f"/events?job={jobs['bob'].id}", alice) as stream:
        assert stream.response.status == 404
    with EventStream(server, "/events", alice) as stream:
        assert stream.response.status == 403  # every job's events: viewers and above
    assert 'data-poll="5"' in get(server, "/jobs", cookie=alice).body  # so her list polls instead
    admin = sign_in(server, server.token)
    everything = get(server, "/jobs", cookie=admin).body
    assert "alice-job" in everything and "bob-job" in everything
    for job in jobs.values():
        c.client.cancel_job(job.id)


def test_the_job_page_and_the_dashboard_show_what_happened(sqlite_cluster):
    c = sqlite_cluster
    c.add_agent("a", slots=2)
    job = c.client.submit_job({"name": "mixed", "labels": {"team": "etl"}, "tasks": [
        {"name": "good", "command": ["true"]}, {"name": "bad", "command": ["sh", "-c", "exit 3"]}]})
    c.client.wait_job(job.id, timeout=30)
    cookie = sign_in(c.server, c.server.token)
    page = get(c.server, f"/jobs/{job.id}", cookie=cookie).body
    assert f"Job {job.id} · mixed" in page and "team=etl" in page
    rows = {name: row for name, row in re.findall(r"<tr><td>\d+</td><td>(\w+)</td>(.*?)</tr>", page)}
    assert statuses(rows["good"]) == ["SUCCESS"] and statuses(rows["bad"]) == ["FAILURE"]
    assert "<td>3</td>" in rows["bad"]  # its exit code
    assert "1 success · 1 failure of 2" in page  # the progress bar's legend
    assert re.search(r'<rect class="b-success" x="0.000" width="50.000"', page)
    board = get(c.server, "/", cookie=cookie).body
    attention = board.split("Needs attention", 1)[1]
    assert f'<a href="/jobs/{job.id}">{job.id}</a>' in attention and statuses(attention) == ["FAILURE"]
    assert re.search(r'<span class="count">1</span><span class="label">FAILURE</span>', board)
    listed = get(c.server, "/jobs?filter=" + "label.team%3Detl+status%3DFAILURE", cookie=cookie).body
    assert "mixed" in listed
    assert "No jobs match" in get(c.server, "/jobs?filter=status%3DSUCCESS", cookie=cookie).body
    wrong = get(c.server, "/jobs?filter=status%3DBOGUS", cookie=cookie)
    assert wrong.status == 400 and "is not a status" in wrong.body


def test_the_event_stream_delivers_a_job_as_it_runs_and_resumes_from_last_event_id(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    release = tmp_path / "go"
    job = c.client.submit_job({"name": "live", "tasks": [
        {"name": "t", "command": ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.05; done"]}]})
    cookie = sign_in(c.server, c.server.token)
    seen = []
    with EventStream(c.server, f"/events?job={job.id}&after=0", cookie) as stream:
        assert stream.response.status == 200
        assert stream.response.getheader("content-type").startswith("text/event-stream")
        for event in stream:
            data = json.loads(event["data"])
            seen.append((int(event["id"]), data["kind"], data["status"], data.get("task_name", "")))
            if data["kind"] == "TASK" and data["status"] == "RUNNING":
                release.touch()  # it finishes only now, while we watch
            if data["kind"] == "JOB" and data["status"] == "SUCCESS":
                break
    assert ("TASK", "RUNNING", "t") in [s[1:] for s in seen] and seen[-1][1:3] == ("JOB", "SUCCESS")
    ids = [s[0] for s in seen]
    with EventStream(c.server, f"/events?job={job.id}", cookie, last_event_id=ids[1]) as stream:
        resumed = next(iter(stream))
    assert int(resumed["id"]) == ids[2]  # the one after, no gap, no repeat
    assert get(c.server, "/events").status == 401
    # A browser that went away leaves no watcher behind on the server.
    wait_until(lambda: "\njobplane_watchers 0\n" in get(c.server, "/metrics").body, 10, "the watchers gone")


def test_cancel_hold_and_release_for_roles_that_may_and_never_for_a_viewer(sqlite_cluster):
    c = sqlite_cluster
    server = c.server
    job = c.client.submit_job({"name": "waits", "wait_for_providers": True,
                               "tasks": [{"name": "t", "command": ["true"]}]})
    viewer = sign_in(server, c.client.create_token("viewer", user="vic").secret)
    page = get(server, f"/jobs/{job.id}", cookie=viewer).body
    assert "Cancel job" not in page and "Hold" not in page
    forged = request(server, "POST", f"/jobs/{job.id}/cancel", cookie=viewer, form={"reason": "no"})
    assert forged.status == 403 and "role" in forged.body  # the API's own refusal
    assert c.client.get_job(job.id).state == 1  # JOB_STATE_QUEUED: untouched
    operator = sign_in(server, c.client.create_token("operator", user="olga").secret)
    assert "Cancel job" in get(server, f"/jobs/{job.id}", cookie=operator).body
    other_site = request(server, "POST", f"/jobs/{job.id}/cancel", cookie=operator,
                         headers={"Origin": "http://evil.example"})
    assert other_site.status == 403 and c.client.get_job(job.id).state == 1
    held = request(server, "POST", f"/jobs/{job.id}/hold", cookie=operator, form={"reason": "disk swap"})
    assert held.status == 303 and held.headers["location"] == f"/jobs/{job.id}"
    assert c.client.get_job(job.id).hold == "disk swap (by olga)"
    page = get(server, f"/jobs/{job.id}", cookie=operator).body
    assert "Release" in page and "disk swap" in page and statuses(page)[0] == "ON_HOLD"
    assert request(server, "POST", f"/jobs/{job.id}/release", cookie=operator).status == 303
    assert c.client.get_job(job.id).hold == ""
    cancelled = request(server, "POST", f"/jobs/{job.id}/cancel", cookie=operator, form={"reason": "not needed"})
    assert cancelled.status == 303 and c.client.get_job(job.id).state == 5  # JOB_STATE_CANCELLED
    assert "Cancel job" not in get(server, f"/jobs/{job.id}", cookie=operator).body  # it has ended
    wait_until(lambda: ("/jobplane.v1.JobService/CancelJob", "OK") in {
        (r.method, r.code) for r in c.client.list_audit_records(filter="identity=olga")}, 10, "olga's cancel audited")
