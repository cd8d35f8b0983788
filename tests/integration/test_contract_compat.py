"""The previous release's contract still works for one release: what an older agent or SDK
sends is understood, through a real server and a real stream."""

from __future__ import annotations

import json
import queue

import grpc
import pytest

from jobplane.v1 import event_pb2, event_pb2_grpc, job_pb2, job_pb2_grpc, provider_pb2, provider_pb2_grpc
from support import admin_channel, agent_certificate, agent_channel, wait_until

SUCCEEDED = 5  # TASK_STATE_SUCCEEDED
JOB_SUCCEEDED = 3


def test_an_agent_of_the_previous_release_reports_in_the_flat_form_tagged_by_kind(sqlite_cluster):
    outgoing: queue.Queue = queue.Queue()
    hello = provider_pb2.Hello(name="old", slots=1, heartbeat_interval_seconds=5)
    outgoing.put(provider_pb2.ConnectRequest(hello=hello))
    with agent_channel(sqlite_cluster.server, *agent_certificate(sqlite_cluster.server, "old")) as channel:
        stream = provider_pb2_grpc.ProviderServiceStub(channel).Connect(iter(outgoing.get, None), timeout=60)
        try:
            assert next(stream).WhichOneof("message") == "welcome"
            outgoing.put(provider_pb2.ConnectRequest(ready=provider_pb2.Ready(free_slots=1)))
            job = sqlite_cluster.client.submit_job({"name": "j", "tasks": [{"name": "t", "command": ["true"]}]})
            (assignment,) = next(m for m in stream if m.WhichOneof("message") == "assign").assign.assignments
            key = {"task_id": assignment.task_id, "attempt": assignment.attempt}
            legacy = [
                provider_pb2.TaskReport(**key, kind=provider_pb2.TASK_REPORT_KIND_STARTED),
                provider_pb2.TaskReport(**key, kind=provider_pb2.TASK_REPORT_KIND_CHECKPOINT, checkpoint_json='{"i": 1}'),
                provider_pb2.TaskReport(**key, kind=provider_pb2.TASK_REPORT_KIND_FINISHED, exit_code=0,
                                        outcome=provider_pb2.ATTEMPT_OUTCOME_SUCCEEDED, stdout_tail="old\n"),
            ]
            outgoing.put(provider_pb2.ConnectRequest(reports=provider_pb2.TaskReports(seq=1, reports=legacy)))
            ack = next(m for m in stream if m.WhichOneof("message") == "ack").ack
            assert (ack.seq, list(ack.rejected)) == (1, [])
        finally:
            outgoing.put(None)
            stream.cancel()
    task = wait_until(lambda: next((t for t in sqlite_cluster.client.list_tasks(job.id) if t.state == SUCCEEDED), None),
                      30, "the task to succeed on the old agent's report")
    assert (task.exit_code, task.stdout_tail, task.checkpoint_json) == (0, "old\n", '{"i": 1}')


def test_the_deprecated_job_service_watch_streams_what_the_event_service_streams(sqlite_cluster):
    sqlite_cluster.add_agent("a", slots=1)
    job = sqlite_cluster.client.submit_job({"name": "j", "tasks": [{"name": "t", "command": ["true"]}]})
    wait_until(lambda: sqlite_cluster.client.get_job(job.id).state == JOB_SUCCEEDED, 30, "the job to succeed")
    old = job_pb2.JobServiceWatchEventsRequest(job_id=job.id)
    new = event_pb2.WatchEventsRequest(job_id=job.id)
    with admin_channel(sqlite_cluster.server) as channel:
        old_stream = job_pb2_grpc.JobServiceStub(channel).WatchEvents(old, timeout=10)
        new_stream = event_pb2_grpc.EventServiceStub(channel).WatchEvents(new, timeout=10)
        old_events, new_events = _until_job_end(old_stream), _until_job_end(new_stream)
    assert [(e.id, e.raw_status) for e in old_events] == [(e.id, e.raw_status) for e in new_events]
    assert ("SUCCEEDED", job.id) in [(e.raw_status, e.job_id) for e in old_events if e.kind == event_pb2.EVENT_KIND_JOB]


def _until_job_end(stream) -> list:
    events = []
    for response in stream:
        events += response.events
        if any(e.kind == event_pb2.EVENT_KIND_JOB and e.raw_status == "SUCCEEDED" for e in response.events):
            stream.cancel()
            return events
    return events


def test_an_sdk_of_the_previous_release_sends_lateness_and_give_up_in_the_flat_fields(sqlite_cluster):
    task = job_pb2.TaskSpec(name="t", command=["true"], max_runtime_seconds=60)
    old = job_pb2.JobSpec(name="old", tasks=[task], wait_for_providers=True, max_wait_seconds=30,
                          give_up_after_seconds=7200)
    with admin_channel(sqlite_cluster.server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        job = jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=old), timeout=10).job
        both = job_pb2.JobSpec(name="both", tasks=[task], max_wait_seconds=30,
                               lateness=job_pb2.Lateness(max_wait_seconds=30))
        with pytest.raises(grpc.RpcError) as err:
            jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=both), timeout=10)
        listed = jobs.ListJobs(job_pb2.ListJobsRequest(), timeout=10).jobs
    assert (job.spec.lateness.max_wait_seconds, job.spec.give_up.after_seconds) == (30, 7200)
    assert job.spec.tasks[0].lateness.max_runtime_seconds == 60
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("spec.max_wait_seconds: is deprecated and spec.lateness is set too")
    assert [j.spec.name for j in listed] == ["old"], "the refused job was not stored"


