"""An agent given several server replicas finds the leader: a follower's refusal names it (as
replicas-design.md says a follower answers Connect: UNAVAILABLE with the leader's agent address
in the trailing metadata), and when the leader is gone the agent moves on, keeping its running
tasks. Followers and leaders here are real gRPC servers playing the contract (support_standin);
tests/integration/test_replica_clients.py runs agents against real jobplane servers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from support_standin import DEADLINE, STARTED, StandIn

from jobplane.agent import Agent, AgentConfig
from jobplane.agent.identity import Identity
from jobplane.agent.replicas import Targets
from jobplane.replicas import LEADER_ADDRESS, LEADER_AGENT_ADDRESS
from jobplane.v1 import provider_pb2_grpc


class Follower(provider_pb2_grpc.ProviderServiceServicer):
    """A replica that does not lead: it refuses every agent stream, naming `leader`."""

    def __init__(self) -> None:
        self.leader = ""
        self.refused = 0
        self.refusal = asyncio.Event()

    async def Connect(self, request_iterator, context):
        self.refused += 1
        self.refusal.set()
        await context.abort(grpc.StatusCode.UNAVAILABLE,
                            f"this replica does not lead; the leader is {self.leader or 'not known yet'}",
                            trailing_metadata=((LEADER_AGENT_ADDRESS, self.leader), (LEADER_ADDRESS, self.leader)))


async def serve(servicer) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    provider_pb2_grpc.add_ProviderServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def test_a_follower_sends_the_agent_to_the_leader_and_a_new_leader_gets_its_running_task(tmp_path):
    async def scenario(follower, first, second, addresses, running):
        stream = await first.next_stream()  # the follower named the first leader
        stream.auto_ack = True
        stream.assign("1", command=["sleep", "300"])
        await stream.report("1", STARTED)
        follower.leader = addresses["second"]
        await addresses["first server"].stop(None)  # the leader dies; the follower names another
        return await second.next_stream()

    hello = with_replicas(tmp_path, scenario, leader="first").hello

    assert [(a.task_id, a.attempt) for a in hello.running] == [("1", 1)], "the running task is kept"


def test_while_no_replica_leads_the_agent_asks_again_until_one_does(tmp_path):
    async def scenario(follower, first, second, addresses, running):
        while follower.refused < 3:  # each refusal says nobody leads
            follower.refusal.clear()
            await asyncio.wait_for(follower.refusal.wait(), DEADLINE)
            assert not running.done(), "the agent gave up"
        follower.leader = addresses["first"]
        return await first.next_stream()

    stream = with_replicas(tmp_path, scenario, leader="")
    assert stream.hello.name == "a1"


def with_replicas(work_dir: Path, scenario, *, leader: str) -> object:
    """Run `scenario(follower, first, second, addresses, running)`: an agent given only the
    follower's address, which names the `leader` ("first", or "" for nobody)."""

    async def main() -> object:
        follower, first, second = Follower(), StandIn(), StandIn()
        servers = [await serve(servicer) for servicer in (follower, first, second)]
        addresses = {"first": servers[1][1], "second": servers[2][1], "first server": servers[1][0]}
        follower.leader = addresses.get(leader, "")
        agent = Agent(AgentConfig(server=servers[0][1], name="a1", slots=2, heartbeat_interval=0.2,
                                  kill_grace=1.0, insecure=True, work_dir=str(work_dir)))
        running = asyncio.create_task(agent.run())
        try:
            return await scenario(follower, first, second, addresses, running)
        finally:
            await agent.stop()
            for server, _ in servers:
                await server.stop(None)

    return asyncio.run(asyncio.wait_for(main(), 2 * DEADLINE))


# Where the link goes next (agent/replicas.py), step by step.


def test_a_redirect_is_followed_at_once_and_joins_the_list():
    targets = Targets(["a:1", "b:1"])
    assert targets.redirected("a:1", "c:2") is True
    assert targets.current == "c:2"
    targets.lost("c:2")  # the leader died
    assert targets.current == "a:1", "on through the list, the leader it learnt included"
    assert targets.in_order() == ["a:1", "b:1", "c:2"]


def test_a_redirect_right_after_a_redirect_waits_for_the_backoff():
    targets = Targets(["a:1", "b:1"])
    assert targets.redirected("a:1", "b:1") is True
    assert targets.redirected("b:1", "a:1") is False, "two followers that disagree do not bounce the link"
    assert targets.current == "a:1", "the newest redirect is tried after the pause"
    assert targets.redirected("a:1", "b:1") is True, "after a pause the next redirect is followed at once"


def test_a_redirect_that_cannot_help_moves_on_after_the_backoff():
    targets = Targets(["a:1", "b:1", "c:1"])
    assert targets.redirected("a:1", "") is False and targets.current == "b:1", "nobody leads: the next one"
    targets.lost("b:1")
    assert targets.redirected("c:1", "b:1") is False, "it names the replica that just failed"
    assert targets.current == "a:1"
    targets.welcomed()
    assert targets.redirected("a:1", "b:1") is True, "after a welcome, every replica is worth a try again"


def test_an_agent_needs_at_least_one_address():
    with pytest.raises(ValueError, match="server: must be HOST:PORT"):
        AgentConfig(server=" , ", insecure=True)
    config = AgentConfig(server="a:7070, b:7070", insecure=True)
    assert config.server == "a:7070, b:7070"


def test_the_address_of_a_replica_is_its_host_and_the_agent_port_at_the_enrolled_distance():
    # Enrolled with h:7070, whose agent port is 7071.
    identity = Identity(name="a1", server="h:7070", agent_port=7071, key_pem=b"", cert_pem=b"", ca_pem=b"",
                        received=0.0)
    assert identity.agent_address("h:7070") == "h:7071"
    assert identity.agent_address("other:7070") == "other:7071"
    assert identity.agent_address("h:7080") == "h:7081", "three replicas on one machine"
    assert identity.agent_address("[::1]:7090") == "[::1]:7091"
