"""The core applies the next batch while the last one commits (core.py). A server killed
with kill -9 while batches are in flight must still lose no acknowledged job and no result,
and what a watcher saw must be what the database holds after the restart: an event announced
before its commit, then lost with the process, would come back under its id as another event
(or leave a gap)."""

from __future__ import annotations

import threading
import time

from conftest import Cluster
from support import free_port, wait_until

SUCCEEDED, TASK_SUCCEEDED = 3, 5  # job state, task state
TASK, SUCCESS = 2, 4  # event kind, normalized status
NOOP = {"python": "jobplane.examples.funcs:noop"}
KILLS = 3


def _key(event) -> tuple:
    return event.id, event.kind, event.job_id, event.task_id, event.attempt, event.raw_status, event.status


UNLIMITED = ["--submit-rate", "100000"]


def test_kill_9_while_batches_commit_loses_no_acknowledged_job_or_result_and_no_event_seen(tmp_path, db_url):
    from jobplane.client import Client, Retry

    cluster = Cluster(tmp_path, db_url)
    port = free_port()
    submitted: list[str] = []
    seen: list = []
    failures: list[BaseException] = []
    stop = threading.Event()
    watcher, threads = None, []
    try:
        # Submits go back to back: the per-identity submit limit (50/s) is not what this tests.
        server = cluster.start_server(port=port, extra=UNLIMITED)
        for name in ("a", "b"):
            cluster.add_agent(name, slots=8)

        def connect() -> Client:  # rides out the restarts: submits with their request ids, watches resume
            return Client.connect(server.address, token=server.token, ca=server.ca, timeout=10,
                                  retry=Retry(attempts=100, first_pause=0.1, max_pause=0.5))

        def submit_all() -> None:
            with connect() as client:
                try:
                    while not stop.is_set():
                        job = client.submit_job({"name": f"j{len(submitted)}",
                                                 "tasks": [dict(NOOP, name=f"t{i}") for i in range(40)]})
                        submitted.append(job.id)
                except BaseException as exc:  # reported by the main thread
                    failures.append(exc)

        watcher = connect()  # closed in the end: its resuming watch would outlive the test

        def watch_all() -> None:
            try:
                for event in watcher.watch():
                    seen.append(_key(event))
            except BaseException as exc:
                if not stop.is_set():  # closing the client ends it
                    failures.append(exc)

        threads = [threading.Thread(target=submit_all), threading.Thread(target=watch_all, daemon=True)]
        for thread in threads:
            thread.start()
        def successes() -> int:
            return len({(key[3], key[4]) for key in list(seen) if key[1] == TASK and key[6] == SUCCESS})

        for kill in range(KILLS):  # each kill comes after more than 100 new results (and so under way)
            before = successes()
            wait_until(lambda: successes() > before + 100 or failures, 120, f"results before kill {kill + 1}")
            cluster.server.kill()  # tasks finishing and jobs arriving all the time: batches are in flight
            time.sleep(0.5)
            cluster.start_server(port=port, extra=UNLIMITED)
        wait_until(lambda: len(submitted) >= 2 * KILLS or failures, 120, "more jobs to be acknowledged")
        stop.set()
        threads[0].join(120)
        assert not failures, failures
        for job_id in submitted:
            done = cluster.client.wait_job(job_id, timeout=300)
            assert done.state == SUCCEEDED and done.counts.success == 40, done
        assert sorted(j.id for j in cluster.client.list_jobs()) == sorted(submitted), "no acknowledged job lost"
        stored = []
        for event in cluster.client.watch(timeout=60):
            stored.append(_key(event))
            if len(stored) >= len(seen):
                break
        assert seen[:len(stored)] == stored, "every event a watcher saw is in the database, as it saw it"
        ids = [key[0] for key in seen]
        assert ids == list(range(1, len(ids) + 1)), "no event seen twice, none skipped"
        tasks = {t.id: t for job_id in submitted for t in cluster.client.list_tasks(job_id)}
        ended = {(key[3], key[4]) for key in seen if key[1] == TASK and key[6] == SUCCESS}
        assert len(ended) > KILLS * 100
        for task_id, attempt in ended:  # a result once announced is never taken back nor run again
            assert tasks[task_id].state == TASK_SUCCEEDED and tasks[task_id].attempt == attempt, tasks[task_id]
    finally:
        stop.set()
        if watcher is not None:
            watcher.close()
        for thread in threads[1:]:  # the watcher's
            thread.join(30)
        cluster.close()
