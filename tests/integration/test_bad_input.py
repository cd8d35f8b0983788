"""Bad input against a real server: each gets INVALID_ARGUMENT (or UNAUTHENTICATED first)
with the field's path and the limit, never UNKNOWN or INTERNAL, nothing is stored, and the
server carries on (issue 14: the exact inputs that used to fail)."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from jobplane.v1 import conflict_pb2, conflict_pb2_grpc, continuation_pb2, continuation_pb2_grpc
from jobplane.v1 import job_pb2, job_pb2_grpc, security_pb2, security_pb2_grpc, task_pb2, task_pb2_grpc
from jobplane.v1 import view_pb2, view_pb2_grpc
from support import ServerProc, admin_channel

ROLE_SUBMITTER, ROLE_AGENT = 3, 5
OUT_OF_RANGE = [(2**62, 0), (0, -1), (0, 10**9)]  # seconds, nanos


def refusal(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def invalid(call, field: str) -> str:
    """The details of an INVALID_ARGUMENT naming `field` first; fails on any other outcome."""
    error = refusal(call)
    assert (error.code(), error.details().split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, field), \
        f"{field}: {error.code()} {error.details()[:300]}"
    return error.details()


def task(**fields) -> job_pb2.TaskSpec:
    return job_pb2.TaskSpec(**{"name": "t", "command": ["true"], **fields})


def spec(*tasks: job_pb2.TaskSpec, **fields) -> job_pb2.JobSpec:
    return job_pb2.JobSpec(**{"name": "j", "wait_for_providers": True, **fields}, tasks=list(tasks) or [task()])


def raw_call(channel: grpc.Channel, method: str):
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def healthy(server: ServerProc) -> bool:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with admin_channel(server) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return answer.status == health_pb2.HealthCheckResponse.SERVING


# ----- bodies that do not decode -------------------------------------------------------

def test_a_corrupt_body_is_unauthenticated_without_a_token_and_invalid_with_one(sqlite_cluster):
    server = sqlite_cluster.server
    with grpc.secure_channel(server.address, grpc.ssl_channel_credentials(server.ca.read_bytes())) as anonymous:
        error = refusal(lambda: raw_call(anonymous, "/jobplane.v1.JobService/GetJob")(b"\xff", timeout=10))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        # Enroll needs no credential (its join token is in the body): the body is all there is to refuse
        invalid(lambda: raw_call(anonymous, "/jobplane.v1.SecurityService/Enroll")(b"\xff", timeout=10), "request")
    with admin_channel(server) as channel:
        details = invalid(lambda: raw_call(channel, "/jobplane.v1.JobService/GetJob")(b"\xff", timeout=10), "request")
        assert "jobplane.v1.GetJobRequest" in details
        for method in ("/jobplane.v1.EventService/WatchEvents", "/jobplane.v1.JobService/WatchEvents"):
            stream = channel.unary_stream(method, request_serializer=None, response_deserializer=None)
            invalid(lambda: next(stream(b"\xff", timeout=10)), "request")
    assert healthy(server)
    assert "Traceback" not in server.output()


@pytest.mark.server_args("--insecure")
def test_a_corrupt_body_is_invalid_argument_on_an_insecure_server(sqlite_cluster):
    with admin_channel(sqlite_cluster.server) as channel:
        for method in ("/jobplane.v1.JobService/GetJob", "/jobplane.v1.JobService/SubmitJob",
                       "/jobplane.v1.SecurityService/CreateToken"):
            invalid(lambda: raw_call(channel, method)(b"\xff", timeout=10), "request")
    assert "Traceback" not in sqlite_cluster.server.output()


# ----- times, numbers, depths ----------------------------------------------------------

def test_out_of_range_timestamps_name_their_field_and_store_nothing(sqlite_cluster):
    with admin_channel(sqlite_cluster.server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        conflicts = conflict_pb2_grpc.ConflictServiceStub(channel)
        plans = continuation_pb2_grpc.ContinuationServiceStub(channel)
        for seconds, nanos in OUT_OF_RANGE:
            # (the deprecated flat start_by and give_up_after are still read, for one release)
            for name in ("lateness.start_by", "lateness.finish_by", "hold_until", "give_up.time", "start_by",
                         "give_up_after"):
                bad = spec()
                stamp = functools.reduce(getattr, name.split("."), bad)
                stamp.seconds, stamp.nanos = seconds, nanos
                invalid(lambda: jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=bad), timeout=10), f"spec.{name}")
                invalid(lambda: conflicts.CheckConflicts(conflict_pb2.CheckConflictsRequest(spec=bad), timeout=10),
                        f"spec.{name}")
            bad_task = task()
            bad_task.lateness.finish_by.seconds, bad_task.lateness.finish_by.nanos = seconds, nanos
            invalid(lambda: jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(bad_task)), timeout=10),
                    "spec.tasks[0].lateness.finish_by")
            plan = continuation_pb2.PlanContinuationRequest(provider_id="p1")
            plan.at.seconds, plan.at.nanos = seconds, nanos
            invalid(lambda: plans.PlanContinuation(plan, timeout=10), "at")
        assert not jobs.ListJobs(job_pb2.ListJobsRequest(), timeout=10).jobs
    assert "Traceback" not in sqlite_cluster.server.output()


def test_filter_numbers_past_any_integer_column_are_invalid_arguments(cluster):
    with admin_channel(cluster.server) as channel:
        jobs, tasks = job_pb2_grpc.JobServiceStub(channel), task_pb2_grpc.TaskServiceStub(channel)
        for text in ("id=99999999999999999999999", "priority>1e300", "id=nan", "id!=inf"):
            details = invalid(lambda: jobs.ListJobs(job_pb2.ListJobsRequest(filter=text), timeout=10), "filter")
            assert "takes a number from" in details
        invalid(lambda: tasks.ListTasks(task_pb2.ListTasksRequest(filter="job=-1e30"), timeout=10), "filter")
        invalid(lambda: jobs.SummarizeJobs(job_pb2.SummarizeJobsRequest(filter="id>=1e19"), timeout=10), "filter")
        assert not jobs.ListJobs(job_pb2.ListJobsRequest(filter="id=9007199254740992"), timeout=10).jobs
        huge_token = job_pb2.ListJobsRequest(page_token="anAxOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk=")  # jp1:<23 digits>
        invalid(lambda: jobs.ListJobs(huge_token, timeout=10), "page_token")


def test_text_the_database_cannot_hold_is_refused_and_the_server_carries_on(cluster):
    """PostgreSQL refuses NUL characters and names longer than their column: a job named
    "a\\x00b", or a sweep value of 500 characters (in its tasks' names), stopped the server."""
    with admin_channel(cluster.server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        long_value = spec(task(matrix=[job_pb2.MatrixParameter(name="p", values_json=json.dumps(["v" * 500]))]))
        assert "at most 400" in invalid(lambda: jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=long_value), timeout=10),
                                        "spec.tasks[0].matrix[0].values_json")
        invalid(lambda: jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(name="a\x00b")), timeout=10), "spec.name")
        invalid(lambda: jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(labels={"k\x00": "v"})), timeout=10),
                "spec.labels['k\\x00']")
        invalid(lambda: jobs.ListJobs(job_pb2.ListJobsRequest(filter='name="a\x00b"'), timeout=10), "filter")
        invalid(lambda: jobs.CancelJob(job_pb2.CancelJobRequest(job_id="1", reason="\x00"), timeout=10), "reason")
        assert not jobs.ListJobs(job_pb2.ListJobsRequest(), timeout=10).jobs
    assert cluster.server.alive() and healthy(cluster.server)


