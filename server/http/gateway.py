"""The console's way to the plane: the server's own gRPC API, over a loopback channel, called
with the signed-in user's token. Roles, tenancy, each user's status policies, limits and the
audit log therefore apply to the console exactly as they do to the CLI and the SDK: there is
one implementation of each, in the services and the interceptor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from jobplane.v1 import (conflict_pb2_grpc, continuation_pb2_grpc, event_pb2_grpc, inventory_pb2_grpc, job_pb2_grpc,
                         provider_pb2_grpc, security_pb2_grpc, task_pb2_grpc, view_pb2_grpc)

CERT_NAME = "localhost"  # always in the server certificate (security/pki.py issue_server)
LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]", "[::]": "[::1]"}


class Gateway:
    def __init__(self, address: str, ca_bundle: Path | None) -> None:
        """`address`: where the gRPC API listens; `ca_bundle`: its CA, None for an --insecure server."""
        host, _, port = address.rpartition(":")
        self._target = f"{LOOPBACK.get(host, host)}:{port}"
        self._ca_bundle = ca_bundle
        self._channel: grpc.aio.Channel | None = None

    def open(self) -> None:
        if self._ca_bundle is None:
            self._channel = grpc.aio.insecure_channel(self._target)
        else:
            creds = grpc.ssl_channel_credentials(self._ca_bundle.read_bytes())
            self._channel = grpc.aio.secure_channel(self._target, creds,
                                                    options=[("grpc.ssl_target_name_override", CERT_NAME)])
        self.jobs = job_pb2_grpc.JobServiceStub(self._channel)
        self.events = event_pb2_grpc.EventServiceStub(self._channel)
        self.tasks = task_pb2_grpc.TaskServiceStub(self._channel)
        self.security = security_pb2_grpc.SecurityServiceStub(self._channel)
        self.providers = provider_pb2_grpc.ProviderServiceStub(self._channel)
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(self._channel)
        self.continuations = continuation_pb2_grpc.ContinuationServiceStub(self._channel)
        self.conflicts = conflict_pb2_grpc.ConflictServiceStub(self._channel)
        self.views = view_pb2_grpc.ViewServiceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    @staticmethod
    async def call(method: Any, request: Any, token: str, timeout: float = 30.0) -> Any:
        """`method` (a stub's bound method) with the user's token; raises grpc.aio.AioRpcError."""
        return await method(request, metadata=credentials(token), timeout=timeout)

    @staticmethod
    def stream(method: Any, request: Any, token: str) -> Any:
        """A server-streaming call with the user's token (cancel it when done)."""
        return method(request, metadata=credentials(token))


def credentials(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)
