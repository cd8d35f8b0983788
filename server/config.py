"""Server configuration: one dataclass, built from flags and environment in main."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .domain.limits import MAX_TASKS_PER_JOB
from .domain.state import EngineConfig
from .events import WATCHER_QUEUE_BATCHES
from .notify import NotifyConfig


def default_data_dir() -> Path:
    """$JOBPLANE_HOME, else ~/.local/share/jobplane (shared with `jobplane up`)."""
    home = os.environ.get("JOBPLANE_HOME")
    return Path(home) if home else Path.home() / ".local" / "share" / "jobplane"


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:7070"
    data_dir: Path = Path("jobplane-data")
    db_url: str = ""  # empty: sqlite:///<data_dir>/jobplane.db
    reconnect_grace: float = 1.0
    restart_grace: float = 0.0  # after a restart; 0: sized from each agent's reconnect backoff
    heartbeat_tolerance: float = 2.0
    probe_deadline: float = 1.0
    standby_idle: float = 5.0
    retry_backoff: float = 1.0
    retry_backoff_max: float = 60.0  # the longest pause between retries
    # A task still running this long past its timeout is ended by the server (its agent did not).
    terminate_grace: float = 5.0
    scale_out_hook: str = ""  # shell command run while queued work no provider can take waits
    scale_out_interval: float = 30.0  # the least time between two runs of each hook
    scale_in_hook: str = ""  # shell command run when active providers idle
    scale_in_after: float = 300.0
    learn_conflicts: int = 0  # --learn N: pairs failing together N times become exclusive rules
    supervise_interval: float = 0.1
    default_max_attempts: int = 1
    max_tasks_per_job: int = MAX_TASKS_PER_JOB
    address_file: Path | None = None
    log_format: str = "text"  # or "json": one object per line (jobplane.logs)
    # The calendar continuation timing rules are read in: an IANA time zone, and fiscal
    # period ends as MM-DD (every year) or YYYY-MM-DD (once).
    timezone: str = "UTC"
    period_ends: tuple[str, ...] = ()
    # Security: --insecure serves plaintext with no authentication (debugging only).
    insecure: bool = False
    agent_listen: str = ""  # the mutual-TLS address for agents; empty: listen port + 1 (or 0)
    tls_hosts: tuple[str, ...] = ()  # extra names/addresses for the server certificate
    agent_cert_ttl: float = 86400.0
    ca_cert: Path | None = None  # use this existing CA (with ca_key) instead of the built-in one
    ca_key: Path | None = None
    rotate_ca: bool = False  # make a new built-in CA on this start; the old one stays trusted
    # Limits.
    max_message_bytes: int = 64 * 1024 * 1024
    submit_rate: float = 50.0
    enroll_rate: float = 5.0
    max_streams: int = 64
    inventory_ttl: float = 300.0  # seconds a provider's scan result counts as fresh
    request_id_ttl: float = 86400.0  # seconds a submit's request id gets its job back (AIP-155)
    event_retention: float = 0.0  # seconds events are kept before compaction; 0 = forever
    job_retention: float = 0.0  # seconds a finished job is kept before it is purged; 0 = forever
    notify_attempts: int = 8  # tries per notification before it is given up
    notify_backoff: float = 1.0  # seconds before a notification's second try, doubling after each failure
    watcher_queue: int = WATCHER_QUEUE_BATCHES  # batches a watcher may fall behind before it is cut off
    reader_threads: int = 2  # threads that serve reads from the database
    http: str = ""  # HOST:PORT of the web console and /metrics; empty: no HTTP listener
    http_tls_cert: Path | None = None  # PEM certificate (chain) and key: serve --http over HTTPS
    http_tls_key: Path | None = None
    # Replicas on PostgreSQL (issue 16): where the others, clients and agents reach this one
    # (empty: the bound address), and the leader's lease in seconds.
    advertise: str = ""
    advertise_agent: str = ""
    lease: float = 2.0

    @property
    def agent_address(self) -> str:
        if self.agent_listen:
            return self.agent_listen
        host, _, port = self.listen.rpartition(":")
        return f"{host}:{int(port) + 1 if int(port) else 0}"

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'jobplane.db'}"

    def notify(self) -> NotifyConfig:
        return NotifyConfig(attempts=self.notify_attempts, backoff=self.notify_backoff)

    def engine(self) -> EngineConfig:
        """The engine's settings, every one of them from here."""
        return EngineConfig(
            reconnect_grace=self.reconnect_grace, restart_grace=self.restart_grace,
            heartbeat_tolerance=self.heartbeat_tolerance, probe_deadline=self.probe_deadline,
            standby_idle=self.standby_idle, retry_backoff=self.retry_backoff, retry_backoff_max=self.retry_backoff_max,
            terminate_grace=self.terminate_grace, timezone=self.timezone, period_ends=self.period_ends,
            inventory_ttl=self.inventory_ttl, learn_conflicts=self.learn_conflicts,
            max_tasks_per_job=self.max_tasks_per_job, default_max_attempts=self.default_max_attempts)
