"""The server's own measurements: counters and histograms (jobplane.prometheus) that the core, the
interceptor and the provider service add to as things happen, rendered in the Prometheus text
format by server/http/metrics.py. Plain numbers in memory: adding costs a dict update, nothing blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobplane.prometheus import Counter, Histogram

__all__ = ["Counter", "Histogram", "ServerMetrics"]  # the instruments, for those that add to them

if TYPE_CHECKING:
    from .domain.changes import ChangeSet

COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
HEARTBEAT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
RESTART_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
# changes.Timing.what -> the histogram it goes to
TIMED = {"assigned": "ready_to_assigned", "running": "ready_to_running", "restarted": "restart_seconds"}


@dataclass
class ServerMetrics:
    """Everything the server counts as it runs (gauges, read when scraped, live in http/metrics.py)."""

    commit_seconds: Histogram = field(default_factory=lambda: Histogram(
        "jobplane_commit_seconds", "Seconds one group commit (a batch's transaction) took.", COMMIT_BUCKETS))
    batch_operations: Histogram = field(default_factory=lambda: Histogram(
        "jobplane_commit_batch_operations", "Operations applied and committed together in one group commit.",
        BATCH_BUCKETS))
    heartbeat_seconds: Histogram = field(default_factory=lambda: Histogram(
        "jobplane_heartbeat_handling_seconds", "Seconds from a provider's heartbeat arriving to the engine "
        "taking it (the lag that, grown past the heartbeat interval, would make a live provider look silent).",
        HEARTBEAT_BUCKETS))
    events: Counter = field(default_factory=lambda: Counter(
        "jobplane_events_total", "Events committed and published (rate() gives events per second)."))
    rejected_reports: Counter = field(default_factory=lambda: Counter(
        "jobplane_rejected_reports_total", "Agent reports refused (stale attempt, fenced, bad input), by code.",
        ("code",)))
    rpcs: Counter = field(default_factory=lambda: Counter(
        "jobplane_rpcs_total", "gRPC calls answered, by method and status code.", ("method", "code")))
    ready_to_assigned: Histogram = field(default_factory=lambda: Histogram(
        "jobplane_dispatch_assigned_seconds", "Seconds from a task becoming ready to dispatch (queued, or in "
        "the continuation line) to its attempt being assigned to a provider.", DISPATCH_BUCKETS))
    ready_to_running: Histogram = field(default_factory=lambda: Histogram(
        "jobplane_dispatch_running_seconds", "Seconds from a task becoming ready to dispatch to its agent "
        "reporting it started (RUNNING).", DISPATCH_BUCKETS))
    continued: Counter = field(default_factory=lambda: Counter(
        "jobplane_continued_tasks_total", "Unfinished tasks handed on to continue elsewhere because their "
        "provider was lost, drained or revoked."))
    restart_seconds: Histogram = field(default_factory=lambda: Histogram(
        "jobplane_continuation_restart_seconds", "Seconds from a provider's loss being decided to each of its "
        "continued tasks running again elsewhere.", RESTART_BUCKETS))

    def take(self, cs: ChangeSet) -> None:
        """What a batch measured (its timings and its continuations), counted as it closes, before
        its commit: one whose commit then fails stays counted."""
        for what, seconds in cs.timings:
            getattr(self, TIMED[what]).observe(seconds)
        for rec in cs.continuations:
            self.continued.inc(by=len(rec.tasks))
