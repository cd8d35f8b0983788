"""Holds and conditions reach tasks already handed to an agent but not started: tasks queued
ahead at the agent (beyond its slots) do not start once their job is held or their conditions
fail there; they come back and start once the hold or the failure is over, each exactly once.
A requeue hold of such a task does not count it as an attempt that ran.

The scene is made certain with real parts: a job of quick tasks flows through one slot of a
two-slot agent until one of its tasks (the blocker) runs until the test opens a gate, so the
tasks queued ahead behind it wait; the other slot holds a sentinel task of another job. The test
holds the job (or fails its conditions), then cancels the sentinel: its slot frees only after the
hold's message reached the agent (one stream, in order), so a task taken back too late would
start there. Judged by the log each task appends its start to."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import RunLog, recorded_command, wait_until

TASK_QUEUED, TASK_ASSIGNED, TASK_RUNNING = 2, 3, 4
JOB_SUCCEEDED, JOB_CANCELLED = 3, 5
ON_HOLD, LATE_TO_START = 7, 8
TASKS, BLOCKER = 60, 30  # the tasks before the blocker make the job known to be quick at the agent


def gated(log: Path, gate: Path, before: str = "") -> list[str]:
    """A recorded task (as recorded_command) that runs until `gate` exists."""
    line = 'echo "$1 $JOBPLANE_TASK_NAME $JOBPLANE_ATTEMPT $(date +%s.%N)" >> ' + str(log)
    wait = f"while [ ! -e {gate} ]; do sleep 0.02; done"
    return ["sh", "-c", f"{before}{line.replace('$1', 'start')}; {wait}; {line.replace('$1', 'end')}"]


def flowing(log: Path, gate: Path, blocker: list[str] | None = None, **extra) -> dict:
    tasks = [{"name": f"t{i}", "command": (blocker or gated(log, gate)) if i == BLOCKER
              else recorded_command(log, 0.01), **extra} for i in range(TASKS)]
    return {"name": "quick", "tasks": tasks}


def queued_ahead_at(client, name: str) -> bool:
    return any(p.id == name and p.queued_ahead > 0 for p in client.list_providers())


def start_sentinel(c, log: Path):
    """A task of another job in one of the agent's two slots until it is cancelled."""
    job = c.client.submit_job({"name": "sentinel", "tasks": [{"name": "s", "command": recorded_command(log, 300)}]})
    wait_until(lambda: RunLog(log).started("s") == 1, 30, "the sentinel to start")
    return job


def blocked_with_tasks_queued_behind(c, log: Path) -> None:
    """The blocker runs, and tasks of its job wait queued ahead at agent a behind it."""
    wait_until(lambda: RunLog(log).started(f"t{BLOCKER}") == 1 and queued_ahead_at(c.client, "a"), 60,
               "the blocker to start with tasks queued ahead behind it")


def cancel_sentinel(c, job) -> None:
    """Cancel the sentinel and wait until its agent has stopped it (its slot is free)."""
    c.client.cancel_job(job.id)
    wait_until(lambda: all(a.HasField("end_time") for t in c.client.list_tasks(job.id) for a in t.attempts), 30,
               "the sentinel's attempt to end")


def started_between(log: Path, since: float, until: float) -> list[str]:
    """The job's tasks (t…) that started in the interval."""
    runs = RunLog(log)
    return sorted(name for name, starts in runs.starts.items()
                  if name.startswith("t") and any(since < when < until for _, when in starts))


def nothing_of_it_assigned(client, job_id: str) -> bool:
    return all(t.state != TASK_ASSIGNED for t in client.list_tasks(job_id))


def each_ran_once(log: Path) -> list[str]:
    runs = RunLog(log)
    return [f"t{i}" for i in range(TASKS) if (runs.started(f"t{i}"), runs.runs(f"t{i}")) != (1, 1)]


