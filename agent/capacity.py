"""What this machine can run at once, as the agent advertises it in its hello: detected (CPUs
it may use, MemTotal, NVIDIA GPUs), each overridable by a flag, plus custom countable
resources (`--resource license_x=2`) that only an operator can know of."""

from __future__ import annotations

import logging
import os
import subprocess

from jobplane.resources import Resources
from jobplane.v1 import provider_pb2

from .environment import find_program
from .facts import memory_bytes

log = logging.getLogger(__name__)

NVIDIA_SMI_TIMEOUT = 5.0  # seconds; a wedged driver must not hold the agent's start


def detected_cpus() -> float:
    """The CPUs this process may run on (its affinity, e.g. a container's cpuset), else all."""
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return float(os.cpu_count() or 1)


def detected_gpus() -> int:
    """NVIDIA GPUs: the /dev/nvidiaN device files, else the lines of `nvidia-smi -L`, else 0."""
    try:
        devices = [d for d in os.listdir("/dev") if d.startswith("nvidia") and d[6:].isdigit()]
    except OSError:
        devices = []
    if devices:
        return len(devices)
    smi = find_program("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("cannot count GPUs with nvidia-smi -L (%s); advertising 0 GPUs (set --gpus N)", exc)
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def machine_capacity(cpus: float | None = None, memory: int | None = None, gpus: int | None = None,
                     custom: dict[str, int] | None = None) -> Resources:
    """The capacity to advertise: each amount given, else the detected one."""
    return Resources(detected_cpus() if cpus is None else float(cpus),
                     memory_bytes() if memory is None else int(memory),
                     detected_gpus() if gpus is None else int(gpus),
                     tuple(sorted((custom or {}).items())))


def capacity_message(r: Resources) -> provider_pb2.ResourceCapacity:
    return provider_pb2.ResourceCapacity(cpus=r.cpus, memory_bytes=r.memory, gpus=r.gpus, custom=dict(r.custom))


__all__ = ["capacity_message", "detected_cpus", "detected_gpus", "machine_capacity"]
