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


# A Python task that records its run like recorded_command does.
MARKS = '''
import os, time

def mark(log, seconds):
    name, attempt = os.environ["JOBPLANE_TASK_NAME"], os.environ["JOBPLANE_ATTEMPT"]
    with open(log, "a") as f:
        f.write(f"start {name} {attempt} {time.time()}\\n")
    time.sleep(seconds)
    with open(log, "a") as f:
        f.write(f"end {name} {attempt} {time.time()}\\n")
'''

JOBS, TASKS = 20, 50  # 1,000 tasks, half commands and half Python callables


def mixed_job(j: int, log) -> dict:
    tasks = []
    for i in range(TASKS):
        name = f"j{j}-t{i}"
        if i % 2:
            tasks.append({"name": name, "python": "fault_marks:mark", "args": {"log": str(log), "seconds": 0.05}})
        else:
            tasks.append({"name": name, "command": recorded_command(log, 0.05)})
    return {"name": f"mixed-{j}", "tasks": tasks}


def test_five_server_kills_during_a_thousand_mixed_tasks_lose_nothing_and_run_nothing_twice(tmp_path, db_url):
    import threading

    from jobplane.client import Client, Retry

    log = tmp_path / "runs.log"
    work = tmp_path / "work"
    work.mkdir()
    (work / "fault_marks.py").write_text(MARKS)
    cluster = Cluster(tmp_path, db_url)
    port = free_port()
    submitted: list[str] = []
    failures: list[BaseException] = []
    try:
        cluster.start_server(port=port)
        for name in ("a", "b"):
            cluster.add_agent(name, slots=4, extra=["--work-dir", str(work)])
        server = cluster.server
        # Submits ride out the restarts: each retried with its request id until the server answers.
        submitter = Client.connect(server.address, token=server.token, ca=server.ca, timeout=10,
                                   retry=Retry(attempts=60, first_pause=0.2, max_pause=1.0))

        def submit_all() -> None:
            try:
                for j in range(JOBS):
                    submitted.append(submitter.submit_job(mixed_job(j, log)).id)
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        thread = threading.Thread(target=submit_all)
        thread.start()
        for kill in range(5):
            ended = sum(len(v) for v in RunLog(log).ends.values())
            wait_until(lambda: sum(len(v) for v in RunLog(log).ends.values()) >= ended + 60, 120,
                       f"more tasks to end before kill {kill + 1}")
            cluster.server.kill()
            time.sleep(1)  # the scenario: the server is down a moment, then starts on the same database
            cluster.start_server(port=port)
        thread.join(300)
        submitter.close()
        assert not failures, failures
        assert len(submitted) == JOBS and len(set(submitted)) == JOBS, "every submit acknowledged once"
        for job_id in submitted:
            assert cluster.client.wait_job(job_id, timeout=300).state == SUCCEEDED
        jobs = list(cluster.client.list_jobs())
        assert sorted(j.id for j in jobs) == sorted(submitted), "no job lost, none made twice"
        runs = RunLog(log)
        names = [f"j{j}-t{i}" for j in range(JOBS) for i in range(TASKS)]
        assert [n for n in names if runs.started(n) != 1] == [], "each task started exactly once"
        assert [n for n in names if runs.runs(n) != 1] == [], "each task ran to its end exactly once"
        assert runs.overlaps() == []
        marker = cluster.client.submit_job({"name": "marker", "wait_for_providers": True, "tasks": [
            {"name": "m", "command": ["true"], "requires": {"nobody": "has-this"}}]})
        cluster.client.cancel_job(marker.id)
        ids = []
        for event in cluster.client.watch(timeout=120):
            ids.append(event.id)
            if event.job_id == marker.id and event.kind == 1 and event.raw_status == "CANCELLED":
                break
        assert ids == list(range(ids[0], ids[0] + len(ids))), "the event log replays with no gap or repeat"
        assert ids[0] == 1
    finally:
        cluster.close()