def test_deep_json_and_runaway_regexes_are_invalid_arguments(sqlite_cluster):
    deep = "[" * 100_000 + "]" * 100_000
    version = struct_pb2.Struct()
    version.update({"kind": "executable", "name": "tool", "version_args": ["--version"], "version_regex": "(" * 1000})
    cases = [
        (task(command=[], python="m:f", args_json=deep), "spec.tasks[0].args_json"),
        (task(items_json=deep, chunk_size=1), "spec.tasks[0].items_json"),
        (task(matrix=[job_pb2.MatrixParameter(name="p", values_json=deep)]), "spec.tasks[0].matrix[0].values_json"),
        (task(prerequisites=[version]), "spec.tasks[0].prerequisites[0].version_regex"),
    ]
    with admin_channel(sqlite_cluster.server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        for bad, field in cases:
            invalid(lambda: jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(bad)), timeout=10), field)
        assert not jobs.ListJobs(job_pb2.ListJobsRequest(), timeout=10).jobs
    assert "Traceback" not in sqlite_cluster.server.output()


# ----- tokens --------------------------------------------------------------------------

def test_token_lifetimes_are_bounded_and_uses_are_for_join_tokens_only(sqlite_cluster):
    with admin_channel(sqlite_cluster.server) as channel:
        security = security_pb2_grpc.SecurityServiceStub(channel)
        before = len(security.ListTokens(security_pb2.ListTokensRequest(), timeout=10).tokens)
        for ttl in (1e300, float("inf"), float("nan"), -1):
            invalid(lambda: security.CreateToken(security_pb2.CreateTokenRequest(
                role=ROLE_SUBMITTER, user="u", ttl_seconds=ttl), timeout=10), "ttl_seconds")
        details = invalid(lambda: security.CreateToken(security_pb2.CreateTokenRequest(
            role=ROLE_SUBMITTER, user="u", uses=2), timeout=10), "uses")
        assert "only join tokens" in details
        assert len(security.ListTokens(security_pb2.ListTokensRequest(), timeout=10).tokens) == before
        join = security.CreateToken(security_pb2.CreateTokenRequest(role=ROLE_AGENT, uses=2), timeout=10).token
        assert join.uses_left == 2


