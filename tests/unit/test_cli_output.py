"""What the CLI shows: event lines with normalized statuses, and JSON with the .proto field names."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp

from jobplane.client import output
from jobplane.v1 import event_pb2, job_pb2, status_pb2, task_pb2


def event(**fields) -> event_pb2.Event:
    return event_pb2.Event(id=fields.pop("id", 7), time=Timestamp(seconds=1_700_000_000), **fields)


def test_event_lines_start_with_the_event_id_to_resume_from():
    lines = output.EventLines()
    first = lines(event(id=9, kind=event_pb2.EVENT_KIND_JOB, job_id="12", status=status_pb2.NORMALIZED_STATUS_RUNNING))
    later = lines(event(id=12345, kind=event_pb2.EVENT_KIND_JOB, job_id="12",
                        status=status_pb2.NORMALIZED_STATUS_SUCCESS))
    assert first.split()[0] == "#9" and later.split()[0] == "#12345"
    assert first.index("job 12") == 4 + 2 + 8 + 2, "ids up to #999 take no more room"


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
    assert line.split()[2:] == ["task", "build[0]", "FAILURE", "on", "local-1", "attempt", "2", "exited", "with", "code", "2"]


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
    assert short.split()[2:] == ["job", "12", "SUCCESS"]
    assert later.index("SUCCESS") == long.index("RUNNING")


def test_json_uses_proto_field_names_and_shows_zero_values_but_only_the_spec_fields_set():
    job = job_pb2.Job(id="3", spec=job_pb2.JobSpec(name="j"), submit_time=Timestamp(seconds=1_700_000_000),
                      counts=job_pb2.TaskCounts(total=1, waiting=1))
    document = json.loads(output.json_document([job]))[0]
    assert document["submit_time"] == "2023-11-14T22:13:20Z"
    assert document["spec"] == {"name": "j"}
    assert document["reason"] == "" and document["counts"] == {"total": 1, "waiting": 1, "running": 0, "success": 0,
                                                                "failure": 0, "cancel": 0}


def test_json_shows_status_names_as_the_tables_do_and_json_fields_as_json():
    job = job_pb2.Job(id="3", state=job_pb2.JOB_STATE_SUCCEEDED, status=status_pb2.NORMALIZED_STATUS_SUCCESS)
    template = job.spec.tasks.add(name="train", python="m:f", args_json='{"lr": 1}', items_json="[1, 2, 3]",
                                  chunk_size=2)
    template.matrix.add(name="seed", values_json="[1, 2]")
    task = task_pb2.Task(id="9", state=task_pb2.TASK_STATE_RUNNING, checkpoint_json='{"i": 5}', spec=template)
    task.attempts.add(number=1, resumed_from_json='{"i": 2}')
    shown, shown_task = json.loads(output.json_document(job)), json.loads(output.json_document(task))
    assert (shown["state"], shown["status"]) == ("SUCCEEDED", "SUCCESS")
    assert shown["spec"]["tasks"] == [{"name": "train", "python": "m:f", "args": {"lr": 1}, "items": [1, 2, 3],
                                       "chunk_size": 2, "matrix": [{"name": "seed", "values": [1, 2]}]}]
    assert (shown_task["state"], shown_task["status"]) == ("RUNNING", None), "unset shows as null"
    assert shown_task["checkpoint"] == {"i": 5} and shown_task["result"] is None
    assert shown_task["attempts"][0]["resumed_from"] == {"i": 2}
    assert list(shown_task)[:4] == ["id", "job_id", "name", "group"], "the fields keep their order"


def test_table_aligns_columns_and_shows_missing_values_as_dashes():
    text = output.table(("ID", "NAME"), [("1", "hello"), ("12", "")])
    assert text.splitlines() == ["ID  NAME", "1   hello", "12  -"]
