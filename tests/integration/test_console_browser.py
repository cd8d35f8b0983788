"""The console in a real headless browser (Debian's chromium, driven by Playwright): sign in,
watch a job move to SUCCESS without reloading, filter, and a submitter's view. Skips where
chromium or Playwright is missing, but fails under CI=true (.ci/run installs both)."""

from __future__ import annotations

import pytest

from support import wait_until
from support_browser import browser, signed_in  # noqa: F401 (a fixture)
from support_http import HTTP, http_address

pytestmark = pytest.mark.server_args(*HTTP)


def test_a_job_moves_to_success_on_its_page_without_a_reload(sqlite_cluster, browser, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    release = tmp_path / "go"
    job = c.client.submit_job({"name": "watched", "tasks": [
        {"name": "t", "command": ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.05; done"]}]})
    page = signed_in(browser, c.server, c.server.token)
    assert "admin (admin)" in page.inner_text("header")
    assert page.evaluate("document.cookie") == ""  # the token is out of the page's reach (HttpOnly)
    page.goto(f"http://{http_address(c.server)}/jobs/{job.id}")
    page.evaluate("window.notReloaded = true")
    wait_until(lambda: c.client.get_job(job.id).status == 1, 30, "the job running")  # NORMALIZED_STATUS_RUNNING
    page.wait_for_selector("main .facts .status.s-running")  # shown live, if it was not already
    release.touch()
    page.wait_for_selector("main .facts .status.s-success")
    assert page.evaluate("window.notReloaded") is True, "updated in place, not by reloading"
    assert "1 success of 1" in page.inner_text("main .bar")
    assert "SUCCESS" in page.inner_text("#events")  # the live event log


def test_filtering_and_a_submitters_view(sqlite_cluster, browser):
    c = sqlite_cluster
    c.add_agent("a", slots=2)
    done = c.client.submit_job({"name": "fine", "tasks": [{"name": "t", "command": ["true"]}]})
    broke = c.client.submit_job({"name": "broken", "tasks": [{"name": "t", "command": ["false"]}]})
    for job in (done, broke):
        c.client.wait_job(job.id, timeout=30)
    admin = signed_in(browser, c.server, c.server.token)
    assert "broken" in admin.inner_text("main table.jobs")  # needs attention
    admin.click("a.tile.s-failure")
    admin.wait_for_url("**/jobs?filter=status%3DFAILURE")
    names = admin.inner_text("main table.jobs")
    assert "broken" in names and "fine" not in names
    admin.fill("input[name=filter]", "status=BOGUS")
    admin.click("button:has-text('Filter')")
    assert "is not a status" in admin.inner_text(".error")
    eve = signed_in(browser, c.server, c.client.create_token("submitter", user="eve").secret)
    assert "0 jobs" in eve.inner_text("main") and "broken" not in eve.inner_text("main")


def test_an_operator_cancels_from_the_job_page_and_a_viewer_has_no_button(sqlite_cluster, browser):
    c = sqlite_cluster
    job = c.client.submit_job({"name": "unwanted", "wait_for_providers": True,
                               "tasks": [{"name": "t", "command": ["true"]}]})
    viewer = signed_in(browser, c.server, c.client.create_token("viewer", user="vic").secret)
    viewer.goto(f"http://{http_address(c.server)}/jobs/{job.id}")
    assert "unwanted" in viewer.inner_text("h1") and viewer.query_selector("button.cancel") is None
    operator = signed_in(browser, c.server, c.client.create_token("operator", user="olga").secret)
    operator.goto(f"http://{http_address(c.server)}/jobs/{job.id}")
    operator.fill(".actions input[name=reason]", "not needed")
    operator.click("button.cancel")
    operator.wait_for_selector("main .facts .status.s-cancel")
    assert c.client.get_job(job.id).state == 5  # JOB_STATE_CANCELLED
    viewer.wait_for_selector("main .facts .status.s-cancel")  # the viewer's page follows, live