@contextlib.contextmanager
def held_with_tasks_queued_behind(c, log: Path, gate: Path, **hold) -> Iterator[list]:
    """The scene: the job is held (`hold`: its mode) while its blocker runs with tasks queued
    ahead behind it, and the sentinel's slot has freed; yields the job's tasks then. After:
    nothing of the job started meanwhile, it is released, the blocker let go, and it ends with
    each task run once."""
    c.add_agent("a", slots=2)
    sentinel = start_sentinel(c, log)
    job = c.client.submit_job(flowing(log, gate))
    try:
        blocked_with_tasks_queued_behind(c, log)
        held_at = time.time()
        c.client.hold_job(job.id, reason="db maintenance", **hold)
        cancel_sentinel(c, sentinel)  # a free slot at a: what was queued there would start now
        wait_until(lambda: nothing_of_it_assigned(c.client, job.id), 30, "the job's tasks to be back or running")
        yield list(c.client.list_tasks(job.id))  # (a list: the tests read it more than once)
        released_at = time.time()
        assert started_between(log, held_at, released_at) == [], "nothing of the held job started"
        c.client.release_job(job.id)
    finally:
        gate.touch()
    assert c.client.wait_job(job.id, timeout=120).state == JOB_SUCCEEDED
    assert each_ran_once(log) == []


def test_a_plain_hold_keeps_tasks_queued_ahead_at_the_agent_from_starting(sqlite_cluster, tmp_path):
    with held_with_tasks_queued_behind(sqlite_cluster, tmp_path / "runs.log", tmp_path / "gate") as tasks:
        assert {t.name for t in tasks if t.state == TASK_RUNNING} == {f"t{BLOCKER}"}, "the blocker runs on"
        assert all(t.status == ON_HOLD for t in tasks if t.state == TASK_QUEUED)


def set_fact(path: Path, value: float) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"ok": value}))
    temporary.replace(path)


def heartbeats_later(client, provider: str, seconds: float) -> None:
    """Until the provider's heartbeats have moved its last-seen time on by `seconds`."""
    first = client.get_provider(provider).last_seen_time.ToNanoseconds()
    wait_until(lambda: client.get_provider(provider).last_seen_time.ToNanoseconds() - first >= seconds * 1e9,
               seconds + 10, f"{seconds:g}s of heartbeats")


def taken_back(client, job_id: str, why: str) -> list[str]:
    """The job's tasks that have an attempt given back unstarted for `why`."""
    return sorted(t.name for t in client.list_tasks(job_id)
                  if any("given back unstarted" in a.reason and why in a.reason for a in t.attempts))


def held_for_ok(client, job_id: str) -> bool:
    """Every queued task of the job waits ON_HOLD for its conditions."""
    return all(t.status == ON_HOLD and "ok" in t.reason for t in client.list_tasks(job_id) if t.state == TASK_QUEUED)


@pytest.mark.server_args("--heartbeat-tolerance", "10")  # a loaded machine must not make a suspect of it
def test_tasks_queued_ahead_at_an_agent_that_stops_meeting_their_conditions_do_not_start_there(
        sqlite_cluster, tmp_path):
    log, gate, facts = tmp_path / "runs.log", tmp_path / "gate", tmp_path / "facts.json"
    c = sqlite_cluster
    set_fact(facts, 1)
    c.add_agent("a", slots=2, extra=["--facts-file", str(facts), "--heartbeat", "0.1"])
    sentinel = start_sentinel(c, log)
    # The blocker itself makes the agent stop meeting the job's conditions as it starts: the
    # tasks queued ahead behind it were handed over while it met them.
    fail_them = f"printf '{{\"ok\": 0}}' > {facts}.tmp && mv {facts}.tmp {facts}; "
    job = c.client.submit_job({**flowing(log, gate, gated(log, gate, fail_them)), "conditions": ["ok>=1"]})
    unmet = "no longer meets its conditions"
    try:
        # The blocker starts with tasks queued ahead behind it, which the next heartbeat may
        # take back before the test looks: either is the scene.
        wait_until(lambda: RunLog(log).started(f"t{BLOCKER}") == 1
                   and (queued_ahead_at(c.client, "a") or taken_back(c.client, job.id, unmet)), 60,
                   "the blocker to start with tasks queued ahead behind it")
        heartbeats_later(c.client, "a", 0.3)  # the server has the agent's new facts
        failing_since = time.time()
        cancel_sentinel(c, sentinel)  # a free slot at a: what was queued there would start now
        wait_until(lambda: nothing_of_it_assigned(c.client, job.id) and held_for_ok(c.client, job.id), 30,
                   "the job's tasks to be back, waiting ON_HOLD for their conditions, or running")
        tasks = c.client.list_tasks(job.id)
        assert {t.name for t in tasks if t.state == TASK_RUNNING} == {f"t{BLOCKER}"}, "the blocker runs on"
        met_again = time.time()
        assert started_between(log, failing_since, met_again) == [], "nothing started while ok<1"
        assert taken_back(c.client, job.id, unmet), "tasks queued ahead at a were taken back"
        set_fact(facts, 1)
    finally:
        gate.touch()
    assert c.client.wait_job(job.id, timeout=120).state == JOB_SUCCEEDED
    assert each_ran_once(log) == []


