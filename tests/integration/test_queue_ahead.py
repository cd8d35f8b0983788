"""Queue-ahead with a real server and real agents: quick tasks wait at the agent beyond its
slots, and still run one per slot, each exactly once, also when the agent holding them dies.
Judged by what the tasks did (the log each appends its start and end to)."""

from __future__ import annotations

import signal

import pytest

from support import RunLog, recorded_command, wait_until

from jobplane.server.domain.ahead import QUEUED_AHEAD

TASKS = 40


def job_of(log, n=TASKS, seconds=0.005) -> dict:
    """Tasks well under the 0.1 s that makes a job quick, even on a loaded machine."""
    return {"name": "quick", "tasks": [{"name": f"t{i}", "command": recorded_command(log, seconds)}
                                       for i in range(n)]}


def intervals_overlap(runs: RunLog, names=None) -> list[tuple[str, str]]:
    """Pairs of tasks (of `names`, or all) that ran at the same moment (on a one-slot agent: none may)."""
    spans = sorted((runs.starts[name][0][1], runs.ends[name][0][1], name) for name in names or runs.starts)
    return [(a[2], b[2]) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]


def test_quick_tasks_queued_ahead_at_a_one_slot_agent_run_one_at_a_time_each_once(sqlite_cluster, tmp_path):
    log = tmp_path / "runs.log"
    sqlite_cluster.add_agent("a", slots=1)
    job = sqlite_cluster.client.submit_job(job_of(log))
    ahead = 0
    for event in sqlite_cluster.client.watch(job.id, timeout=60):
        ahead += event.kind == 2 and event.raw_status == "ASSIGNED" and event.message == QUEUED_AHEAD
        if event.kind == 1 and event.raw_status in ("SUCCEEDED", "FAILED", "CANCELLED"):
            assert event.raw_status == "SUCCEEDED"
            break
    runs = RunLog(log)
    assert [(runs.started(f"t{i}"), runs.runs(f"t{i}")) for i in range(TASKS)] == [(1, 1)] * TASKS
    assert intervals_overlap(runs) == [], "one slot: never two tasks at once, queued ahead or not"
    assert ahead > 0, "once the job's tasks proved quick, some waited at the agent beyond its slot"


def test_tasks_queued_ahead_at_an_agent_killed_run_elsewhere_and_none_is_lost(sqlite_cluster, tmp_path):
    log = tmp_path / "runs.log"
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    job = c.client.submit_job(job_of(log, n=300))

    def queued_at_a() -> bool:
        return any(p.id == "a" and p.queued_ahead > 0 for p in c.client.list_providers())

    wait_until(queued_at_a, 30, "tasks to be queued ahead at agent a")
    c.agents["a"].kill()  # kill -9: what it held queued never started there
    c.add_agent("b", slots=2)
    done = c.client.wait_job(job.id, timeout=120)
    runs = RunLog(log)
    assert done.state == 3 and done.counts.success == 300  # SUCCEEDED
    assert [n for n in (f"t{i}" for i in range(300)) if runs.runs(n) == 0] == [], "every task ran to its end"
    twice = [n for n in runs.starts if runs.started(n) > 1]
    # Only what a's one slot was running as it died may have started again (its keeper kills an
    # attempt no agent process adopts); nothing that waited queued there. Its first run was a's:
    # attempt 1, started before any continuation (attempt 2, on b once a was lost). (Not "before
    # the kill": a start a asked for just before it, in flight to its keeper, begins just after.)
    assert len(twice) <= 1, twice
    continued = min((when for starts in runs.starts.values() for attempt, when in starts if attempt > 1),
                    default=float("inf"))
    assert all(runs.starts[n][0][0] == 1 and runs.starts[n][0][1] < continued for n in twice), \
        "its first run was a's, before the continuations"
    # That one's first attempt may have no end line (the keeper killed it as a's lease lapsed,
    # before the task continued): RunLog.overlaps counts such an attempt as running on for ever.
    assert [n for n in runs.overlaps() if n not in twice] == []
    for name in twice:
        ends = dict(runs.ends.get(name, []))
        spans = sorted((start, ends[attempt]) for attempt, start in runs.starts[name] if attempt in ends)
        assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:])), f"{name}: two attempts ran at once"


def queued_ahead_at(c, name: str) -> bool:
    return any(p.id == name and p.queued_ahead > 0 for p in c.client.list_providers())