def test_a_stored_token_with_an_absurd_expiry_and_uses_still_lists_and_works(tmp_path, db_url):
    """Rows an older server wrote (it stored ttl_seconds=1e300 and API-token uses) must not
    break ListTokens, before or after a restart."""
    from jobplane.server.security.tokens import TokenKind, hash_secret, new_token
    from jobplane.server.store.db import open_database
    from jobplane.server.store.models import TokenRow
    from jobplane.server.store.repo import Store

    server = ServerProc(tmp_path, db_url)
    server.stop()
    secret, token_id = new_token(TokenKind.USER)
    store = Store(open_database(db_url))
    TokenRow.insert(id=token_id, secret_hash=hash_secret(secret), role=ROLE_SUBMITTER, user="old", groups="[]",
                    name_prefix="", create_time=time.time(), expire_time=1e300, uses_left=2, revoked=0,
                    created_by="an older server").execute()
    store.close()
    server = ServerProc(tmp_path, db_url)
    try:
        with admin_channel(server) as channel:
            tokens = security_pb2_grpc.SecurityServiceStub(channel).ListTokens(
                security_pb2.ListTokensRequest(), timeout=10).tokens
        (old,) = [t for t in tokens if t.id == token_id]
        assert old.expire_time.ToDatetime().year == 9999  # as far as a Timestamp goes
        assert old.uses_left == -1  # API tokens are not counted, and the listing says so
        creds = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(server.ca.read_bytes()),
                                                   grpc.access_token_call_credentials(secret))
        with grpc.secure_channel(server.address, creds) as channel:
            jobs = job_pb2_grpc.JobServiceStub(channel)
            for _ in range(4):
                jobs.ListJobs(job_pb2.ListJobsRequest(), timeout=10)
    finally:
        server.stop()


