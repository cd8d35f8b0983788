"""`jobplane servers list` over a real gRPC channel to a scripted ServerService answering as
replicas-design.md says a replica does (tests/system/test_replicas_failover.py runs it against
real replicas), and to one that predates replicas."""

from __future__ import annotations

import json
import re
import time
from concurrent import futures

import grpc
import pytest

from jobplane.client.cli import main
from jobplane.v1 import server_pb2, server_pb2_grpc

LEADER_ID, FOLLOWER_ID, GONE_ID = "6f1c2a9e-0000-4000-8000-000000000001", "0b7d44aa-0000-4000-8000-000000000002", \
    "c3e8f1d0-0000-4000-8000-000000000003"


def stamp(seconds_from_now: float):
    from google.protobuf import timestamp_pb2

    value = timestamp_pb2.Timestamp()
    value.FromNanoseconds(int((time.time() + seconds_from_now) * 1e9))
    return value


class Replicas(server_pb2_grpc.ServerServiceServicer):
    def ListServers(self, request, context):
        return server_pb2.ListServersResponse(answered_by="b:7070", servers=[
            server_pb2.ServerReplica(id=LEADER_ID, address="a:7070", agent_address="a:7071",
                                     role=server_pb2.SERVER_ROLE_LEADER, epoch=4, lease_renew_time=stamp(-0.5),
                                     lease_expire_time=stamp(30), last_seen_time=stamp(-0.5), version="0.1.0"),
            server_pb2.ServerReplica(id=FOLLOWER_ID, address="b:7070", agent_address="b:7071",
                                     role=server_pb2.SERVER_ROLE_FOLLOWER, last_seen_time=stamp(-0.2),
                                     version="0.1.0"),
            server_pb2.ServerReplica(id=GONE_ID, address="c:7070", agent_address="c:7071",
                                     role=server_pb2.SERVER_ROLE_GONE, last_seen_time=stamp(-600), version="0.1.0"),
        ])


@pytest.fixture
def serve():
    servers = []

    def start(servicer=None) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        if servicer is not None:
            server_pb2_grpc.add_ServerServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(None)


def test_the_leader_comes_first_with_its_epoch_and_lease(serve, capsys):
    address = serve(Replicas())

    code = main(["servers", "list", "--server", address, "--insecure"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].split()[:4] == ["ID", "ADDRESS", "ROLE", "EPOCH"]
    leader, follower, gone = (line.split() for line in lines[1:4])
    assert leader[:4] == [LEADER_ID[:8], "a:7070", "LEADER", "4"]
    assert re.search(r" ago .*\bin \d+s ", lines[1]), "when it renewed the lease, when the lease runs out"
    assert follower[:4] == [FOLLOWER_ID[:8], "b:7070", "FOLLOWER", "-"]
    assert gone[:3] == [GONE_ID[:8], "c:7070", "GONE"] and "10m ago" in lines[3]
    assert lines[-1] == "answered by b:7070"


def test_json_lists_every_replica_in_full(serve, capsys):
    address = serve(Replicas())

    code = main(["servers", "list", "--server", address, "--insecure", "-o", "json"])

    listed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(s["id"], s["role"], s["agent_address"]) for s in listed] == [
        (LEADER_ID, "LEADER", "a:7071"), (FOLLOWER_ID, "FOLLOWER", "b:7071"),
        (GONE_ID, "GONE", "c:7071")]
    assert listed[0]["epoch"] == 4


def test_a_server_older_than_replicas_is_said_to_know_none(serve, capsys):
    address = serve()  # no ServerService: UNIMPLEMENTED, as a server from before issue 16 answers

    code = main(["servers", "list", "--server", address, "--insecure"])

    err = capsys.readouterr().err
    assert code == 3
    assert f"the server at {address} does not know about replicas" in err