def test_a_continuation_is_not_held_back_by_quick_tasks_queued_ahead(sqlite_cluster, tmp_path):
    """A task handed on waits for a free slot first in line (continuations go before queued
    tasks): quick tasks queued ahead must not keep the only receiver's slots from ever freeing."""
    log = tmp_path / "runs.log"
    c = sqlite_cluster
    c.add_agent("b", slots=1)
    c.client.submit_job({"name": "long", "tasks": [{"name": "h", "command": recorded_command(log, 30)}]})
    wait_until(lambda: RunLog(log).started("h") == 1, 30, "the long task to start at b")
    c.add_agent("a", slots=1)
    quick = c.client.submit_job({"name": "quick", "tasks": [
        {"name": f"q{i}", "command": recorded_command(log, 0.02)} for i in range(400)]})
    wait_until(lambda: queued_ahead_at(c, "a"), 30, "quick tasks to be queued ahead at a")
    c.client.drain_provider("b")  # the long task continues at a, the only other provider
    wait_until(lambda: RunLog(log).started("h") == 2, 120, "the long task to continue at a")
    runs = RunLog(log)
    quick_started = sum(runs.started(f"q{i}") > 0 for i in range(400))
    assert quick_started < 400, "the continuation waited for every quick task to start first"
    c.client.cancel_job(quick.id)


def test_a_stopping_agent_with_stop_wait_runs_its_queued_tasks_instead_of_holding_them(sqlite_cluster, tmp_path):
    """A graceful stop with --stop-wait lets the agent's tasks finish: those queued ahead too, as
    slots free; they must not sit unstarted until the stop-wait runs out (nor the agent with them)."""
    log = tmp_path / "runs.log"
    c = sqlite_cluster
    a = c.add_agent("a", slots=1, extra=["--stop-wait", "60"])
    job = c.client.submit_job(job_of(log, n=400, seconds=0.02))
    wait_until(lambda: queued_ahead_at(c, "a"), 30, "quick tasks to be queued ahead at a")
    a.signal(signal.SIGTERM)
    # Its running task ends in a moment and the rest are quick: far sooner than the stop-wait.
    wait_until(lambda: not a.alive(), 40, "agent a to stop once what it holds has run")
    c.add_agent("b", slots=2)  # for the tasks never given to a
    done = c.client.wait_job(job.id, timeout=120)
    runs = RunLog(log)
    assert done.state == 3 and done.counts.success == 400  # SUCCEEDED
    assert [n for n in runs.starts if runs.started(n) != 1] == [], "each task ran once: none handed on"


def test_quick_tasks_are_not_queued_ahead_behind_a_long_task_while_another_agent_is_free(sqlite_cluster, tmp_path):
    """A task queued ahead waits for the agent's running tasks: behind a long one (a job not known
    to be quick) it would wait that long, not about a quarter second, while another agent idles."""
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    quick = c.client.submit_job({"name": "quick", "tasks": [
        {"name": f"q{i}", "command": recorded_command(log, 0.02)} for i in range(150)]})
    wait_until(lambda: queued_ahead_at(c, "a"), 30, "quick tasks to be queued ahead at a")
    started = f'echo "start $JOBPLANE_TASK_NAME $JOBPLANE_ATTEMPT $(date +%s.%N)" >> {log}'
    long_task = f"{started}; while [ ! -e {gate} ]; do sleep 0.05; done"  # until the test opens the gate
    c.client.submit_job({"name": "long", "priority": 10,
                         "tasks": [{"name": "long", "command": ["sh", "-c", long_task]}]})
    wait_until(lambda: RunLog(log).started("long") == 1, 30, "the long task to start at a")
    c.add_agent("b", slots=1)  # free from now on: the quick job's tasks left can all run here
    try:
        # Behind the long task at a, a quick task queued ahead would wait until the gate opens.
        done = c.client.wait_job(quick.id, timeout=120)
        assert done.state == 3 and done.counts.success == 150  # SUCCEEDED
    finally:
        gate.touch()


def test_tasks_queued_behind_a_task_that_turns_out_long_are_given_back_and_run_elsewhere(sqlite_cluster, tmp_path):
    """The job is quick, but one of its tasks runs until the test opens a gate: the tasks queued
    ahead behind it at its one-slot agent are given back unstarted after a second and run at the
    other agent, while the gate is still shut."""
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    c.add_agent("b", slots=1)
    started = f'echo "start $JOBPLANE_TASK_NAME $JOBPLANE_ATTEMPT $(date +%s.%N)" >> {log}'
    tasks = [{"name": f"q{i}", "command": recorded_command(log, 0.005)} for i in range(300)]
    tasks[150] = {"name": "long", "command": ["sh", "-c", f"{started}; while [ ! -e {gate} ]; do sleep 0.05; done"]}
    job = c.client.submit_job({"name": "quick-but-one", "tasks": tasks})
    quick = [f"q{i}" for i in range(300) if i != 150]
    try:
        # Whichever agent runs the long task, what was queued behind it there runs at the other.
        wait_until(lambda: all(RunLog(log).runs(n) for n in quick), 90,
                   "every quick task to run while the long one holds its agent's only slot")
    finally:
        gate.touch()
    done = c.client.wait_job(job.id, timeout=60)
    runs = RunLog(log)
    assert done.state == 3 and done.counts.success == 300  # SUCCEEDED
    assert [n for n in quick if runs.started(n) != 1] == [], "each ran once: those given back had not started"
    given_back = [a for t in c.client.list_tasks(job.id) for a in t.attempts if "given back unstarted" in a.reason]
    assert given_back, "some tasks waited behind the long one and were given back"


