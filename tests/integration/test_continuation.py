"""Continuation with real agents and real kills: priority order, standby first then
promotion, resuming from checkpoints, drain, and the what-if plan."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from contextlib import closing
from datetime import date, datetime, time, timedelta, timezone

import pytest

from support import pid_alive, wait_until

ACTIVE, STANDBY, LOST = 1, 4, 3
SUCCEEDED = 3
TASK_RUNNING = 4

# Sums 1..10, checkpointing after each item; the first attempt stops after item STOP and
# waits (as if its machine froze there). Every processed item is logged, to count them.
SUM_TASK = textwrap.dedent("""
    import os, sys, time
    from jobplane.agent import checkpoint
    log, stop = sys.argv[1], int(sys.argv[2])
    state = checkpoint.load({"i": 0, "total": 0})
    print("start at", state["i"] + 1, flush=True)
    for i in range(state["i"] + 1, 11):
        with open(log, "a") as f:
            f.write(f"{os.environ['JOBPLANE_JOB_ID']}:{i}\\n")
        state = {"i": i, "total": state["total"] + i}
        checkpoint.save(state)
        if os.environ["JOBPLANE_ATTEMPT"] == "1" and i == stop:
            with open(log + ".pids", "a") as f:
                f.write(f"{os.getpid()}\\n")
            time.sleep(300)
    print("total", state["total"], flush=True)
""")


@pytest.fixture
def sum_task(tmp_path):
    script = tmp_path / "sum_task.py"
    script.write_text(SUM_TASK)
    log = tmp_path / "items.log"
    yield lambda stop: [sys.executable, str(script), str(log), str(stop)], log
    pids = log.with_name("items.log.pids")
    stranded = [int(line) for line in (pids.read_text().split() if pids.exists() else ())]
    alive = [pid for pid in stranded if pid_alive(pid)]
    for pid in alive:  # only after noting them: a first attempt must not outlive its agent
        os.kill(pid, signal.SIGKILL)
    assert alive == [], "first attempts of lost or drained providers outlived them"


def job(name, command, priority, rules=()):
    return {"name": name, "continuation_priority": priority, "continuation_rules": list(rules),
            "tasks": [{"name": "sum", "command": command}]}


def only_task(cluster, job_id):
    (task,) = list(cluster.client.list_tasks(job_id))
    return task


def checkpoint_of(cluster, job_id):
    text = only_task(cluster, job_id).checkpoint_json
    return json.loads(text) if text else None


def running_on(cluster, job_id, provider):
    task = only_task(cluster, job_id)
    return task.state == TASK_RUNNING and task.provider_id == provider


def state_of(cluster, name):
    return next((p.state for p in cluster.client.list_providers() if p.id == name), None)


def items(log):
    return sorted(log.read_text().split())


def test_a_killed_providers_task_finishes_elsewhere_from_its_checkpoint(cluster, sum_task):
    command, log = sum_task
    cluster.add_agent("a", slots=1)
    submitted = cluster.client.submit_job(job("sum", command(5), 1))
    wait_until(lambda: (checkpoint_of(cluster, submitted.id) or {}).get("i") == 5, 30,
               "the checkpoint after item 5 to reach the server")
    cluster.add_agent("b", slots=1)
    cluster.agents["a"].kill()
    assert cluster.client.wait_job(submitted.id, timeout=60).state == SUCCEEDED
    task = only_task(cluster, submitted.id)
    assert task.provider_id == "b" and task.stdout_tail == "start at 6\ntotal 55\n"
    assert task.attempts[1].resumed_from_json == task.attempts[0].checkpoint_json
    assert json.loads(task.attempts[1].resumed_from_json) == {"i": 5, "total": 15}
    assert items(log) == sorted(f"{submitted.id}:{i}" for i in range(1, 11)), "each item processed once"
    (continuation,) = list(cluster.client.list_continuations())
    (moved,) = continuation.tasks
    assert (moved.to_provider_id, json.loads(moved.checkpoint_json)) == ("b", {"i": 5, "total": 15})
    assert moved.seconds_to_restart > 0


def test_drain_continues_the_task_elsewhere_from_its_checkpoint(cluster, sum_task):
    command, log = sum_task
    cluster.add_agent("a", slots=1)
    submitted = cluster.client.submit_job(job("sum", command(3), 1))
    wait_until(lambda: (checkpoint_of(cluster, submitted.id) or {}).get("i") == 3, 30, "the checkpoint after item 3")
    cluster.add_agent("b", slots=1)
    cluster.client.drain_provider("a")
    assert cluster.client.wait_job(submitted.id, timeout=60).state == SUCCEEDED
    task = only_task(cluster, submitted.id)
    assert task.provider_id == "b" and task.stdout_tail == "start at 4\ntotal 55\n"
    wait_until(lambda: cluster.client.get_provider("a").state == 6, 30, "a to be DRAINED")


def _day(days_from_today: int) -> date:
    day = datetime.now(timezone.utc).date() + timedelta(days=days_from_today)
    return day + timedelta(days=1) if (day.month, day.day) == (2, 29) else day  # --period-end takes MM-DD


def _quiet_day() -> date:
    """A day that is neither a month's last nor the period end below: base priorities apply."""
    day = _day(40)
    return day + timedelta(days=1) if (day + timedelta(days=1)).month != day.month else day


