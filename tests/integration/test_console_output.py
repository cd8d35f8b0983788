"""A task's live output in the web console, over real HTTP: its page, and the output itself as
server-sent events while the task runs, read with the signed-in user's rights."""

from __future__ import annotations

import json

import pytest

from support import wait_until
from support_http import HTTP, EventStream, get, sign_in

pytestmark = pytest.mark.server_args(*HTTP)
RUNNING = 4


def test_the_console_streams_a_running_tasks_output_to_its_end(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a")
    gate = tmp_path / "gate"
    script = f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo 'second ✓'"
    job = c.client.submit_job({"name": "j", "tasks": [{"name": "t", "command": ["sh", "-c", script]}]})
    (task,) = c.client.list_tasks(job.id)
    wait_until(lambda: c.client.get_task(task.id).state == RUNNING, 30, "the task to run")
    cookie = sign_in(c.server, c.server.token)
    job_page = get(c.server, f"/jobs/{job.id}", cookie=cookie).body
    assert f'href="/tasks/{task.id}/output"' in job_page
    page = get(c.server, f"/tasks/{task.id}/output", cookie=cookie)
    assert page.status == 200 and f'data-output="/tasks/{task.id}/logs?stream=stdout"' in page.body
    with EventStream(c.server, f"/tasks/{task.id}/logs?stream=stdout", cookie) as stream:
        events = iter(stream)
        first = next(events)
        assert (first["event"], json.loads(first["data"]), first["id"]) == ("output", "first\n", "6")
        assert c.client.get_task(task.id).state == RUNNING  # it waits for the gate
        gate.touch()
        rest = list(events)
    assert [(e["event"], json.loads(e["data"])) for e in rest] == [("output", "second ✓\n"),
                                                                   ("end", "the attempt ended")]


def test_another_users_task_output_is_not_found_in_the_console(sqlite_cluster):
    c = sqlite_cluster
    c.add_agent("a")
    job = c.client.submit_job({"name": "admins", "tasks": [{"name": "t", "command": ["echo", "secret"]}]})
    c.client.wait_job(job.id, timeout=60)
    (task,) = c.client.list_tasks(job.id)
    bob = sign_in(c.server, c.client.create_token("submitter", user="bob").secret)
    assert get(c.server, f"/tasks/{task.id}/logs", cookie=bob).status == 404
    assert get(c.server, f"/tasks/{task.id}/output", cookie=bob).status == 404
    assert get(c.server, f"/tasks/{task.id}/logs").status == 401
