"""What the CLI shows: event lines with normalized statuses, and JSON with the .proto field names."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp

from jobplane.client import output
from jobplane.v1 import event_pb2, job_pb2, status_pb2


def event(**fields) -> event_pb2.Event:
    return event_pb2.Event(time=Timestamp(seconds=1_700_000_000), **fields)


def test_task_event_line_shows_name_normalized_status_provider_attempt_and_reason():
    line = output.EventLines(with_job=False)(
        event(
            kind=event_pb2.EVENT_KIND_TASK,
            job_id="12",
            task_id="40",
            task_name="build[0]",
            provider_id="local-1",
            attempt=2,
            raw_status="FAILED",
            status=status_pb2.NORMALIZED_STATUS_FAILURE,
            message="exited with code 2",
        )
    )
    assert line.split()[1:] == ["task", "build[0]", "FAILURE", "on", "local-1", "attempt", "2", "exited", "with", "code", "2"]


def test_watching_all_jobs_names_the_job_of_each_task_event():
    line = output.EventLines()(
        event(kind=event_pb2.EVENT_KIND_TASK, job_id="12", task_name="say", status=status_pb2.NORMALIZED_STATUS_RUNNING)
    )
    assert "job 12 task say" in line and "RUNNING" in line


def test_job_event_line_and_long_names_keep_the_status_column_aligned():
    lines = output.EventLines(with_job=False)
    short = lines(event(kind=event_pb2.EVENT_KIND_JOB, job_id="12", status=status_pb2.NORMALIZED_STATUS_SUCCESS))
    long = lines(
        event(kind=event_pb2.EVENT_KIND_TASK, task_name="train[lr=0.01,batch=32]", status=status_pb2.NORMALIZED_STATUS_RUNNING)
    )
    later = lines(event(kind=event_pb2.EVENT_KIND_JOB, job_id="12", status=status_pb2.NORMALIZED_STATUS_SUCCESS))
    assert short.split()[1:] == ["job", "12", "SUCCESS"]
    assert later.index("SUCCESS") == long.index("RUNNING")


def test_json_uses_proto_field_names_and_shows_zero_values():
    job = job_pb2.Job(id="3", spec=job_pb2.JobSpec(name="j"), submit_time=Timestamp(seconds=1_700_000_000))
    document = json.loads(output.json_document([job]))[0]
    assert document["submit_time"] == "2023-11-14T22:13:20Z"
    assert document["spec"] == {"name": "j", "priority": 0, "labels": {}, "tasks": [], "wait_for_providers": False,
                                "continuation_rules": [], "job_class": "", "run_window": "", "resource_locks": {},
                                "fact_conditions": [], "notify": []}, "no deprecated fields"
    assert document["reason"] == ""


def test_table_aligns_columns_and_shows_missing_values_as_dashes():
    text = output.table(("ID", "NAME"), [("1", "hello"), ("12", "")])
    assert text.splitlines() == ["ID  NAME", "1   hello", "12  -"]
