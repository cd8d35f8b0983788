"""What the agent tells the server about its machine."""

from __future__ import annotations

import os
import platform
import socket

from jobplane.v1 import provider_pb2


def machine_facts() -> provider_pb2.ProviderFacts:
    """The facts of this machine, as sent in the hello."""
    return provider_pb2.ProviderFacts(
        hostname=socket.gethostname(),
        os=platform.system().lower(),
        arch=platform.machine(),
        cpu_count=os.cpu_count() or 1,
        memory_bytes=memory_bytes(),
        python_version=platform.python_version(),
    )


def memory_bytes() -> int:
    """Total physical memory in bytes; 0 when the platform does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def load_average() -> float:
    """The one-minute load average; 0.0 where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0
