"""Normalized status with a real server: lateness on time, and an external scheduler's raw
statuses walking through mainframe-like values."""

from __future__ import annotations

import textwrap
from contextlib import closing

LATE_TO_START, RUNNING_LATE, FAILURE, RUNNING, SUCCESS = 8, 9, 2, 1, 4
JOB = 1


def seconds(stamp) -> float:
    return stamp.ToNanoseconds() / 1e9


def first_event(cluster, job_id, wanted, timeout=30):
    with closing(cluster.client.watch(job_id, timeout=timeout)) as events:
        for event in events:
            if wanted(event):
                return event
    raise AssertionError("the job ended without the wanted event")


def test_a_job_not_started_in_time_is_late_to_start_within_a_second(cluster):
    job = cluster.client.submit_job({"name": "late", "wait_for_providers": True, "max_wait": 1,
                                     "tasks": [{"name": "t", "command": ["true"]}]})
    event = first_event(cluster, job.id, lambda e: e.kind == JOB and e.status == LATE_TO_START)
    deadline = seconds(job.submit_time) + 1
    assert 0 <= seconds(event.time) - deadline < 1.0, "on time, as an event"
    assert cluster.client.get_job(job.id).status == LATE_TO_START
    cluster.client.cancel_job(job.id)


def test_a_job_still_running_past_its_runtime_is_running_late(cluster):
    cluster.add_agent("a1", slots=1)
    job = cluster.client.submit_job({"name": "slow", "max_runtime": 1,
                                     "tasks": [{"name": "t", "command": ["sleep", "30"]}]})
    started = first_event(cluster, job.id, lambda e: e.kind == JOB and e.status == RUNNING)
    late = first_event(cluster, job.id, lambda e: e.kind == JOB and e.status == RUNNING_LATE)
    assert 0 <= seconds(late.time) - (seconds(started.time) + 1) < 1.0
    cluster.client.cancel_job(job.id)


SCHEDULER = textwrap.dedent("""
    #!/bin/sh
    # A fake mainframe scheduler: submit prints an id; each poll moves one step on.
    state={state}
    case "$1" in
      submit) echo 0 > "$state"; echo '{{"id": "JOB00042"}}' ;;
      poll)
        n=$(cat "$state"); echo $((n + 1)) > "$state"
        case $n in
          0) echo '{{"queue": "INPUT", "status": "AWAITING EXECUTION"}}' ;;
          1) echo '{{"queue": "EXEC", "status": "EXECUTING"}}' ;;
          *) echo '{{"queue": "PRINT", "status": "ABEND", "specific": "S0C7", "done": true, "exit_code": 12}}' ;;
        esac ;;
      cancel) echo '{{}}' ;;
    esac
""").lstrip()


def test_an_external_scheduler_walks_through_normalized_statuses(cluster, tmp_path):
    script = tmp_path / "mf.sh"
    script.write_text(SCHEDULER.format(state=tmp_path / "state"))
    script.chmod(0o755)
    cluster.add_agent("a1", slots=1)
    job = cluster.client.submit_job({"name": "mf", "tasks": [{"name": "t", "external": {
        "submit": [str(script), "submit"], "poll": [str(script), "poll"], "cancel": [str(script), "cancel"],
        "poll_interval": 0.05}}]})
    assert cluster.client.wait_job(job.id, timeout=60).state == 4  # FAILED
    seen = []
    with closing(cluster.client.watch(job.id, timeout=30)) as events:
        for event in events:
            if event.environment == "external":
                seen.append((event.raw.get("status"), event.status))
            if event.kind == JOB and event.raw_status == "FAILED":
                break
    assert seen[:3] == [("AWAITING EXECUTION", 3), ("EXECUTING", RUNNING), ("ABEND", FAILURE)]
    (task,) = list(cluster.client.list_tasks(job.id))
    assert "ABEND" in task.error