# ----- sizes ---------------------------------------------------------------------------

def test_oversized_filter_and_order_by_name_the_field_and_its_limit(sqlite_cluster):
    huge = "x" * 1_000_000
    with admin_channel(sqlite_cluster.server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        calls = [
            (lambda: jobs.ListJobs(job_pb2.ListJobsRequest(filter=huge), timeout=10), "filter", "4096"),
            (lambda: jobs.ListJobs(job_pb2.ListJobsRequest(order_by=huge), timeout=10), "order_by", "256"),
            (lambda: jobs.SummarizeJobs(job_pb2.SummarizeJobsRequest(filter=huge), timeout=10), "filter", "4096"),
            (lambda: task_pb2_grpc.TaskServiceStub(channel).ListTasks(
                task_pb2.ListTasksRequest(order_by=huge), timeout=10), "order_by", "256"),
            (lambda: security_pb2_grpc.SecurityServiceStub(channel).ListAuditRecords(
                security_pb2.ListAuditRecordsRequest(filter=huge), timeout=10), "filter", "4096"),
            (lambda: view_pb2_grpc.ViewServiceStub(channel).SaveView(view_pb2.SaveViewRequest(view=view_pb2.View(
                name="v", resource=view_pb2.VIEW_RESOURCE_JOBS, filter=huge)), timeout=10), "view.filter", "4096"),
            (lambda: view_pb2_grpc.ViewServiceStub(channel).GetView(view_pb2.GetViewRequest(name=huge), timeout=10),
             "name", "64"),
        ]
        for call, field, limit in calls:
            details = invalid(call, field)
            assert limit in details and len(details) < 1000


def test_a_sweep_or_items_too_big_are_refused_before_anything_is_expanded(sqlite_cluster):
    server = sqlite_cluster.server
    axes = [job_pb2.MatrixParameter(name=f"p{k}", values_json=json.dumps(list(range(100)))) for k in range(4)]
    two_million = "[" + ",".join(["0"] * 2_000_000) + "]"
    two_hundred_thousand = "[" + ",".join(["0"] * 200_000) + "]"
    before = peak_rss(server.pid)
    with admin_channel(server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        # a deadline of a few seconds: expanding these took 26 to 50 CPU-seconds before
        details = invalid(lambda: jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=spec(task(matrix=axes))), timeout=5),
                          "spec.tasks[0].matrix")
        assert "expands to 100000000 tasks" in details and "--max-tasks-per-job" in details
        details = invalid(lambda: jobs.SubmitJob(job_pb2.SubmitJobRequest(
            spec=spec(task(items_json=two_hundred_thousand, chunk_size=1))), timeout=5), "spec.tasks[0].items_json")
        assert "expands to 200000 tasks" in details
        invalid(lambda: jobs.SubmitJob(job_pb2.SubmitJobRequest(
            spec=spec(task(items_json=two_million, chunk_size=1))), timeout=5), "spec")
        assert not jobs.ListJobs(job_pb2.ListJobsRequest(), timeout=10).jobs
    assert peak_rss(server.pid) - before < 64 * 1024 * 1024, "the server's peak RSS grew by more than 64 MiB"
    assert healthy(server)


@pytest.mark.server_args("--max-tasks-per-job", "3")
def test_max_tasks_per_job_is_the_servers_flag(sqlite_cluster):
    client = sqlite_cluster.client
    three = {"name": "a", "command": ["true"], "matrix": {"p": [1, 2, 3]}}
    assert client.submit_job({"name": "ok", "wait_for_providers": True, "tasks": [three]}).counts.total == 3
    with admin_channel(sqlite_cluster.server) as channel:
        four = spec(task(matrix=[job_pb2.MatrixParameter(name="p", values_json="[1,2,3,4]")]))
        details = invalid(lambda: job_pb2_grpc.JobServiceStub(channel).SubmitJob(
            job_pb2.SubmitJobRequest(spec=four), timeout=10), "spec.tasks[0].matrix")
        assert "more than the 3" in details


