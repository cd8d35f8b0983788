"""The live line's content: counts per status, the bar, elapsed and ETA; which events get a line."""

from __future__ import annotations

import io

from jobplane.client import output
from jobplane.client.progress import Progress, is_notable
from jobplane.v1 import event_pb2, job_pb2, status_pb2, task_pb2

TASK, JOB = event_pb2.EVENT_KIND_TASK, event_pb2.EVENT_KIND_JOB
S = status_pb2


def task_event(task_id: str, status: int, attempt: int = 1, **fields) -> event_pb2.Event:
    return event_pb2.Event(kind=TASK, job_id="1", task_id=task_id, task_name=f"t{task_id}", status=status,
                           attempt=attempt, **fields)


def progress(total: int, now: float = 1030.0) -> tuple[Progress, io.StringIO]:
    job = job_pb2.Job(id="1", counts=job_pb2.TaskCounts(total=total))
    job.submit_time.FromSeconds(1000)
    out = io.StringIO()
    tasks = [task_pb2.Task(id="1", status=S.NORMALIZED_STATUS_SUCCESS)]  # as listed when the watch began
    return Progress(job, output.EventLines(with_job=False), out, tasks=tasks, clock=lambda: now), out


def test_the_line_counts_tasks_per_status_with_a_bar_elapsed_and_eta(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    display, _ = progress(total=10)
    display.show(task_event("2", S.NORMALIZED_STATUS_RUNNING))
    display.show(task_event("3", S.NORMALIZED_STATUS_FAILURE))
    display.show(task_event("4", S.NORMALIZED_STATUS_ON_HOLD))
    assert display.line() == ("####---------------- 2/10  RUNNING 1  WAITING 6  ON_HOLD 1  SUCCESS 1  FAILURE 1  "
                              "30s elapsed, ETA 2m")
    monkeypatch.setenv("COLUMNS", "30")
    assert display.line() == "####---------------- 2/10  RU", "cut to the terminal's width: no wrapping"


def test_only_notable_events_get_a_line_and_a_retry_is_shown_once():
    display, out = progress(total=3)
    display.show(task_event("2", S.NORMALIZED_STATUS_RUNNING))
    display.show(task_event("2", S.NORMALIZED_STATUS_SUCCESS))
    assert "\n" not in out.getvalue(), "routine events: no line, the live one redrawn in place"
    display.show(task_event("3", S.NORMALIZED_STATUS_FAILURE, message="exited with code 2"))
    display.show(task_event("3", S.NORMALIZED_STATUS_RUNNING, attempt=2))
    display.show(task_event("3", S.NORMALIZED_STATUS_RUNNING, attempt=2, raw_status="busy"))
    shown = [line for line in out.getvalue().replace("\r\x1b[2K", "\n").split("\n") if "task t3" in line]
    assert len(shown) == 2 and "FAILURE" in shown[0] and "attempt 2" in shown[1]


def test_which_events_are_notable():
    assert is_notable(task_event("1", S.NORMALIZED_STATUS_FAILURE))
    assert is_notable(task_event("1", S.NORMALIZED_STATUS_RESTART))
    assert is_notable(task_event("1", S.NORMALIZED_STATUS_RUNNING, attempt=2)), "a retry or a continuation"
    assert not is_notable(task_event("1", S.NORMALIZED_STATUS_RUNNING))
    assert not is_notable(task_event("1", S.NORMALIZED_STATUS_SUCCESS))
    assert is_notable(event_pb2.Event(kind=JOB, job_id="1", raw_status="SUCCEEDED", status=S.NORMALIZED_STATUS_SUCCESS))
    assert is_notable(event_pb2.Event(kind=JOB, job_id="1", status=S.NORMALIZED_STATUS_ON_HOLD))
    assert is_notable(event_pb2.Event(kind=event_pb2.EVENT_KIND_CONTINUATION))