def test_locks_are_lock_modes_and_the_previous_releases_words_still_work(sqlite_cluster):
    task = job_pb2.TaskSpec(name="t", command=["true"])
    new = job_pb2.JobSpec(name="new", tasks=[task], wait_for_providers=True,
                          resource_locks={"ledger": job_pb2.LOCK_MODE_WRITE, "orders": job_pb2.LOCK_MODE_READ})
    old = job_pb2.JobSpec(name="old", tasks=[task], wait_for_providers=True, locks={"ledger": "read"})
    unspecified = job_pb2.JobSpec(name="bad", tasks=[task], resource_locks={"ledger": job_pb2.LOCK_MODE_UNSPECIFIED})
    with admin_channel(sqlite_cluster.server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        shown = [jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=s), timeout=10).job.spec for s in (new, old)]
        with pytest.raises(grpc.RpcError) as err:
            jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=unspecified), timeout=10)
    assert dict(shown[0].resource_locks) == {"ledger": job_pb2.LOCK_MODE_WRITE, "orders": job_pb2.LOCK_MODE_READ}
    assert dict(shown[1].resource_locks) == {"ledger": job_pb2.LOCK_MODE_READ}
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith('spec.resource_locks["ledger"]: 0 is not a lock mode; use LOCK_MODE_READ')


def test_retry_failures_pick_the_exit_codes_retried_as_retry_on_words_did(sqlite_cluster, tmp_path):
    sqlite_cluster.add_agent("a", slots=3)

    def job(name: str, **retry) -> str:
        command = ["sh", "-c", f"echo run >> {tmp_path / name}; exit 3"]
        task = job_pb2.TaskSpec(name="t", command=command, max_attempts=2, retry_backoff_seconds=0.01, **retry)
        return sqlite_cluster.client.submit_job(job_pb2.JobSpec(name=name, tasks=[task])).id

    ids = {"new": job("new", retry_failures=job_pb2.RetryFailures(exit_codes=[3])),
           "other": job("other", retry_failures=job_pb2.RetryFailures(exit_codes=[4])),
           "old": job("old", retry_on=["exit_code:3"])}
    for job_id in ids.values():
        sqlite_cluster.client.wait_job(job_id, timeout=60)
    runs = {name: (tmp_path / name).read_text().count("run") for name in ids}
    assert runs == {"new": 2, "other": 1, "old": 2}, "exit 3 is retried only where it is named"


def test_an_sdk_of_the_previous_release_sends_conditions_as_text(sqlite_cluster, tmp_path):
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"load_average": 9.0}))
    sqlite_cluster.add_agent("a", slots=1, extra=["--facts-file", str(facts), "--heartbeat", "0.2"])
    task = job_pb2.TaskSpec(name="t", command=["true"])
    job = sqlite_cluster.client.submit_job(job_pb2.JobSpec(name="old", conditions=["load_average<2"], tasks=[task]))
    assert list(job.spec.fact_conditions) == [
        job_pb2.FactCondition(fact="load_average", op=job_pb2.COMPARISON_LESS, value=2)]
    wait_until(lambda: any("load_average<2 (is 9)" in t.reason for t in sqlite_cluster.client.list_tasks(job.id)),
               30, "the task to be held for its condition")
    facts.write_text(json.dumps({"load_average": 0.1}))
    assert sqlite_cluster.client.wait_job(job.id, timeout=20).state == JOB_SUCCEEDED


def test_continuation_rule_kinds_are_an_enum_and_the_previous_releases_words_still_work(sqlite_cluster):
    task = job_pb2.TaskSpec(name="t", command=["true"])
    old = job_pb2.JobSpec(name="old", tasks=[task], wait_for_providers=True,
                          continuation_rules=[job_pb2.ContinuationRule(kind="cron", priority=1, value="0 * * * *")])
    kindless = job_pb2.JobSpec(name="bad", tasks=[task], continuation_rules=[job_pb2.ContinuationRule(priority=1)])
    with admin_channel(sqlite_cluster.server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        (rule,) = jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=old), timeout=10).job.spec.continuation_rules
        with pytest.raises(grpc.RpcError) as err:
            jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=kindless), timeout=10)
    assert (rule.rule_kind, rule.value, rule.kind) == (job_pb2.CONTINUATION_RULE_KIND_CRON, "0 * * * *", "")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("spec.continuation_rules[0].rule_kind: missing; use "
                                          "CONTINUATION_RULE_KIND_END_OF_MONTH")