def test_oversized_fields_are_refused_at_submit_with_their_path(sqlite_cluster):
    big = "x" * (1024 * 1024)
    cases = [
        (spec(task(env={"BIG": big[:200_000]})), "spec.tasks[0].env['BIG']", "at most 131072"),
        (spec(task(command=["echo", big[:200_000]])), "spec.tasks[0].command[1]", "at most 131072"),
        (spec(task(command=["echo"] + [big[:120_000]] * 5)), "spec.tasks[0].command", "add up to"),
        (spec(task(env={"K": "a\x00b"})), "spec.tasks[0].env['K']", "NUL"),
        (spec(task(cwd=big[:5000])), "spec.tasks[0].cwd", "at most 4096"),
        (spec(labels={"team": big[:5000]}), "spec.labels['team']", "at most 4096"),
        (spec(task(items_json=json.dumps([big[:600_000], big[:600_000]]), chunk_size=1)), "spec", "at most 1048576"),
        (spec(task(command=["echo", "{p}" * 400], matrix=[job_pb2.MatrixParameter(
            name="p", values_json=json.dumps(["short", big[:390]]))])), "spec.tasks[0].command[1]", "in task t["),
        (spec(task(timeout_seconds=1e300)), "spec.tasks[0].timeout_seconds", "at most 315360000"),
    ]
    with admin_channel(sqlite_cluster.server) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        for bad, field, words in cases:
            assert words in invalid(lambda: jobs.SubmitJob(job_pb2.SubmitJobRequest(spec=bad), timeout=10), field)
        assert not jobs.ListJobs(job_pb2.ListJobsRequest(), timeout=10).jobs


@pytest.mark.server_args("--max-message-bytes", str(3 * 1024 * 1024))
def test_lists_page_by_size_so_big_jobs_never_break_them(sqlite_cluster):
    """Four jobs of 0.9 MiB each are more than one 3 MiB response holds: the list pages."""
    client = sqlite_cluster.client
    items = json.dumps(["x" * 1000] * 900)
    ids = {client.submit_job(spec(task(items_json=items, chunk_size=100), name=f"big{i}")).id for i in range(4)}
    with admin_channel(sqlite_cluster.server) as channel:
        stub = job_pb2_grpc.JobServiceStub(channel)
        first = stub.ListJobs(job_pb2.ListJobsRequest(page_size=100, full=True), timeout=10)
        summaries = stub.ListJobs(job_pb2.ListJobsRequest(page_size=100), timeout=10)
    assert 0 < len(first.jobs) < 4 and first.next_page_token
    assert len(summaries.jobs) == 4 and not summaries.next_page_token  # without their specs' tasks, they fit
    assert {j.id for j in client.list_jobs()} == ids
    assert len(list(client.list_tasks(filter="name=t*"))) == 4 * 9


def test_a_corrupt_message_after_the_hello_ends_the_agent_stream_with_invalid_argument(sqlite_cluster):
    from jobplane.v1 import provider_pb2
    from support import agent_certificate, agent_channel

    hello = provider_pb2.ConnectRequest(hello=provider_pb2.Hello(name="raw", slots=1, heartbeat_interval_seconds=5))
    with agent_channel(sqlite_cluster.server, *agent_certificate(sqlite_cluster.server, "raw")) as channel:
        connect = channel.stream_stream("/jobplane.v1.ProviderService/Connect", request_serializer=None,
                                        response_deserializer=provider_pb2.ConnectResponse.FromString)
        responses = connect(iter([hello.SerializeToString(), b"\xff"]), timeout=30)
        assert next(responses).WhichOneof("message") == "welcome"
        with pytest.raises(grpc.RpcError) as caught:
            for _ in responses:
                pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