def test_a_stopping_agent_with_stop_wait_gives_back_what_is_queued_behind_a_task_that_turns_out_long(
        sqlite_cluster, tmp_path):
    """Stopping with --stop-wait, the agent lets its tasks finish; a task queued ahead behind one
    that turned out long is given back after a second as ever, to run elsewhere, not held unstarted
    until that long task ends or the stop-wait runs out (a minute here)."""
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    c = sqlite_cluster
    a = c.add_agent("a", slots=1, extra=["--stop-wait", "60"])
    started = f'echo "start $JOBPLANE_TASK_NAME $JOBPLANE_ATTEMPT $(date +%s.%N)" >> {log}'
    # The long task stops its agent as it starts: what is queued behind it has waited under a second.
    long_task = f"{started}; kill -TERM {a.pid}; while [ ! -e {gate} ]; do sleep 0.05; done"
    tasks = [{"name": f"q{i}", "command": recorded_command(log, 0.005)} for i in range(300)]
    tasks[150] = {"name": "long", "command": ["sh", "-c", long_task]}
    job = c.client.submit_job({"name": "quick-but-one", "tasks": tasks})
    quick = [f"q{i}" for i in range(300) if i != 150]
    wait_until(lambda: RunLog(log).started("long") == 1, 60, "the long task to start at a")
    c.add_agent("b", slots=1)
    try:
        wait_until(lambda: all(RunLog(log).runs(n) for n in quick), 30,
                   "every quick task to run at b while the long one holds the only slot of a, stopping")
    finally:
        gate.touch()
    wait_until(lambda: not a.alive(), 30, "agent a to stop once its long task has ended")
    done = c.client.wait_job(job.id, timeout=60)
    runs = RunLog(log)
    assert done.state == 3 and done.counts.success == 300  # SUCCEEDED
    assert [n for n in quick if runs.started(n) != 1] == [], "each ran once: those given back had not started"
    given_back = [t.name for t in c.client.list_tasks(job.id) for at in t.attempts
                  if "given back unstarted by a" in at.reason]
    assert given_back, "tasks were queued behind the long one at a, and given back"


@pytest.mark.server_args("--reconnect-grace", "5")  # a new agent process must start within it under load
def test_a_restarted_agent_counts_the_task_it_adopted_against_its_slots(sqlite_cluster, tmp_path):
    """An agent process restarted while a task runs adopts it: that task holds one of its slots
    as before, so quick tasks queued ahead there run one at a time in the slot left, never two
    at once beside it (three commands on a two-slot agent)."""
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    c = sqlite_cluster
    c.add_agent("a", slots=2)
    started = f'echo "start $JOBPLANE_TASK_NAME $JOBPLANE_ATTEMPT $(date +%s.%N)" >> {log}'
    c.client.submit_job({"name": "long", "tasks": [
        {"name": "long", "command": ["sh", "-c", f"{started}; while [ ! -e {gate} ]; do sleep 0.05; done"]}]})
    wait_until(lambda: RunLog(log).started("long") == 1, 30, "the long task to start at a")
    crashed = c.agents["a"]
    crashed.kill()
    crashed.stop()
    try:
        c.add_agent("a", slots=2)  # the same name and state directory: it adopts the long task
        job = c.client.submit_job(job_of(log, n=300, seconds=0.01))
        ahead = 0
        for event in c.client.watch(job.id, timeout=120):
            ahead += event.kind == 2 and event.raw_status == "ASSIGNED" and event.message == QUEUED_AHEAD
            if event.kind == 1 and event.raw_status in ("SUCCEEDED", "FAILED", "CANCELLED"):
                assert event.raw_status == "SUCCEEDED"
                break
        runs = RunLog(log)
        assert runs.started("long") == 1 and runs.runs("long") == 0, "the long task runs on, adopted"
        quick = [f"t{i}" for i in range(300)]
        assert [(runs.started(n), runs.runs(n)) for n in quick] == [(1, 1)] * 300
        assert ahead > 0, "quick tasks were queued ahead at a"
        assert intervals_overlap(runs, quick) == [], "one slot left beside the adopted task: one quick task at a time"
    finally:
        gate.touch()
