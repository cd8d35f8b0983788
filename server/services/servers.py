"""ServerService: the replicas sharing this database, as its lease and heartbeat rows say
(any replica answers, from the database); a single server on SQLite lists itself."""

from __future__ import annotations

import time
from collections.abc import Callable

from jobplane import __version__
from jobplane.v1 import server_pb2, server_pb2_grpc

from . import convert
from .base import Deps, rpc

GONE_AFTER = 3  # leases without a heartbeat after which a replica is listed as gone

ROLE_ORDER = {server_pb2.SERVER_ROLE_LEADER: 0, server_pb2.SERVER_ROLE_FOLLOWER: 1, server_pb2.SERVER_ROLE_GONE: 2}


class ServerService(server_pb2_grpc.ServerServiceServicer):
    def __init__(self, deps: Deps, replicas: Callable[[], tuple | None], me: Callable[[], server_pb2.ServerReplica]
                 ) -> None:
        self.d = deps
        self._replicas = replicas  # on a reader thread: (lease, its now), replica rows, lease seconds, my id
        self._me = me  # this server, for a single server on SQLite

    @rpc
    async def ListServers(self, request, context):
        found = await self.d.read(self._replicas)
        if found is None:
            me = self._me()
            return server_pb2.ListServersResponse(servers=[me], answered_by=me.id)
        (lease, now), rows, seconds, my_id = found
        servers = [_replica(row, lease, now, seconds) for row in rows]
        servers.sort(key=lambda s: (ROLE_ORDER[s.role], s.address))
        return server_pb2.ListServersResponse(servers=servers, answered_by=my_id)


def _replica(row, lease, now: float, seconds: float) -> server_pb2.ServerReplica:
    leads = row.id == lease.holder and lease.expires > now
    if leads:
        role = server_pb2.SERVER_ROLE_LEADER
    elif now - row.last_seen <= GONE_AFTER * seconds:
        role = server_pb2.SERVER_ROLE_FOLLOWER
    else:
        role = server_pb2.SERVER_ROLE_GONE
    message = server_pb2.ServerReplica(id=row.id, address=row.address, agent_address=row.agent_address, role=role,
                                       last_seen_time=convert.ts(row.last_seen), start_time=convert.ts(row.started),
                                       version=row.version)
    if leads:
        message.epoch = lease.epoch
        message.lease_renew_time.CopyFrom(convert.ts(lease.renewed))
        message.lease_expire_time.CopyFrom(convert.ts(lease.expires))
    return message


def single(replica_id: str, address: str, agent_address: str, started: float) -> server_pb2.ServerReplica:
    """A server on SQLite: the only one, leading, always."""
    now = time.time()
    return server_pb2.ServerReplica(id=replica_id, address=address, agent_address=agent_address,
                                    role=server_pb2.SERVER_ROLE_LEADER, last_seen_time=convert.ts(now),
                                    start_time=convert.ts(started), version=__version__)