# The scenario's dates are fixed relative to today, so it reads the same on every day of the year
# (the failure happens today: the period end must not be today, as 30 September once was).
PERIOD_END = _day(100)


@pytest.mark.server_args("--period-end", PERIOD_END.strftime("%m-%d"), "--timezone", "UTC")
def test_reference_scenario_standby_first_in_priority_order_then_promoted(cluster, sum_task, tmp_path):
    """Two active providers with 2 slots, a standby with 1; jobs 1 and 2 on p1, 3 and 4 on p2.
    Killing p1 continues job 1 on the standby first; job 2 waits until job 1 is done there,
    then resumes from its checkpoint; then the standby is promoted."""
    command, log = sum_task
    hold = tmp_path / "hold"
    held = ["sh", "-c", f"while [ ! -e {hold} ]; do sleep 0.05; done"]
    cluster.add_agent("p1", slots=2)
    job1 = cluster.client.submit_job(job("job1", command(2), 4, [{"kind": "end_of_month", "priority": 2}]))
    job2 = cluster.client.submit_job(job("job2", command(2), 5, [{"kind": "end_of_period", "priority": 0}]))
    for j in (job1, job2):
        wait_until(lambda: (checkpoint_of(cluster, j.id) or {}).get("i") == 2, 30, f"{j.spec.name} at its checkpoint")
    cluster.add_agent("p2", slots=2)
    job3 = cluster.client.submit_job(job("job3", held, 6))
    job4 = cluster.client.submit_job(job("job4", held, 7))
    for j in (job3, job4):
        wait_until(lambda: running_on(cluster, j.id, "p2"), 30, f"{j.spec.name} running on p2")
    cluster.add_agent("s", slots=1, extra=["--standby"], wait=False)
    wait_until(lambda: state_of(cluster, "s") == STANDBY, 20, "s to stand by")

    # A quiet day, neither a month's end nor the period end: jobs 1, 2 by base priority.
    quiet = datetime.combine(_quiet_day(), time(12), tzinfo=timezone.utc).timestamp()
    plan = cluster.client.plan_continuation("p1", at=quiet)
    assert [(t.job_id, t.to_provider_id, t.effective_priority) for t in plan.tasks] == [
        (job1.id, "s", 4), (job2.id, "", 5)]
    period_end = datetime.combine(PERIOD_END, time(12), tzinfo=timezone.utc).timestamp()
    assert [t.job_id for t in cluster.client.plan_continuation("p1", at=period_end).tasks] == [job2.id, job1.id]
    assert cluster.client.plan_continuation("p1", at=period_end).tasks[0].rule == "end_of_period"

    cluster.agents["p1"].kill()
    for j in (job1, job2):
        assert cluster.client.wait_job(j.id, timeout=60).state == SUCCEEDED
    (continuation,) = list(cluster.client.list_continuations())
    assert [(t.job_id, t.position, t.to_provider_id) for t in continuation.tasks] == [
        (job1.id, 1, "s"), (job2.id, 2, "s")], "the plan is what the failure did"
    first, second = only_task(cluster, job1.id), only_task(cluster, job2.id)
    assert second.attempts[1].assign_time.ToNanoseconds() >= first.attempts[1].end_time.ToNanoseconds()
    assert second.stdout_tail == "start at 3\ntotal 55\n"
    wait_until(lambda: cluster.client.get_provider("s").state == ACTIVE, 30, "the standby to be promoted")
    first_events(cluster.client.watch(timeout=10), 1,
                 lambda e: e.provider_id == "s" and e.message == "promoted: no continuation left to start")
    failover = first_events(cluster.client.watch_continuations(timeout=10), 2, lambda e: bool(e.task_id))
    assert [(e.job_id, e.provider_id) for e in failover] == [(job1.id, "s"), (job2.id, "s")]
    hold.touch()


def first_events(stream, n, wanted):
    """The first `n` events the stream replays (or streams) that are `wanted`."""
    found = []
    with closing(stream) as events:
        for event in events:
            if wanted(event):
                found.append(event)
                if len(found) == n:
                    return found
    raise AssertionError(f"the stream ended after {len(found)} of {n} wanted events")
