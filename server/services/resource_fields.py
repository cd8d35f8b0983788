"""Resource requests (TaskSpec.resources, JobSpec.task_resources) and capacities (Hello and
Provider `capacity`, Provider `in_use`) converted between the contract and the domain's
Resources, with every request checked here, where its memory size is still text."""

from __future__ import annotations

import json
import math

from jobplane.resources import MAX_AMOUNT, MAX_CUSTOM, Resources, check_custom_name, parse_memory
from jobplane.v1 import job_pb2, provider_pb2

from ..errors import InvalidArgument


def request_from_proto(m: job_pb2.ResourceRequest, path: str) -> Resources:
    """A task's (or a job's default) requests; raises InvalidArgument naming the field."""
    if not (math.isfinite(m.cpus) and 0 <= m.cpus <= MAX_AMOUNT):
        raise InvalidArgument(f"{path}.cpus", f"{m.cpus:g} is not a CPU count; ask for a number such as 0.5, 1 or 4 "
                                              "(0 or unset: none)")
    if m.gpus < 0:
        raise InvalidArgument(f"{path}.gpus", f"{m.gpus} is negative; ask for a whole number of GPUs such as 1 "
                                              "(0 or unset: none)")
    try:
        memory = parse_memory(m.memory) if m.memory.strip() else 0
    except ValueError as exc:
        raise InvalidArgument(f"{path}.memory", str(exc)) from None
    if len(m.custom) > MAX_CUSTOM:
        raise InvalidArgument(f"{path}.custom", f"has {len(m.custom)} resources; ask for at most {MAX_CUSTOM}")
    for name, count in m.custom.items():
        field = f"{path}.custom[{json.dumps(name)}]"
        why = check_custom_name(name)
        if why:
            raise InvalidArgument(field, why)
        if not 1 <= count <= MAX_AMOUNT:
            raise InvalidArgument(field, f"{count} is not a count; ask for at least 1 (a task that needs none of "
                                         f"{name} leaves it out)")
    return Resources(float(m.cpus), memory, m.gpus, tuple(sorted(m.custom.items())))


def request_to_proto(r: Resources) -> job_pb2.ResourceRequest | None:
    if not r:
        return None
    return job_pb2.ResourceRequest(cpus=r.cpus, memory=str(r.memory) if r.memory else "", gpus=r.gpus,
                                   custom=dict(r.custom))


def capacity_from_proto(hello: provider_pb2.Hello) -> Resources | None:
    """What the agent advertised; None when it did not (an older agent). Amounts it cannot
    have (negative, not finite) count as none of that resource, and names that cannot be
    requested are left out: a hello is not refused for them."""
    if not hello.HasField("capacity"):
        return None
    c = hello.capacity
    cpus = float(c.cpus) if math.isfinite(c.cpus) and c.cpus > 0 else 0.0
    custom = tuple(sorted((k, v) for k, v in c.custom.items() if v > 0 and not check_custom_name(k)))
    return Resources(cpus, max(0, c.memory_bytes), max(0, c.gpus), custom[:MAX_CUSTOM])


def capacity_to_proto(r: Resources | None) -> provider_pb2.ResourceCapacity | None:
    if r is None:
        return None
    return provider_pb2.ResourceCapacity(cpus=r.cpus, memory_bytes=r.memory, gpus=r.gpus, custom=dict(r.custom))


__all__ = ["capacity_from_proto", "capacity_to_proto", "request_from_proto", "request_to_proto"]
