"""A suspend that reaches a task the server still shows ASSIGNED (its start report on its way, or
its agent about to start it) pauses it as any running task, instead of stopping and requeuing it:
the task's process is stopped in place (state T) and goes on where it was on release, started
once. The race is made certain with real parts: an agent process stopped (SIGSTOP) while the
assignment and the hold reach it, or an agent whose reports a proxy holds back while the
server's messages go through. Judged by the process table and the files the task appends to."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support import AgentProc, TcpProxy, wait_until
from test_suspend import counted, heartbeats_later, let_end, lines, state_of, ticking

ON_HOLD, SUCCEEDED = 7, 3
TASK_ASSIGNED, TASK_RUNNING, TASK_QUEUED = 3, 4, 2
# The agent is silent while it is stopped or its messages wait in the proxy: the server waits 10
# heartbeats before it suspects it, time enough to hold the task on a loaded machine (a closed
# stream is still noticed at once).
PATIENT = ("--heartbeat-tolerance", "10")


def process_of(script: Path) -> int:
    """The pid of the process running `script` (the process table), else 0."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(script).encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    return 0


def the_task(client, job_id: str):
    (task,) = client.list_tasks(job_id)
    return task


def started_and_held(client, job_id: str) -> bool:
    """The server has the task's start report, and shows it held."""
    task = the_task(client, job_id)
    return task.state == TASK_RUNNING and task.status == ON_HOLD


