"""/metrics against a real server with real agents: scraped over HTTP, read with Prometheus's
own text parser, and the numbers move as the user sees the work move."""

from __future__ import annotations

import queue

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobplane.v1 import event_pb2, event_pb2_grpc, job_pb2, job_pb2_grpc, provider_pb2, provider_pb2_grpc
from support import admin_channel, agent_certificate, agent_channel, wait_until
from support_http import HTTP, get

pytestmark = pytest.mark.server_args(*HTTP)

SUBMIT = "/jobplane.v1.JobService/SubmitJob"
GET_JOB = "/jobplane.v1.JobService/GetJob"


def scrape(server) -> dict[tuple, float]:
    """Every sample as {(name, (label, value), ...): value}, parsed as Prometheus parses it."""
    reply = get(server, "/metrics")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(reply.body) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, *sorted(labels.items())), 0.0)


def test_a_job_moves_through_the_counts_as_it_runs(cluster, tmp_path):
    c = cluster
    before = scrape(c.server)
    assert value(before, "jobplane_up") == 1
    assert value(before, "jobplane_leader") == 1  # alone on its database: it leads
    assert value(before, "jobplane_lease_epoch") == (0 if c.db_url.startswith("sqlite") else 1)
    assert value(before, "jobplane_providers", state="ACTIVE") == 0
    c.add_agent("a", slots=1)
    wait_until(lambda: value(scrape(c.server), "jobplane_providers", state="ACTIVE") == 1, 10,
               "the agent counted as ACTIVE")  # (committed just after the engine says so)
    release = tmp_path / "go"
    wait = {"command": ["sh", "-c", f"while [ ! -e {release} ]; do sleep 0.05; done"]}
    job = c.client.submit_job({"name": "two", "tasks": [{"name": "t1", **wait}, {"name": "t2", **wait}]})

    def one_running():
        s = scrape(c.server)
        return s if value(s, "jobplane_tasks", status="RUNNING") == 1 else None

    running = wait_until(one_running, 30, "one task running on the one slot")
    assert value(running, "jobplane_queue_depth") == 1  # the other waits for the slot
    assert value(running, "jobplane_tasks", status="WAITING") == 1
    assert value(running, "jobplane_jobs", status="RUNNING") == 1
    release.touch()
    assert c.client.wait_job(job.id, timeout=30).state == job_pb2.JOB_STATE_SUCCEEDED
    after = scrape(c.server)
    assert value(after, "jobplane_jobs", status="SUCCESS") == 1
    assert value(after, "jobplane_jobs", status="RUNNING") == 0
    assert value(after, "jobplane_tasks", status="SUCCESS") == 2
    assert value(after, "jobplane_queue_depth") == 0
    assert value(after, "jobplane_rpcs_total", method=SUBMIT, code="OK") == 1
    assert value(after, "jobplane_events_total") > value(running, "jobplane_events_total") > 0
    commits = value(after, "jobplane_commit_seconds_count")
    assert commits > value(running, "jobplane_commit_seconds_count") > 0
    assert value(after, "jobplane_commit_seconds_bucket", le="+Inf") == commits
    assert value(after, "jobplane_commit_batch_operations_count") == commits
    assert value(after, "jobplane_commit_batch_operations_sum") > 0  # (a batch of audit records alone has none)
    for stage in ("assigned", "running"):  # each task got the slot; the second waited for the first to end
        name = f"jobplane_dispatch_{stage}_seconds"
        assert value(before, f"{name}_count") == 0
        assert value(running, f"{name}_count") == 1
        assert value(after, f"{name}_count") == value(after, f"{name}_bucket", le="+Inf") == 2
        assert value(after, f"{name}_sum") > value(running, f"{name}_sum")
    assert value(after, "jobplane_continued_tasks_total") == 0
    beats = wait_until(lambda: scrape(c.server) if value(scrape(c.server), "jobplane_heartbeat_handling_seconds_count")
                       else None, 30, "the agent's heartbeats counted")
    assert value(beats, "jobplane_heartbeat_handling_seconds_bucket", le="+Inf") == \
        value(beats, "jobplane_heartbeat_handling_seconds_count")


def test_work_no_provider_can_take_is_counted_per_requirement_set(sqlite_cluster):
    c = sqlite_cluster
    c.add_agent("a", slots=2, extra=["--cpus", "2"])  # free slots, but not the label the job wants
    job = c.client.submit_job({"name": "gpu", "wait_for_providers": True, "tasks": [
        {"name": f"t{i}", "command": ["true"], "requires": {"gpu": "a100"}} for i in range(3)]})
    c.client.submit_job({"name": "big", "tasks": [{"name": "big", "command": ["true"], "cpus": 64, "memory": 1024}]})
    wanted = {"labels": "gpu=a100", "prerequisites": "", "conditions": "", "resources": ""}
    wait_until(lambda: value(scrape(c.server), "jobplane_unplaceable_tasks", **wanted) == 3, 15,
               "three tasks counted unplaceable")
    too_big = {"labels": "", "prerequisites": "", "conditions": "", "resources": "cpus=64,memory=1024"}
    wait_until(lambda: value(scrape(c.server), "jobplane_unplaceable_tasks", **too_big) == 1, 15,
               "the task too big for every provider counted with its requests")
    c.add_agent("g", slots=3, labels={"gpu": "a100"})
    assert c.client.wait_job(job.id, timeout=30).state == job_pb2.JOB_STATE_SUCCEEDED
    wait_until(lambda: ("jobplane_unplaceable_tasks", *sorted(wanted.items())) not in scrape(c.server), 15,
               "the requirement set gone from the gauge")


