"""Exactly once through the faults a user meets most: the server killed (kill -9) while work
runs, with real agents and real processes. Judged by what the tasks did (a log each attempt
appends its start and end to), not by what the server says."""

from __future__ import annotations

import time

from conftest import Cluster
from support import RunLog, free_port, recorded_command, wait_until

SUCCEEDED = 3


def test_a_server_killed_while_tasks_run_and_down_past_the_agents_backoff_reruns_nothing(tmp_path, db_url):
    log = tmp_path / "runs.log"
    cluster = Cluster(tmp_path, db_url)
    port = free_port()
    try:
        cluster.start_server(port=port)  # the reconnect grace is 1 s, less than the agents' backoff cap
        cluster.add_agent("a", slots=2)
        cluster.add_agent("b", slots=2)
        job = cluster.client.submit_job({"name": "four", "tasks": [
            {"name": f"t{i}", "command": recorded_command(log, 2)} for i in range(4)]})
        wait_until(lambda: RunLog(log).started and sum(RunLog(log).started(f"t{i}") for i in range(4)) == 4,
                   30, "the four tasks to start")
        cluster.server.kill()
        time.sleep(5)  # the scenario: down longer than the agents' backoff cap; the tasks end meanwhile
        cluster.start_server(port=port)
        done = cluster.client.wait_job(job.id, timeout=60)
        runs = RunLog(log)
        assert [runs.started(f"t{i}") for i in range(4)] == [1, 1, 1, 1], "no task started twice"
        assert [runs.runs(f"t{i}") for i in range(4)] == [1, 1, 1, 1]
        assert done.state == SUCCEEDED and done.counts.success == 4
        for task in cluster.client.list_tasks(job.id):
            assert task.attempt == 1 and len(task.attempts) == 1, "each result was accepted from attempt 1"
        assert list(cluster.client.list_continuations()) == []
    finally:
        cluster.close()
