"""The agent's configuration: one frozen dataclass, built by the CLI or by a library user."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from jobplane.connect import resolve_target
from jobplane.replicas import split_addresses
from jobplane.resources import MAX_AMOUNT, check_custom_name

from .cgroups import CHOICES as CONTAINMENTS
from .logstore import DEFAULT_MAX_BYTES, MIN_MAX_BYTES
from .scan_limits import ScanLimits

DEFAULT_LOG_RETENTION = 7 * 24 * 3600.0
QUEUE_AHEAD_PER_SLOT = 8  # the server bounds it by time too (server/domain/ahead.py)
MAX_QUEUE_AHEAD = 10_000  # what a server takes (its MAX_SLOTS)
# The label an agent that submits to Slurm advertises; the server requires it of Slurm tasks.
SLURM_LABEL, SLURM_LABEL_VALUE = "slurm", "true"


def _default_slots() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """How an agent connects, what it calls itself and how much it runs at once."""

    # HOST:PORT of the server, or of each of its replicas, comma-separated.
    server: str = field(default_factory=lambda: resolve_target(None))
    name: str = field(default_factory=socket.gethostname)
    slots: int = field(default_factory=_default_slots)
    # Assigned tasks held queued beyond the slots, started as slots free (the server queues
    # only quick tasks ahead); None: QUEUE_AHEAD_PER_SLOT per slot; 0: none.
    queue_ahead: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # The agent promises a heartbeat at least this often (seconds).
    heartbeat_interval: float = 1.0
    # Seconds between SIGTERM and SIGKILL when stopping a command task.
    kill_grace: float = 3.0
    # How command attempts are contained: "auto" (a cgroup v2 per attempt where the machine
    # allows it, else "subreaper"), "cgroup" (required), or "subreaper".
    containment: str = "auto"
    # On a graceful stop, how long running attempts may finish before the server hands them
    # on; 0: hand them on at once.
    stop_wait: float = 0.0
    # Default working directory of tasks; also put on sys.path of Python workers.
    work_dir: str = field(default_factory=os.getcwd)
    # Take work only when the server activates this provider (queued demand beyond capacity).
    standby: bool = False
    # Where attempts keep their pid, output and exit status, so that the agent started
    # again after a crash adopts them; empty: <work_dir>/.jobplane-agent/<name>.
    state_dir: str = ""
    # Mutual TLS (the default): the join token that enrolls the agent when it has no usable
    # certificate in its state directory, and the CA bundle that verifies the server then.
    token: str = field(default="", repr=False)
    ca_file: str = ""
    # Plaintext to the server's only port, no enrollment: for servers started with --insecure.
    insecure: bool = False
    # How far each prerequisite check may go: time, directory entries visited, bytes hashed.
    scan_limits: ScanLimits = field(default_factory=ScanLimits)
    # A JSON file of extra live facts (name -> number), re-read for every heartbeat; its
    # entries override load_average and free_memory_bytes. Empty: the built-in facts only.
    facts_file: str = ""
    # Submit `slurm` tasks to Slurm (sbatch, squeue, sacct, scancel on the PATH); the agent
    # then advertises the label slurm=true, which Slurm tasks require.
    slurm: bool = False
    # Seconds between the agent's squeue (and sacct) calls, one for all its Slurm jobs.
    slurm_poll_interval: float = 5.0
    # Bytes of each command attempt's stdout, and of its stderr, kept on disk (logstore.py).
    log_max_bytes: int = DEFAULT_MAX_BYTES
    # Seconds an attempt's kept output stays after it was last written.
    log_retention: float = DEFAULT_LOG_RETENTION
    # "text" or "json" (jobplane.logs): how the agent's keeper logs too (the agent's own
    # logging is configured by its entry point).
    log_format: str = "text"
    # HOST:PORT where GET /metrics answers in the Prometheus text format; empty: not served.
    metrics: str = ""
    # The capacity advertised to the server, which packs tasks' resource requests into it;
    # None: detected (CPUs this process may use, MemTotal, NVIDIA GPUs). `resources`: custom
    # countable resources by name (e.g. {"license_x": 2}).
    cpus: float | None = None
    memory: int | None = None  # bytes
    gpus: int | None = None
    resources: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not split_addresses(self.server):
            raise ValueError("server: must be HOST:PORT, e.g. localhost:7070, or the addresses of several "
                             "replicas comma-separated (a:7070,b:7070,c:7070)")
        if not self.name:
            raise ValueError("name: must not be empty")
        if self.slots < 1:
            raise ValueError(f"slots: must be at least 1, got {self.slots}")
        if self.queue_ahead is None:
            object.__setattr__(self, "queue_ahead", min(QUEUE_AHEAD_PER_SLOT * self.slots, MAX_QUEUE_AHEAD))
        elif not 0 <= self.queue_ahead <= MAX_QUEUE_AHEAD:
            raise ValueError(f"queue_ahead: must be between 0 (none) and {MAX_QUEUE_AHEAD}, got {self.queue_ahead}")
        if self.heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval: must be > 0, got {self.heartbeat_interval}")
        if self.kill_grace < 0:
            raise ValueError(f"kill_grace: must be >= 0, got {self.kill_grace}")
        if self.containment not in CONTAINMENTS:
            raise ValueError(f"containment: must be one of {', '.join(CONTAINMENTS)}, "
                             f"got {self.containment!r}")
        if not self.stop_wait >= 0:
            raise ValueError(f"stop_wait: must be >= 0, got {self.stop_wait}")
        if self.insecure and self.token:
            raise ValueError("token: an insecure agent does not enroll; drop the token or insecure")
        if self.log_max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"log_max_bytes: must be at least {MIN_MAX_BYTES}, got {self.log_max_bytes}")
        if not self.log_retention > 0:
            raise ValueError(f"log_retention: must be > 0 seconds, got {self.log_retention}")
        if self.metrics and not is_address(self.metrics):
            raise ValueError(f"metrics: {self.metrics!r} is not HOST:PORT; e.g. 127.0.0.1:9100 (port 0 picks one)")
        self._check_capacity()
        if self.slurm_poll_interval <= 0:
            raise ValueError(f"slurm_poll_interval: must be > 0, got {self.slurm_poll_interval}")
        if self.slurm and self.labels.get(SLURM_LABEL, SLURM_LABEL_VALUE) == SLURM_LABEL_VALUE:
            object.__setattr__(self, "labels", {**self.labels, SLURM_LABEL: SLURM_LABEL_VALUE})

    def _check_capacity(self) -> None:
        for name in ("cpus", "memory", "gpus"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= MAX_AMOUNT:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        for name, count in self.resources.items():
            why = check_custom_name(name)
            if why:
                raise ValueError(f"resources: {why}")
            if not 1 <= count <= MAX_AMOUNT:
                raise ValueError(f"resources: {name} must be at least 1, got {count}")


def is_address(text: str) -> bool:
    """Whether `text` is HOST:PORT (port 0 included)."""
    host, sep, port = text.rpartition(":")
    return bool(sep) and port.isdigit() and int(port) < 65536
