"""The gRPC side of the server: the grpc.aio server with its options and interceptor, every
jobplane.v1 service with health checking and reflection, and the listening sockets (plaintext,
or TLS with bearer tokens on the main address and mutual TLS on the agent address)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from jobplane.v1 import alert_pb2, alert_pb2_grpc, conflict_pb2, conflict_pb2_grpc, continuation_pb2
from jobplane.v1 import continuation_pb2_grpc, event_pb2, event_pb2_grpc, inventory_pb2, inventory_pb2_grpc
from jobplane.v1 import job_pb2, job_pb2_grpc, policy_pb2, policy_pb2_grpc, provider_pb2, provider_pb2_grpc
from jobplane.v1 import schedule_pb2, schedule_pb2_grpc, security_pb2, security_pb2_grpc, server_pb2
from jobplane.v1 import server_pb2_grpc, task_pb2, task_pb2_grpc, view_pb2, view_pb2_grpc

from .config import ServerConfig
from .security.interceptor import AuthInterceptor
from .services.alerts import AlertService
from .services.base import Deps
from .services.conflicts import ConflictService
from .services.continuations import ContinuationService
from .services.events import EventService
from .services.inventory import InventoryService
from .services.jobs import JobService
from .services.policies import PolicyService
from .services.providers import ProviderService
from .services.schedules import ScheduleService
from .services.security import SecurityService
from .services.servers import ServerService
from .services.tasks import TaskService
from .services.views import ViewService
from .services.watch import register_with_frames

# Every jobplane.v1 service (one per file), by its full name: for health checks and reflection.
_PROTOS = (job_pb2, event_pb2, task_pb2, provider_pb2, continuation_pb2, security_pb2, inventory_pb2,
           policy_pb2, view_pb2, conflict_pb2, schedule_pb2, alert_pb2, server_pb2)
SERVICE_NAMES = [service.full_name for module in _PROTOS for service in module.DESCRIPTOR.services_by_name.values()]
HEALTH_NAMES = [""] + SERVICE_NAMES  # what health checks answer for: the server, and each service


def grpc_server(config: ServerConfig, interceptor: AuthInterceptor) -> grpc.aio.Server:
    """The grpc.aio server, with the configured message size and keepalive tolerance."""
    return grpc.aio.server(
        interceptors=[interceptor],
        options=[
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.keepalive_permit_without_calls", 1),
            # Agents ping as often as they heartbeat (at least every second: agent/link.py), so
            # that a frozen server is noticed in seconds. The pings are allowed at that rate even
            # while the server sends nothing back (busy): past 2 strikes gRPC would end the
            # connection with GOAWAY "too_many_pings", and the agent's stream with it.
            ("grpc.http2.min_ping_interval_without_data_ms", 500),
            # One server per address: without this (gRPC's default on Linux is SO_REUSEPORT) a
            # second server binds the same port, and the kernel shares connections between them.
            ("grpc.so_reuseport", 0),
        ])


def add_services(server: grpc.aio.Server, deps: Deps, security: SecurityService, providers: ProviderService,
                 health_servicer: health.aio.HealthServicer, replicas: Callable, single: Callable) -> None:
    """Every jobplane.v1 service, health checking, and reflection over all of them."""
    security_pb2_grpc.add_SecurityServiceServicer_to_server(security, server)
    jobs = JobService(deps)
    register_with_frames(job_pb2_grpc.add_JobServiceServicer_to_server, jobs, server)
    register_with_frames(event_pb2_grpc.add_EventServiceServicer_to_server, EventService(jobs), server)
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(InventoryService(deps), server)
    policy_pb2_grpc.add_PolicyServiceServicer_to_server(PolicyService(deps.policies, deps), server)
    server_pb2_grpc.add_ServerServiceServicer_to_server(ServerService(deps, replicas, single), server)
    task_pb2_grpc.add_TaskServiceServicer_to_server(TaskService(deps), server)
    view_pb2_grpc.add_ViewServiceServicer_to_server(ViewService(deps.views), server)
    conflict_pb2_grpc.add_ConflictServiceServicer_to_server(ConflictService(deps), server)
    schedule_pb2_grpc.add_ScheduleServiceServicer_to_server(ScheduleService(deps), server)
    alert_pb2_grpc.add_AlertServiceServicer_to_server(AlertService(deps), server)
    provider_pb2_grpc.add_ProviderServiceServicer_to_server(providers, server)
    register_with_frames(continuation_pb2_grpc.add_ContinuationServiceServicer_to_server,
                         ContinuationService(deps), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        SERVICE_NAMES + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server)


async def set_health(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    """Health checks answer SERVING (or NOT_SERVING) for the server and each service."""
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in HEALTH_NAMES:
        await health_servicer.set(name, status)


def listen(server: grpc.aio.Server, config: ServerConfig, key_file: Path | None, cert_file: Path | None,
           trust_bundle: bytes | None) -> tuple[int, int]:
    """Bind the main address (TLS; bearer tokens) and the agent address (mutual TLS); the two
    ports (the same one, plaintext)."""
    if config.insecure:
        port = _bind(config.listen, "--listen", lambda: server.add_insecure_port(config.listen))
        return port, port
    key, cert = key_file.read_bytes(), cert_file.read_bytes()
    main = grpc.ssl_server_credentials([(key, cert)])
    agents = grpc.ssl_server_credentials([(key, cert)], root_certificates=trust_bundle, require_client_auth=True)
    port = _bind(config.listen, "--listen", lambda: server.add_secure_port(config.listen, main))
    agent_port = _bind(config.agent_address, "--agent-listen" if config.agent_listen else "--listen",
                       lambda: server.add_secure_port(config.agent_address, agents))
    return port, agent_port


def _bind(address: str, flag: str, add_port) -> int:
    """The port `add_port` bound at `address`; OSError saying what to do (`flag` sets the
    address) if it could not (gRPC returns 0, or raises RuntimeError in its newer releases)."""
    try:
        port = add_port()
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {address}: the address is in use or not one of this machine's "
                      f"(stop what listens there, or give {flag} another, e.g. 127.0.0.1:0 for any free port)")
    return port
