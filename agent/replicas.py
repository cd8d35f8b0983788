"""Which server replica the agent's link tries next: it wants the leader.

Given several replicas (`--server a:7070,b:7070,c:7070`), only the one that leads takes the
agent's Connect stream. A follower refuses it with UNAVAILABLE and names the leader's agent
address in its trailing metadata (`jobplane.replicas.LEADER_AGENT_ADDRESS`; empty while no
replica leads). The link follows such a redirect at once. Any other failure, and a redirect
that cannot help (nobody leads, or it names a replica that just failed), moves it on to the
next address after its usual backoff: when the leader dies, the agent walks the list until a
replica takes it or points it at the new leader.
"""

from __future__ import annotations

import grpc

from jobplane.replicas import LEADER_AGENT_ADDRESS


def leader_named(error: grpc.aio.AioRpcError) -> str | None:
    """The leader's agent address a follower's refusal names ("" while nobody leads); None
    when the error is no such refusal."""
    for key, value in error.trailing_metadata() or ():
        if key == LEADER_AGENT_ADDRESS:
            return value.decode() if isinstance(value, bytes) else value
    return None


class Targets:
    """The agent addresses of the replicas, in the order the link tries them, and the one to
    try now. Leaders named by redirects join the list (a replica may advertise an address the
    agent was not given)."""

    def __init__(self, addresses: list[str]) -> None:
        if not addresses:
            raise ValueError("the agent needs the address of at least one server")
        self._addresses = list(addresses)
        self._current = 0
        # Addresses that failed since the last welcome: a redirect to one is not followed at once.
        self._unreachable: set[str] = set()
        # Whether the current address came from a redirect followed at once: the next redirect
        # waits for the backoff, so two followers that disagree cannot bounce the link to and fro.
        self._hopped = False

    @property
    def current(self) -> str:
        return self._addresses[self._current]

    @property
    def several(self) -> bool:
        return len(self._addresses) > 1

    def in_order(self) -> list[str]:
        """Every address, the current one first (where a renewal is sent)."""
        return self._addresses[self._current:] + self._addresses[:self._current]

    def welcomed(self) -> None:
        """The current address took the stream: it leads."""
        self._unreachable.clear()
        self._hopped = False

    def lost(self, address: str) -> None:
        """`address` failed (it is down, stopping, or broke the stream): try the next one."""
        self._unreachable.add(address)
        self._move_on(address)

    def redirected(self, by: str, leader: str) -> bool:
        """A follower at `by` refused the stream and named `leader` (empty: nobody leads yet).
        True when the link should try the leader at once; else it pauses first, and tries the
        leader then, or the next address when the redirect cannot help."""
        if not leader or leader in self._unreachable:
            self._move_on(by)
            return False
        if leader not in self._addresses:
            self._addresses.append(leader)
        self._current = self._addresses.index(leader)
        follow = not self._hopped
        self._hopped = follow  # once the link has paused, the next redirect is followed at once
        return follow

    def _move_on(self, failed: str) -> None:
        self._hopped = False
        if self.current == failed:
            self._current = (self._current + 1) % len(self._addresses)
