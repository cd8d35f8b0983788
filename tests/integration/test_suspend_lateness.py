"""A suspended task's lateness with a real agent and a real process: suspended for longer than its
max_runtime, it is never RUNNING_LATE (its deadline moves on by the pause), and it finishes."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from support import wait_until

ON_HOLD, RUNNING_LATE = 7, 9
SUCCEEDED = 3


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_a_task_suspended_past_its_max_runtime_is_not_running_late(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    ticks = tmp_path / "ticks"
    script = f"i=0; while [ $i -lt 20 ]; do echo $i >> {ticks}; i=$((i+1)); sleep 0.1; done"  # about 2 s of work
    job = c.client.submit_job({"name": "nightly", "tasks": [
        {"name": "t", "command": ["sh", "-c", script], "max_runtime": 6, "max_attempts": 1}]})
    wait_until(lambda: len(lines(ticks)) >= 2, 20, "the task to be running")
    c.client.hold_job(job.id, reason="db maintenance", mode="suspend")
    (task,) = c.client.list_tasks(job.id)
    started = task.attempts[0].start_time.ToNanoseconds() / 1e9
    # Past its 6 s of runtime, on the server's clock (its heartbeats' times), while suspended.
    wait_until(lambda: c.client.get_provider("a").last_seen_time.ToNanoseconds() / 1e9 > started + 8, 30,
               "8 s since the task started")
    (task,) = c.client.list_tasks(job.id)
    assert task.status == ON_HOLD, "suspended: held, not running late"
    c.client.release_job(job.id)
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    assert lines(ticks) == [str(i) for i in range(20)]
    with closing(c.client.watch(job.id, timeout=30)) as events:
        statuses = [e.status for e in events if e.task_id == task.id]
    assert RUNNING_LATE not in statuses and ON_HOLD in statuses
