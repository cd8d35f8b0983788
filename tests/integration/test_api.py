"""Bad requests get the right code and a message naming the field; nothing is half-stored.
Reflection and health work with no proto files at hand."""

import grpc
import pytest

from jobplane.client import FailedPrecondition, InvalidArgument, NotFound
from jobplane.v1 import job_pb2, job_pb2_grpc, provider_pb2, provider_pb2_grpc
from support import admin_channel, agent_certificate, agent_channel


@pytest.mark.parametrize("spec, words", [
    ({"name": "x", "tasks": []}, "spec.tasks: a job needs at least one task"),
    ({"name": "", "tasks": [{"name": "a", "command": ["true"]}]}, "spec.name: must not be empty"),
    ({"name": "x", "tasks": [{"name": "a", "command": ["true"], "after": ["nope"]}]}, "spec.tasks[0].after[0]: unknown task 'nope'"),
    ({"name": "x", "tasks": [{"name": "a", "command": ["true"], "after": ["b"]},
                             {"name": "b", "command": ["true"], "after": ["a"]}]}, "dependency cycle"),
])
def test_bad_job_is_rejected_and_nothing_is_stored(cluster, spec, words):
    with pytest.raises(InvalidArgument) as err:
        cluster.client.submit_job(spec)
    assert words in err.value.message
    assert list(cluster.client.list_jobs()) == []


def test_unknown_and_malformed_ids(cluster):
    with pytest.raises(NotFound, match="job 999 not found"):
        cluster.client.get_job("999")
    with pytest.raises(InvalidArgument, match="job_id: 'abc' is not a job id"):
        cluster.client.get_job("abc")
    with pytest.raises(NotFound):
        cluster.client.cancel_job("999")
    with pytest.raises(NotFound):
        list(cluster.client.list_tasks("999"))
    with pytest.raises(NotFound):
        cluster.client.get_provider("ghost")


def test_bad_list_arguments(cluster):
    with admin_channel(cluster.server) as channel:
        stub = job_pb2_grpc.JobServiceStub(channel)
        for request, words in [
            (job_pb2.ListJobsRequest(page_size=-1), "page_size: must be >= 0"),
            (job_pb2.ListJobsRequest(page_token="garbage"), "page_token: not a token"),
            (job_pb2.ListJobsRequest(filter="colour=red"), "filter: position 0: unknown key 'colour'"),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                stub.ListJobs(request, timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert words in err.value.details()


def test_cancel_of_a_finished_job_is_a_failed_precondition(cluster):
    cluster.add_agent("a")
    job = cluster.client.submit_job({"name": "quick", "tasks": [{"name": "t", "command": ["true"]}]})
    cluster.client.wait_job(job.id, timeout=60)
    with pytest.raises(FailedPrecondition, match="already finished"):
        cluster.client.cancel_job(job.id)


def test_list_jobs_pages_and_filters(cluster):
    ids = [cluster.client.submit_job({"name": f"n{i}", "wait_for_providers": True,
                                      "tasks": [{"name": "t", "command": ["true"]}]}).id
           for i in range(5)]
    assert [j.id for j in cluster.client.list_jobs(page_size=2)] == ids[::-1]
    assert [j.spec.name for j in cluster.client.list_jobs(filter="name=n3")] == ["n3"]
    assert len(list(cluster.client.list_jobs(filter="status=WAITING"))) == 5
    assert list(cluster.client.list_jobs(filter="status=SUCCESS")) == []


@pytest.mark.parametrize("hello, code, words", [
    (provider_pb2.Hello(name="bad name!", slots=1, heartbeat_interval_seconds=1), "INVALID_ARGUMENT", "hello.name"),
    (provider_pb2.Hello(name="ok", slots=-2, heartbeat_interval_seconds=1), "INVALID_ARGUMENT", "hello.slots"),
    (provider_pb2.Hello(name="ok", slots=1, heartbeat_interval_seconds=0), "INVALID_ARGUMENT", "hello.heartbeat"),
    (provider_pb2.Hello(name="ok", slots=1, heartbeat_interval_seconds=1, queue_ahead=-1), "INVALID_ARGUMENT",
     "hello.queue_ahead: must be between 0 (none) and 10000, got -1"),
])
def test_bad_agent_hello_is_refused(cluster, hello, code, words):
    with agent_channel(cluster.server, *agent_certificate(cluster.server, "ok")) as channel:
        stub = provider_pb2_grpc.ProviderServiceStub(channel)
        stream = stub.Connect(iter([provider_pb2.ConnectRequest(hello=hello)]), timeout=10)
        with pytest.raises(grpc.RpcError) as err:
            next(stream)
    assert err.value.code().name == code and words in err.value.details()
    assert list(cluster.client.list_providers()) == []


@pytest.mark.server_args("--insecure")  # with certificates, a name is proven: a new stream takes over
def test_second_agent_with_a_connected_name_is_refused(cluster):
    cluster.add_agent("a")
    stub = provider_pb2_grpc.ProviderServiceStub(admin_channel(cluster.server))
    hello = provider_pb2.Hello(name="a", slots=1, heartbeat_interval_seconds=1)
    stream = stub.Connect(iter([provider_pb2.ConnectRequest(hello=hello)]), timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        next(stream)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS and "--name" in err.value.details()


def test_reflection_lists_the_services_and_health_is_serving(cluster):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    # Reflection and health need no token (TLS still applies), as for grpcurl and buf curl.
    channel = grpc.secure_channel(cluster.server.address, grpc.ssl_channel_credentials(cluster.server.ca.read_bytes()))
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for s in next(responses).list_services_response.service}
    assert {"jobplane.v1.JobService", "jobplane.v1.TaskService", "jobplane.v1.ProviderService",
            "jobplane.v1.ContinuationService", "jobplane.v1.SecurityService", "jobplane.v1.EventService",
            "grpc.health.v1.Health"} <= names
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(service="jobplane.v1.JobService"), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    channel.close()


def test_an_agents_pings_do_not_end_a_stream_on_which_the_server_says_nothing_for_a_while(sqlite_cluster):
    """Agents ping every second (as often as they heartbeat) to notice a frozen server; a server
    busy for seconds sends them nothing meanwhile, and must not end their stream for it (gRPC's
    GOAWAY "too_many_pings", which a 5 s ping allowance gave after 3 s)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from jobplane.agent.link import link_options

    server = sqlite_cluster.server
    channel = grpc.secure_channel(server.address, grpc.ssl_channel_credentials(server.ca.read_bytes()),
                                  options=link_options(1.0))
    # A health watch says SERVING once, then nothing while the status stays the same.
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=6)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as ended:
        next(watch)
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, ended.value.details()
    channel.close()