@pytest.mark.server_args(*PATIENT)
def test_a_task_held_while_its_agent_is_about_to_start_it_is_paused_as_it_starts(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    agent = c.add_agent("a", slots=1)
    command, ticks, starts, _ = ticking(tmp_path, 10)  # once let end, well within its timeout
    agent.signal(signal.SIGSTOP)  # the assignment, then the hold, wait in its connection
    try:
        job = c.client.submit_job({"name": "long", "tasks": [{"name": "t", "command": command, "timeout": 8}]})
        wait_until(lambda: the_task(c.client, job.id).state == TASK_ASSIGNED, 20, "the task to be assigned")
        held = c.client.hold_job(job.id, reason="db maintenance", mode="suspend")
        assert "db maintenance" in held.hold and the_task(c.client, job.id).status == ON_HOLD
    finally:
        agent.signal(signal.SIGCONT)
    pid = wait_until(lambda: process_of(tmp_path / "ticking.py"), 20, "the task's process to start")
    wait_until(lambda: state_of(pid) == "T", 30, "the task's process to be stopped (T) as it starts")
    wait_until(lambda: started_and_held(c.client, job.id), 20, "the server to know it started, held")
    let_end(ticks)  # a process that still ran would now go on to its end
    written = len(lines(ticks))
    heartbeats_later(c.client, "a", 9)  # longer than its 8 s timeout, which waits while it is paused
    assert len(lines(ticks)) == written and state_of(pid) == "T"
    task = the_task(c.client, job.id)
    assert task.status == ON_HOLD and "db maintenance" in task.reason
    c.client.release_job(job.id)
    wait_until(lambda: state_of(pid) != "T", 30, "the task's process to go on")
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    assert counted(ticks, 10)  # every number once: nothing lost, nothing twice
    assert lines(starts) == ["start", "0"]  # started once, never again
    assert the_task(c.client, job.id).attempt == 1


@pytest.mark.server_args(*PATIENT)
def test_a_task_held_and_released_before_its_agent_starts_it_runs_as_usual(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    agent = c.add_agent("a", slots=1)
    command, ticks, starts, _ = ticking(tmp_path, 10)
    let_end(ticks)
    agent.signal(signal.SIGSTOP)  # the assignment, the hold and the release reach it together
    try:
        job = c.client.submit_job({"name": "quick", "tasks": [{"name": "t", "command": command}]})
        wait_until(lambda: the_task(c.client, job.id).state == TASK_ASSIGNED, 20, "the task to be assigned")
        c.client.hold_job(job.id, reason="oops", mode="suspend")
        c.client.release_job(job.id)
    finally:
        agent.signal(signal.SIGCONT)
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED  # never paused
    assert counted(ticks, 10) and lines(starts) == ["start", "0"]
    assert the_task(c.client, job.id).attempt == 1


@contextmanager
def proxied(tmp_path: Path, sqlite_url: str) -> Iterator[tuple]:
    """A cluster whose agent "a" reaches the server through a TcpProxy; (cluster, proxy), both
    closed at the end."""
    from conftest import Cluster

    c = Cluster(tmp_path, sqlite_url)
    proxy = None
    try:
        # The proxy carries plaintext: with TLS the agent's stream would go to its own mTLS port.
        c.start_server(grace=5.0, insecure=True, extra=list(PATIENT))  # 5 s: a new agent process starts within it
        proxy = TcpProxy(c.server.address)
        c.agents["a"] = AgentProc(tmp_path, c.server, "a", slots=1, address=proxy.address)
        c.wait_active("a")
        yield c, proxy
    finally:
        if proxy is not None:
            proxy.close()
        c.close()


def held_unheard(c, proxy: TcpProxy, tmp_path: Path, count: int, reason: str) -> tuple[str, Path, Path, int]:
    """A ticking task that runs at agent "a" while its start report waits in the proxy, held
    (--suspend) while the server sees it assigned, and stopped in place (T) there; (job id,
    ticks, starts, pid). The proxy still holds the agent's reports back."""
    command, ticks, starts, pidfile = ticking(tmp_path, count)
    proxy.hold_requests()  # the agent hears the server; the server hears nothing from it
    job = c.client.submit_job({"name": "long", "tasks": [{"name": "t", "command": command}]})
    wait_until(lambda: len(lines(ticks)) >= 2, 20, "the task to be running at its agent")
    assert the_task(c.client, job.id).state == TASK_ASSIGNED  # its start report waits in the proxy
    c.client.hold_job(job.id, reason=reason, mode="suspend")
    pid = int(pidfile.read_text())
    wait_until(lambda: state_of(pid) == "T", 30, "the task's process to be stopped (T)")
    return job.id, ticks, starts, pid


def stays_paused_then_finishes(c, job_id: str, ticks: Path, starts: Path, pid: int, count: int) -> None:
    """Held, the task's process stays stopped and appends nothing; released, it goes on where it
    was to its end, started once, in its first attempt."""
    wait_until(lambda: started_and_held(c.client, job_id), 20, "the server to know it started, held")
    let_end(ticks)  # a process that still ran would now go on to its end
    written = len(lines(ticks))
    heartbeats_later(c.client, "a", 2)
    assert len(lines(ticks)) == written and state_of(pid) == "T"
    c.client.release_job(job_id)
    assert c.client.wait_job(job_id, timeout=30).state == SUCCEEDED
    assert counted(ticks, count) and lines(starts) == ["start", "0"]  # nothing lost, started once
    assert the_task(c.client, job_id).attempt == 1


def test_a_task_held_while_its_start_report_is_on_its_way_is_paused_not_requeued(tmp_path, sqlite_url):
    with proxied(tmp_path, sqlite_url) as (c, proxy):
        try:
            job_id, ticks, starts, pid = held_unheard(c, proxy, tmp_path, 20, "overnight")
        finally:
            proxy.let_requests_through()
        stays_paused_then_finishes(c, job_id, ticks, starts, pid, 20)


def test_a_task_held_before_its_start_was_heard_stays_paused_across_a_reconnect(tmp_path, sqlite_url):
    with proxied(tmp_path, sqlite_url) as (c, proxy):
        try:
            job_id, ticks, starts, pid = held_unheard(c, proxy, tmp_path, 20, "overnight")
            proxy.cut()  # the start report is lost with the connection; the agent connects again
        finally:
            proxy.let_requests_through()
        stays_paused_then_finishes(c, job_id, ticks, starts, pid, 20)


def test_a_task_held_before_its_start_was_heard_stays_paused_while_a_restarted_agent_adopts_it(tmp_path, sqlite_url):
    with proxied(tmp_path, sqlite_url) as (c, proxy):
        try:
            job_id, ticks, starts, pid = held_unheard(c, proxy, tmp_path, 20, "overnight")
            crashed = c.agents["a"]
            crashed.kill()
            crashed.stop()
            proxy.cut()  # its start report dies with it
        finally:
            proxy.let_requests_through()
        assert the_task(c.client, job_id).state == TASK_ASSIGNED
        c.add_agent("a", slots=1)  # the same name and state directory: it adopts the attempt
        stays_paused_then_finishes(c, job_id, ticks, starts, pid, 20)


@pytest.mark.server_args(*PATIENT)
def test_a_held_task_whose_agent_is_lost_before_starting_it_waits_held_and_runs_elsewhere_on_release(
        sqlite_cluster, tmp_path):
    c = sqlite_cluster
    lost = c.add_agent("a", slots=1)
    command, ticks, starts, _ = ticking(tmp_path, 10)
    lost.signal(signal.SIGSTOP)
    job = c.client.submit_job({"name": "long", "tasks": [{"name": "t", "command": command}]})
    wait_until(lambda: the_task(c.client, job.id).state == TASK_ASSIGNED, 20, "the task to be assigned to a")
    c.client.hold_job(job.id, reason="db maintenance", mode="suspend")
    c.add_agent("b", slots=1)
    lost.kill()  # never started it
    wait_until(lambda: the_task(c.client, job.id).state == TASK_QUEUED, 30, "the task to be handed on from a")
    task = the_task(c.client, job.id)
    assert task.status == ON_HOLD and "db maintenance" in task.reason
    heartbeats_later(c.client, "b", 2)  # b has a free slot all along: the hold keeps the task from it
    assert not process_of(tmp_path / "ticking.py") and not lines(starts)
    assert the_task(c.client, job.id).state == TASK_QUEUED
    let_end(ticks)
    c.client.release_job(job.id)
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    assert counted(ticks, 10) and lines(starts) == ["start", "0"]
    task = the_task(c.client, job.id)
    assert task.provider_id == "b" and task.attempt == 2