def test_tasks_a_requeue_hold_took_back_before_they_started_still_become_late_to_start(sqlite_cluster, tmp_path):
    """A hold with --requeue stops what runs and what was handed over; one that never started is
    not an attempt that ran (which would never be LATE_TO_START): past its max_wait, still
    unstarted, it is late like its siblings; and none of it used up its max_attempts of 1."""
    log, gate, other_gate = tmp_path / "runs.log", tmp_path / "gate", tmp_path / "other-gate"
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    max_wait = 15  # after submit: time enough to hold and release the job before
    job = c.client.submit_job(flowing(log, gate, max_wait=max_wait, max_attempts=1))
    submitted = time.time()
    try:
        blocked_with_tasks_queued_behind(c, log)
        c.client.hold_job(job.id, reason="db maintenance", mode="requeue")
        wait_until(lambda: all(t.state in (TASK_QUEUED, 5) for t in c.client.list_tasks(job.id)), 30,
                   "the job's tasks to be queued again, held")  # (5: SUCCEEDED)
        # Another job takes the slot, so that once released the held tasks wait past their max_wait.
        c.client.submit_job({"name": "other", "tasks": [{"name": "o", "command": gated(log, other_gate)}]})
        wait_until(lambda: RunLog(log).started("o") == 1, 30, "the other job to start")
        c.client.release_job(job.id)
        assert time.time() < submitted + max_wait, "released before the max_wait passed (a very slow machine?)"
        last = f"t{TASKS - 1}"  # never handed over; its start deadline's timer is the last of the job's
        wait_until(lambda: any(t.name == last and t.status == LATE_TO_START for t in c.client.list_tasks(job.id)),
                   max_wait + 30, "the job's tasks to be late to start")
        runs = RunLog(log)
        unstarted = {t.name: t.status for t in c.client.list_tasks(job.id) if runs.started(t.name) == 0}
        assert unstarted and all(status == LATE_TO_START for status in unstarted.values()), unstarted
    finally:
        gate.touch()
        other_gate.touch()
    assert c.client.wait_job(job.id, timeout=120).state == JOB_SUCCEEDED, "no max_attempts used up"


def test_a_suspend_hold_gives_back_tasks_queued_ahead_instead_of_starting_them_to_pause(sqlite_cluster, tmp_path):
    """--suspend pauses what runs in place; a task queued ahead behind it has not started, so it
    waits unstarted (given back, queued and held) instead of taking a freed slot to be paused in."""
    c = sqlite_cluster
    with held_with_tasks_queued_behind(c, tmp_path / "runs.log", tmp_path / "gate", mode="suspend") as tasks:
        assert {t.name for t in tasks if t.state == TASK_RUNNING} == {f"t{BLOCKER}"}, "the blocker is paused in place"
        assert all(t.status == ON_HOLD for t in tasks if t.state in (TASK_QUEUED, TASK_RUNNING))
        job_id = tasks[0].job_id
        assert taken_back(c.client, job_id, "held by hand"), "tasks queued ahead at a were given back"