def test_refused_calls_are_counted_by_method_and_code(sqlite_cluster):
    c = sqlite_cluster
    with admin_channel(c.server) as channel:
        stub = job_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            stub.GetJob(job_pb2.GetJobRequest(job_id="999"), timeout=10)
        with pytest.raises(grpc.RpcError):
            stub.GetJob(job_pb2.GetJobRequest(job_id="nope"), timeout=10)
    with grpc.secure_channel(c.server.address, grpc.ssl_channel_credentials(c.server.ca.read_bytes())) as anon:
        with pytest.raises(grpc.RpcError):
            job_pb2_grpc.JobServiceStub(anon).GetJob(job_pb2.GetJobRequest(job_id="1"), timeout=10)
    s = scrape(c.server)
    assert value(s, "jobplane_rpcs_total", method=GET_JOB, code="NOT_FOUND") == 1
    assert value(s, "jobplane_rpcs_total", method=GET_JOB, code="INVALID_ARGUMENT") == 1
    assert value(s, "jobplane_rpcs_total", method=GET_JOB, code="UNAUTHENTICATED") == 1


def test_watchers_are_counted_while_connected(sqlite_cluster):
    c = sqlite_cluster
    with admin_channel(c.server) as channel:
        stream = event_pb2_grpc.EventServiceStub(channel).WatchEvents(event_pb2.WatchEventsRequest(), timeout=30)
        wait_until(lambda: value(scrape(c.server), "jobplane_watchers") == 1, 10, "the watcher counted")
        stream.cancel()
    wait_until(lambda: value(scrape(c.server), "jobplane_watchers") == 0, 10, "the watcher gone")


def test_a_refused_agent_report_is_counted(sqlite_cluster):
    """An agent reporting on a task that is not its own is refused; /metrics counts it by code."""
    c = sqlite_cluster
    c.add_agent("b1", slots=1)
    job = c.client.submit_job({"name": "theirs", "tasks": [{"name": "t", "command": ["sleep", "300"]}]})
    wait_until(lambda: list(c.client.list_tasks(job.id))[0].state == 4, 30, "the task running on b1")
    (task,) = list(c.client.list_tasks(job.id))
    outgoing: queue.Queue = queue.Queue()
    outgoing.put(provider_pb2.ConnectRequest(hello=provider_pb2.Hello(name="a1", slots=1,
                                                                      heartbeat_interval_seconds=5)))
    with agent_channel(c.server, *agent_certificate(c.server, "a1")) as channel:
        stream = provider_pb2_grpc.ProviderServiceStub(channel).Connect(iter(outgoing.get, None), timeout=30)
        try:
            assert next(stream).WhichOneof("message") == "welcome"
            report = provider_pb2.TaskReport(task_id=task.id, attempt=1, kind=provider_pb2.TASK_REPORT_KIND_FINISHED,
                                             outcome=provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED)
            outgoing.put(provider_pb2.ConnectRequest(reports=provider_pb2.TaskReports(seq=1, reports=[report])))
            next(m for m in stream if m.WhichOneof("message") == "ack")
        finally:
            outgoing.put(None)
            stream.cancel()
    assert value(scrape(c.server), "jobplane_rejected_reports_total", code="PERMISSION_DENIED") == 1
    c.client.cancel_job(job.id)


def test_a_continuation_after_an_agent_is_killed_is_counted_with_its_time_to_restart(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    runs = tmp_path / "runs"  # each attempt appends a line when it starts
    job = c.client.submit_job({"name": "moved", "tasks": [{"name": "t", "command": [
        "sh", "-c", f"echo $JOBPLANE_ATTEMPT >> {runs}; [ $JOBPLANE_ATTEMPT = 2 ] || sleep 300"]}]})
    wait_until(lambda: runs.exists() and runs.read_text().split() == ["1"], 30, "the first attempt running on a")
    assert value(scrape(c.server), "jobplane_continuation_restart_seconds_count") == 0
    c.add_agent("b", slots=1)
    c.agents["a"].kill()  # kill -9: its task continues on b once a is LOST
    assert c.client.wait_job(job.id, timeout=60).state == job_pb2.JOB_STATE_SUCCEEDED
    assert runs.read_text().split() == ["1", "2"]
    after = scrape(c.server)
    assert value(after, "jobplane_continued_tasks_total") == 1
    assert value(after, "jobplane_continuation_restart_seconds_count") == 1
    assert value(after, "jobplane_continuation_restart_seconds_sum") > 0
    assert value(after, "jobplane_continuation_restart_seconds_bucket", le="+Inf") == 1


def test_connected_providers_silence_is_shown_per_provider(sqlite_cluster):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    silent = wait_until(lambda: ("jobplane_provider_silence_seconds", ("provider", "a")) in scrape(c.server), 10,
                        "a's silence shown")
    assert silent
    c.agents["a"].stop()
    wait_until(lambda: ("jobplane_provider_silence_seconds", ("provider", "a")) not in scrape(c.server), 30,
               "a gone from the gauge once disconnected")
