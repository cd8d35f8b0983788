"""The SDK as a Python program uses it, against a real server and agent: a watch of one job
ends with the job, `wait` returns the final job, `async with AsyncClient.connect()` works,
the helper properties answer the common questions, and every README SDK example runs as written."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from jobplane.client import AsyncClient
from jobplane.v1 import event_pb2

README = Path(__file__).resolve().parents[2] / "README.md"
ECHO = {"name": "say", "command": ["sh", "-c", "echo hello; echo oops >&2"]}


@pytest.fixture
def one_agent(sqlite_cluster):
    sqlite_cluster.add_agent("a")
    return sqlite_cluster


def test_a_watch_of_one_job_ends_after_its_end_event(one_agent):
    client = one_agent.client
    job = client.submit_job({"name": "w", "tasks": [ECHO]})
    with closing(client.watch(job.id, timeout=60)) as events:
        seen = list(events)  # would block until the timeout (DeadlineExceeded) if it did not end
    assert seen[-1].kind == event_pb2.EVENT_KIND_JOB and seen[-1].raw_status == "SUCCEEDED"
    assert [e.id for e in seen] == sorted(e.id for e in seen)
    # Watching a job that has ended shows its history and ends too.
    assert [e.id for e in client.watch(job.id, timeout=60)] == [e.id for e in seen]


def test_wait_returns_the_final_job_and_the_helpers_answer_the_common_questions(one_agent):
    client = one_agent.client
    good = client.wait(client.submit_job({"name": "good", "tasks": [ECHO]}).id, timeout=60)
    assert (good.finished, good.succeeded, good.failed) == (True, True, False)
    assert (good.status_name, good.state_name) == ("SUCCESS", "SUCCEEDED")
    assert good.counts.done == good.counts.total == 1
    assert good.counts.as_dict() == {"WAITING": 0, "RUNNING": 0, "SUCCESS": 1, "FAILURE": 0, "CANCEL": 0}
    (task,) = client.list_tasks(good.id)
    assert (task.output, task.errors, task.succeeded, task.result) == ("hello\n", "oops\n", True, None)

    bad = client.wait(client.submit_job({"name": "bad", "tasks": [{"name": "t", "command": ["false"]}]}).id,
                      timeout=60)
    assert (bad.finished, bad.succeeded, bad.failed, bad.status_name) == (True, False, True, "FAILURE")
    (task,) = client.list_tasks(bad.id)
    assert (task.failed, task.status_name, task.exit_code) == (True, "FAILURE", 1)


def test_the_async_client_enters_watches_to_the_end_and_waits(one_agent):
    server = one_agent.server

    async def main():
        async with AsyncClient.connect(server.address, token=server.token, ca=server.ca) as client:
            job = await client.submit_job({"name": "a", "tasks": [{"name": "t", "python": "json:loads",
                                                                   "args": ["[1, 2]"]}]})
            kinds = [event.kind async for event in client.watch(job.id, timeout=60)]
            final = await client.wait(job.id)
            tasks = [task async for task in client.list_tasks(job.id)]
        return kinds, final, tasks

    kinds, final, (task,) = asyncio.run(main())
    assert kinds[-1] == event_pb2.EVENT_KIND_JOB and final.succeeded
    assert task.result == [1, 2]


def readme_sdk_examples() -> list[str]:
    section = README.read_text().split("\n## Python SDK\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_has_sdk_examples_for_both_clients():
    examples = readme_sdk_examples()
    assert any("Client.connect" in e for e in examples) and any("AsyncClient.connect" in e for e in examples)


@pytest.mark.parametrize("index", range(len(readme_sdk_examples())))
def test_every_readme_sdk_example_runs_as_written(one_agent, index):
    example = readme_sdk_examples()[index]
    server = one_agent.server
    env = {**os.environ, "JOBPLANE_SERVER": server.address, **server.env()}
    run = subprocess.run([sys.executable, "-c", example], cwd=README.parent, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    # What the comments say it prints is what it prints.
    for printed in re.findall(r"# (say SUCCESS .*|True \[1, 2, 3\] 3 no)$", example, re.M):
        assert printed in run.stdout.splitlines(), run.stdout
