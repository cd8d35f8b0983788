"""Queue-ahead with a real server and real agents: quick tasks wait at the agent beyond its
slots, and still run one per slot, each exactly once, also when the agent holding them dies.
Judged by what the tasks did (the log each appends its start and end to)."""

from __future__ import annotations

import time

from support import RunLog, recorded_command, wait_until

from jobplane.server.domain.ahead import QUEUED_AHEAD

TASKS = 40


def job_of(log, n=TASKS, seconds=0.005) -> dict:
    """Tasks well under the 0.1 s that makes a job quick, even on a loaded machine."""
    return {"name": "quick", "tasks": [{"name": f"t{i}", "command": recorded_command(log, seconds)}
                                       for i in range(n)]}


def intervals_overlap(runs: RunLog) -> list[tuple[str, str]]:
    """Pairs of tasks that ran at the same moment (on a one-slot agent: none may)."""
    spans = sorted((runs.starts[name][0][1], runs.ends[name][0][1], name) for name in runs.starts)
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
    killed_at = time.time()
    c.agents["a"].kill()  # kill -9: what it held queued never started there
    c.add_agent("b", slots=2)
    done = c.client.wait_job(job.id, timeout=120)
    runs = RunLog(log)
    assert done.state == 3 and done.counts.success == 300  # SUCCEEDED
    assert [n for n in (f"t{i}" for i in range(300)) if runs.runs(n) == 0] == [], "every task ran to its end"
    twice = [n for n in runs.starts if runs.started(n) > 1]
    # Only what a's one slot was running as it died may have started again (its keeper kills an
    # attempt no agent process adopts); nothing that waited queued there.
    assert len(twice) <= 1, twice
    assert all(runs.starts[n][0][1] < killed_at for n in twice), "its first start was before the kill"
