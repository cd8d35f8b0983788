"""The SDK's two clients offer the same calls, each defined once (client/calls.py): same names,
signatures and docstrings, blocking or asyncio; and `async with AsyncClient.connect(...)` works."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
from concurrent import futures

import grpc
import pytest

import jobplane.client
from jobplane.client import AsyncClient, Client
from jobplane.v1 import job_pb2, job_pb2_grpc

CALL_MODULES = [importlib.import_module(f"jobplane.client.{m.name}") for m in pkgutil.iter_modules(jobplane.client.__path__)
                if m.name == "calls" or m.name.startswith("calls_")]  # calls.py and each service's calls_*.py
DEFINITIONS = {name: build for module in CALL_MODULES for name, build in vars(module).items()
               if inspect.isfunction(build) and build.__module__ == module.__name__ and not name.startswith("_")
               and inspect.signature(build).return_annotation.split("[")[0] in ("Unary", "Paged", "Watch", "Logs")}


def public(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def test_both_clients_offer_every_call_defined_once_with_its_signature_and_docstring():
    assert len(DEFINITIONS) >= 40
    assert public(Client) == public(AsyncClient) == set(DEFINITIONS) | {"connect", "close", "wait", "wait_job"}
    for name, build in DEFINITIONS.items():
        expected = list(inspect.signature(build).parameters.values())
        for cls in (Client, AsyncClient):
            method = getattr(cls, name)
            assert method.__doc__ == build.__doc__ and method.__doc__, f"{cls.__name__}.{name}"
            assert list(inspect.signature(method).parameters.values())[1:] == expected, f"{cls.__name__}.{name}"
    assert inspect.iscoroutinefunction(AsyncClient.get_job) and not inspect.iscoroutinefunction(Client.get_job)
    assert inspect.signature(Client.get_job).return_annotation is job_pb2.Job


class Jobs(job_pb2_grpc.JobServiceServicer):
    def GetJob(self, request, context):
        if request.job_id != "7":
            context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.job_id} not found")
        return job_pb2.GetJobResponse(job=job_pb2.Job(id="7", state=job_pb2.JOB_STATE_RUNNING))


@pytest.fixture
def address():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    job_pb2_grpc.add_JobServiceServicer_to_server(Jobs(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_async_with_connect_gives_a_client_and_closes_it_after_the_block(address):
    async def run():
        async with AsyncClient.connect(address, insecure=True) as client:
            job = await client.get_job("7")
        with pytest.raises(Exception):  # the channel is closed
            await client.get_job("7")
        awaited = await AsyncClient.connect(address, insecure=True)  # the other way, as before
        async with awaited:
            return job, await awaited.get_job("7")

    assert asyncio.run(run()) == (job_pb2.Job(id="7", state=job_pb2.JOB_STATE_RUNNING),) * 2


def test_the_blocking_and_async_clients_give_the_same_answers_and_errors(address):
    from jobplane.client import NotFound

    with Client.connect(address, insecure=True) as client:
        assert client.get_job("7").state == job_pb2.JOB_STATE_RUNNING
        with pytest.raises(NotFound, match="job 8 not found"):
            client.get_job("8")

    async def run():
        async with AsyncClient.connect(address, insecure=True) as client:
            with pytest.raises(NotFound, match="job 8 not found"):
                await client.get_job("8")
            return (await client.get_job("7")).state

    assert asyncio.run(run()) == job_pb2.JOB_STATE_RUNNING
