"""The console's live pages in a real headless browser (Debian's chromium, driven by Playwright):
a task's output growing while it prints, suspending and resuming a running job from its page, a
viewer without buttons, the providers page following an agent killed with kill -9, a task page
gaining its second attempt, and saving and deleting a view. Nothing is reloaded by the test:
the pages follow the event stream. Skips without chromium or Playwright, fails so under CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobplane.client import Client
from support import wait_until
from support_browser import browser, signed_in  # noqa: F401 (a fixture)
from support_http import HTTP, http_address

pytestmark = pytest.mark.server_args(*HTTP)
RUNNING = 4  # TASK_STATE_RUNNING
SUCCEEDED = 5  # TASK_STATE_SUCCEEDED


def url(server, path: str) -> str:
    return f"http://{http_address(server)}{path}"


def state_of(pid: int) -> str:
    """The process's state letter in /proc/PID/stat (T: stopped); "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def test_a_tasks_output_grows_on_its_page_while_it_prints(sqlite_cluster, browser, tmp_path):
    from playwright.sync_api import expect  # (after the fixture: Playwright may be missing)

    c = sqlite_cluster
    c.add_agent("a", slots=1)
    gate = tmp_path / "gate"
    script = f"echo 'first <b>line</b>'; while [ ! -e {gate} ]; do sleep 0.05; done; echo second line"
    job = c.client.submit_job({"name": "printer", "tasks": [{"name": "t", "command": ["sh", "-c", script]}]})
    (task,) = c.client.list_tasks(job.id)
    wait_until(lambda: c.client.get_task(task.id).state == RUNNING, 30, "the task running")
    page = signed_in(browser, c.server, c.server.token)
    page.goto(url(c.server, f"/tasks/{task.id}/output"))
    expect(page.locator("#output")).to_contain_text("first <b>line</b>", timeout=20_000)
    assert page.query_selector("#output b") is None  # text, not markup
    assert "second" not in page.inner_text("#output")
    gate.touch()
    expect(page.locator("#output")).to_contain_text("second line", timeout=20_000)
    expect(page.locator("#output-end")).to_have_text("the attempt ended", timeout=20_000)
    assert page.inner_text("#output") == "first <b>line</b>\nsecond line\n"


