"""A suspended task's lateness with a real agent and a real process: suspended for longer than its
max_runtime, it is never RUNNING_LATE (its deadline moves on by the pause), and it finishes."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from support import wait_until

ON_HOLD, RUNNING_LATE = 7, 9
SUCCEEDED = 3
TASK_RUNNING = 4


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_a_task_suspended_past_its_max_runtime_is_not_running_late(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    ticks, go = tmp_path / "ticks", tmp_path / "go"
    # About 1 s of work, and it ends only once the test lets it (after the hold: a loaded machine
    # must not end it first).
    script = f"i=0; while [ $i -lt 10 ] || [ ! -e {go} ]; do echo $i >> {ticks}; i=$((i+1)); sleep 0.1; done"
    job = c.client.submit_job({"name": "nightly", "tasks": [
        {"name": "t", "command": ["sh", "-c", script], "max_runtime": 6, "max_attempts": 1}]})
    # RUNNING as the server knows it (a hold while its start report is on its way requeues it).
    wait_until(lambda: len(lines(ticks)) >= 2 and [t.state for t in c.client.list_tasks(job.id)] == [TASK_RUNNING],
               20, "the task to be running")
    c.client.hold_job(job.id, reason="db maintenance", mode="suspend")
    (task,) = c.client.list_tasks(job.id)
    started = task.attempts[0].start_time.ToNanoseconds() / 1e9
    # Past its 6 s of runtime, on the server's clock (its heartbeats' times), while suspended.
    wait_until(lambda: c.client.get_provider("a").last_seen_time.ToNanoseconds() / 1e9 > started + 8, 30,
               "8 s since the task started")
    (task,) = c.client.list_tasks(job.id)
    assert task.status == ON_HOLD, "suspended: held, not running late"
    go.touch()
    c.client.release_job(job.id)
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    found = lines(ticks)
    assert len(found) >= 10 and found == [str(i) for i in range(len(found))]  # each once: run once, in place
    with closing(c.client.watch(job.id, timeout=30)) as events:
        statuses = [e.status for e in events if e.task_id == task.id]
    assert RUNNING_LATE not in statuses and ON_HOLD in statuses
