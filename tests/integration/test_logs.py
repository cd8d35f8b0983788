"""Task output: kept whole by the agent, streamed live through the server (`jobplane logs`)."""

from __future__ import annotations

from support import wait_until

CANCELLED = 7  # TASK_STATE_CANCELLED


def test_a_cancelled_task_keeps_its_output(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    cluster.add_agent("a")
    marker = tmp_path / "printed"
    script = f"echo before-cancel; echo on-stderr >&2; touch {marker}; sleep 300"
    job = cluster.client.submit_job({"name": "c", "tasks": [{"name": "t", "command": ["sh", "-c", script]}]})
    wait_until(marker.exists, 30, "the task to print its lines")
    cluster.client.cancel_job(job.id)
    (task,) = cluster.client.list_tasks(job.id)

    def tails():
        t = cluster.client.get_task(task.id)
        return t if t.state == CANCELLED and t.stdout_tail else None

    cancelled = wait_until(tails, 30, "the cancelled task's output tails")
    assert cancelled.stdout_tail == "before-cancel\n"
    assert cancelled.stderr_tail == "on-stderr\n"
