"""Cancel stops running work: its processes, grandchildren included, are gone."""

from support import pid_alive, wait_until

CANCELLED = 5


def test_cancel_kills_running_tasks_and_their_children(cluster, tmp_path):
    cluster.add_agent("a", slots=2)
    pids = tmp_path / "pids"
    pids.mkdir()
    # Each task starts a grandchild `sleep` and records both pids.
    script = f"sleep 300 & echo $! > {pids}/$JOBPLANE_TASK_ID.child; echo $$ > {pids}/$JOBPLANE_TASK_ID.sh; wait"
    job = cluster.client.submit_job({"name": "long", "tasks": [
        {"name": f"t{i}", "command": ["sh", "-c", script]} for i in range(3)]})
    def recorded():
        values = [p.read_text().strip() for p in pids.glob("*")]
        values = [int(v) for v in values if v]
        return values if len(values) == 4 else None

    recorded = wait_until(recorded, 30, "two tasks to start and record their pids")
    cancelled = cluster.client.cancel_job(job.id)
    assert cancelled.state == CANCELLED
    wait_until(lambda: not any(pid_alive(pid) for pid in recorded), 15, "task processes and grandchildren to exit")
    assert {t.state for t in cluster.client.list_tasks(job.id)} == {7}  # TASK_STATE_CANCELLED
