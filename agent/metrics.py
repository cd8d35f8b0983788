"""The agent's own measurements, for `--metrics ADDR`: counters and histograms the agent adds to
as it works (jobplane.prometheus, stdlib only), and the gauges read when scraped. Served over
HTTP by metrics_http.py, imported only when --metrics is given."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from jobplane.prometheus import Counter, Histogram, counter, gauge, histogram

from .errors import AgentError

log = logging.getLogger(__name__)

SPAWN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SCAN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class AgentGauges:
    """What the agent is holding when scraped."""

    slots: int
    busy: int  # attempts running now (started, or starting)
    connected: bool  # a stream to the server is open and welcomed
    log_bytes: int  # output kept on disk (logstore.py)


@dataclass
class AgentMetrics:
    started: Counter = field(default_factory=lambda: Counter(
        "jobplane_agent_tasks_started_total", "Attempts whose process (or worker call, or outside job) started."))
    finished: Counter = field(default_factory=lambda: Counter(
        "jobplane_agent_tasks_finished_total", "Attempts that ended and were reported, by outcome (given_back: "
        "queued ahead and given back unstarted).", ("outcome",)))
    spawn_seconds: Histogram = field(default_factory=lambda: Histogram(
        "jobplane_agent_spawn_seconds", "Seconds from an assignment arriving to its process (or worker call, or "
        "outside job) starting.", SPAWN_BUCKETS))
    scan_seconds: Histogram = field(default_factory=lambda: Histogram(
        "jobplane_agent_scan_seconds", "Seconds one inventory scan (a batch of prerequisite signatures) took.",
        SCAN_BUCKETS))
    reconnects: Counter = field(default_factory=lambda: Counter(
        "jobplane_agent_reconnects_total", "Streams to a server opened and welcomed after the first (a server "
        "restart, a takeover, a broken network)."))
    connects: int = 0

    def welcomed(self) -> None:
        self.connects += 1
        if self.connects > 1:
            self.reconnects.inc()

    def render(self, now: AgentGauges) -> str:
        lines = [
            *gauge("jobplane_agent_slots", "Tasks this agent runs at once (--slots).", {(): now.slots}),
            *gauge("jobplane_agent_slots_busy", "Slots running an attempt now.", {(): now.busy}),
            *gauge("jobplane_agent_connected", "1 while a stream to the server is open and welcomed.",
                   {(): int(now.connected)}),
            *gauge("jobplane_agent_log_bytes", "Bytes of attempts' output kept on disk (--log-max-bytes each, "
                   "until --log-retention).", {(): now.log_bytes}),
        ]
        for h in (self.spawn_seconds, self.scan_seconds):
            lines += histogram(h)
        for c in (self.started, self.finished, self.reconnects):
            lines += counter(c)
        return "\n".join(lines) + "\n"



@contextlib.asynccontextmanager
async def served(address: str, render: Callable[[], Awaitable[str]]) -> AsyncIterator[None]:
    """GET /metrics on `address` (HOST:PORT; "": nothing listens) while the context lasts; the
    HTTP part is imported only then. Raises AgentError if it cannot listen there."""
    if not address:
        yield
        return
    from .metrics_http import MetricsServer

    server = MetricsServer(render)
    try:
        bound = await server.start(address)
    except OSError as exc:
        raise AgentError(f"--metrics {address}: cannot listen there: {exc}") from exc
    log.info("metrics on http://%s/metrics", bound)
    try:
        yield
    finally:
        await server.stop()
