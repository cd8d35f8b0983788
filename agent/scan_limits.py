"""How far a prerequisite scan may go: part of the agent's configuration, applied by scan.py.

Apart from the scanner so that the configuration does not load it: an agent the server never
asks for a scan never imports the probes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScanLimits:
    """How far a scan may go. `dpkg_status` and `meminfo` say where those files are (for tests)."""

    timeout: float = 2.0  # seconds per signature
    max_files_visited: int = 10_000  # directory entries one glob or search may look at
    max_hash_bytes: int = 256 * 1024 * 1024  # larger files are reported, not hashed
    version_timeout: float = 1.0  # then the version command's process group is killed
    max_version_output: int = 64 * 1024
    concurrency: int = 8  # signatures checked at once
    dpkg_status: str = "/var/lib/dpkg/status"
    meminfo: str = "/proc/meminfo"
