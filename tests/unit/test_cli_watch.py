"""`jobplane watch` over a real gRPC channel to a scripted EventService: resume after a cutoff, stop at the end."""

from __future__ import annotations

import json
from concurrent import futures

import grpc
import pytest

from jobplane.client.cli import main
from jobplane.v1 import event_pb2, event_pb2_grpc, job_pb2, job_pb2_grpc, status_pb2

CUTOFF_AFTER = 5  # the server cuts the watcher off after this many events, once


def job_event(event_id: int, raw_status: str) -> event_pb2.Event:
    event = event_pb2.Event(id=event_id, kind=event_pb2.EVENT_KIND_JOB, job_id="7", raw_status=raw_status,
                            status=status_pb2.NORMALIZED_STATUS_RUNNING)
    event.time.FromSeconds(1000 + event_id)
    return event


class ScriptedJob(job_pb2_grpc.JobServiceServicer):
    """Job 7 as it stands after the log: ended at its last end event."""

    def __init__(self, log: list[event_pb2.Event]) -> None:
        ends = [e for e in log if e.raw_status in ("SUCCEEDED", "FAILED", "CANCELLED")]
        self.job = job_pb2.Job(id="7", state=job_pb2.JOB_STATE_SUCCEEDED)
        if ends:
            self.job.end_time.CopyFrom(ends[-1].time)

    def GetJob(self, request, context):
        return job_pb2.GetJobResponse(job=self.job)


class ScriptedEvents(event_pb2_grpc.EventServiceServicer):
    """Serves a fixed event log; the first stream is cut off as a slow watcher's would be."""

    def __init__(self, log: list[event_pb2.Event]) -> None:
        self.log = log
        self.requests: list[int] = []

    def WatchEvents(self, request, context):
        self.requests.append(request.after_event_id)
        events = [event for event in self.log if event.id > request.after_event_id]
        first_stream = len(self.requests) == 1
        for event in events[:CUTOFF_AFTER] if first_stream else events:
            yield event_pb2.WatchEventsResponse(events=[event])
        if first_stream:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"watcher fell behind; resume with after_event_id={CUTOFF_AFTER}")


@pytest.fixture
def serve():
    servers = []

    def start(log: list[event_pb2.Event]) -> tuple[str, ScriptedEvents]:
        jobs = ScriptedEvents(log)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        event_pb2_grpc.add_EventServiceServicer_to_server(jobs, server)
        job_pb2_grpc.add_JobServiceServicer_to_server(ScriptedJob(log), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}", jobs

    yield start
    for server in servers:
        server.stop(None)


def test_a_watcher_cut_off_for_falling_behind_resumes_without_gap_or_duplicate(serve, capsys):
    address, jobs = serve([job_event(i, "RUNNING") for i in range(1, 9)])

    code = main(["watch", "--server", address, "--insecure", "-o", "json"])

    ids = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert ids == list(range(1, 9))
    assert jobs.requests[:2] == [0, CUTOFF_AFTER]
    # The server then ended the stream, as a stopping one does: the watch asked again after the
    # last event it printed (as it would another replica), then said so, not silently exited 0.
    assert len(jobs.requests) > 2 and set(jobs.requests[2:]) == {8}
    assert code == 3


def test_watching_a_job_stops_at_its_terminal_event(serve, capsys):
    address, _ = serve([job_event(1, "RUNNING"), job_event(2, "SUCCEEDED"), job_event(3, "RUNNING")])

    code = main(["watch", "7", "--server", address, "--insecure"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split()[2:4] for line in lines] == [["job", "7"], ["job", "7"]]
    assert [line.split()[0] for line in lines] == ["#1", "#2"], "each line shows its event id, for --from"


def test_watching_a_rerun_job_goes_on_past_the_end_the_rerun_undid(serve, capsys):
    address, _ = serve([job_event(1, "RUNNING"), job_event(2, "FAILED"), job_event(3, "RUNNING"),
                        job_event(4, "SUCCEEDED"), job_event(5, "RUNNING")])

    code = main(["watch", "7", "--server", address, "--insecure", "-o", "json"])

    assert code == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == [1, 2, 3, 4]