def test_an_operator_suspends_and_resumes_a_running_job_and_a_viewer_cannot(sqlite_cluster, browser, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    gate, pidfile = tmp_path / "gate", tmp_path / "pid"
    script = f"echo $$ > {pidfile}; while [ ! -e {gate} ]; do sleep 0.05; done"
    job = c.client.submit_job({"name": "long", "tasks": [{"name": "t", "command": ["sh", "-c", script]}]})
    (task,) = c.client.list_tasks(job.id)
    # RUNNING may come before the shell has written its pid (or while the file is still empty).
    wait_until(lambda: c.client.get_task(task.id).state == RUNNING and pidfile.exists() and pidfile.read_text().strip(),
               30, "it runs")
    pid = int(pidfile.read_text())
    viewer = signed_in(browser, c.server, c.client.create_token("viewer", user="vic").secret)
    viewer.goto(url(c.server, f"/jobs/{job.id}"))
    assert viewer.query_selector_all("main .actions button") == []
    forged = viewer.request.post(url(c.server, f"/jobs/{job.id}/hold"), form={"mode": "suspend"})
    assert forged.status == 403 and c.client.get_job(job.id).hold == "" and state_of(pid) != "T"
    operator = signed_in(browser, c.server, c.client.create_token("operator", user="olga").secret)
    operator.goto(url(c.server, f"/jobs/{job.id}"))
    assert operator.query_selector("button.hold") is None  # a plain hold would hold nothing: all runs
    operator.fill(".actions form[action$='/hold'] input[name=reason]", "disk swap")
    operator.click("button.suspend")
    operator.wait_for_selector("main table.tasks .status.s-on_hold")
    wait_until(lambda: state_of(pid) == "T", 30, "the task's process stopped in place")
    viewer.wait_for_selector("main table.tasks .status.s-on_hold")  # the viewer's page follows, live
    operator.click("button.release:has-text('Resume')")
    operator.wait_for_selector("main table.tasks .status.s-running")
    # The page shows what the server decided; the agent's keeper continues the process after it.
    wait_until(lambda: state_of(pid) in ("S", "R"), 30, "the task's process to go on")
    gate.touch()
    operator.wait_for_selector("main .facts .status.s-success")
    assert c.client.get_task(task.id).attempt == 1  # continued in place, not run again


def test_the_providers_page_shows_an_agent_lost_after_kill_9(sqlite_cluster, browser):
    c = sqlite_cluster
    agent = c.add_agent("doomed", slots=3, labels={"zone": "eu"})
    page = signed_in(browser, c.server, c.server.token)
    page.goto(url(c.server, "/providers"))
    page.evaluate("window.notReloaded = true")
    row = "#provider-doomed"
    assert "ACTIVE" in page.inner_text(row) and "0/3" in page.inner_text(row) and "zone=eu" in page.inner_text(row)
    agent.kill()
    page.wait_for_selector(f"{row} .pstate.p-lost", timeout=60_000)
    assert page.evaluate("window.notReloaded") is True


def test_the_task_page_gains_a_second_attempt_after_a_retry(sqlite_cluster, browser, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    gate, tried = tmp_path / "gate", tmp_path / "tried"
    script = (f"if [ ! -e {tried} ]; then touch {tried}; while [ ! -e {gate} ]; do sleep 0.05; done; exit 3; fi; "
              "echo fine")
    job = c.client.submit_job({"name": "flaky", "tasks": [
        {"name": "t", "max_attempts": 2, "retry_backoff": 0.1, "command": ["sh", "-c", script]}]})
    (task,) = c.client.list_tasks(job.id)
    wait_until(lambda: c.client.get_task(task.id).state == RUNNING, 30, "the first attempt running")
    page = signed_in(browser, c.server, c.server.token)
    page.goto(url(c.server, f"/tasks/{task.id}"))
    assert len(page.query_selector_all("tr.attempt")) == 1
    gate.touch()
    page.wait_for_selector("main .facts .status.s-success")
    attempts = page.query_selector_all("tr.attempt")
    assert len(attempts) == 2
    assert "FAILURE" in attempts[0].inner_text() and "\t3\t" in attempts[0].inner_text()
    assert "SUCCESS" in attempts[1].inner_text()


def test_saving_and_deleting_a_view(sqlite_cluster, browser):
    c = sqlite_cluster
    c.add_agent("a", slots=2)
    for name, command in (("fine", "true"), ("broken", "false")):
        job = c.client.submit_job({"name": name, "tasks": [{"name": "t", "command": [command]}]})
        c.client.wait_job(job.id, timeout=30)
    secret = c.client.create_token("viewer", user="vic").secret
    page = signed_in(browser, c.server, secret)
    page.goto(url(c.server, "/jobs"))
    page.fill("input[name=filter]", "status=FAILURE")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**/jobs?filter=status%3DFAILURE*")
    page.fill(".save-view input[name=name]", "broken-ones")
    page.click("button.save-view")
    page.wait_for_url("**/jobs?view=broken-ones")
    assert "broken" in page.inner_text("main table.jobs") and "fine" not in page.inner_text("main table.jobs")
    assert page.inner_text("#views").strip().startswith("broken-ones")
    with Client.connect(c.server.address, token=secret, ca=c.server.ca) as vic:
        assert [(v.name, v.filter) for v in vic.list_views()] == [("broken-ones", "status=FAILURE")]
        page.click("li.view:has-text('broken-ones') button.delete-view")
        page.wait_for_url("**/jobs")
        assert page.query_selector("li.view") is None and list(vic.list_views()) == []
