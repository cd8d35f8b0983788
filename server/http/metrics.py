"""`/metrics`: the server's state and counters in the Prometheus text exposition format
(version 0.0.4), written by jobplane.prometheus.

Gauges are read when scraped (counts from the database on a reader thread, watchers from the
event hub); counters and histograms are what the server has counted since it started
(server/metrics.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from jobplane.prometheus import counter, gauge, histogram

from ..domain.model import ProviderState, Status, TaskState
from ..events import EventHub
from ..metrics import ServerMetrics
from ..store import stats

log = logging.getLogger(__name__)


class MetricsPage:
    def __init__(self, metrics: ServerMetrics, hub: EventHub, readers: ThreadPoolExecutor,
                 failed: Callable[[], BaseException | None],
                 leading: Callable[[], tuple[bool, int]] = lambda: (True, 0),
                 unplaceable: Callable[[], list[dict]] = list,
                 heard: Callable[[], dict[str, float]] = dict) -> None:
        self._metrics = metrics
        self._hub = hub
        self._readers = readers
        self._failed = failed
        self._leading = leading  # (whether this replica leads now, its lease's epoch)
        self._unplaceable = unplaceable  # hooks.describe() of the demand no provider could take
        self._heard = heard  # the leader's connected providers: when each was last heard from (none while following)

    async def render(self) -> str:
        m = self._metrics
        lines: list[str] = []
        try:
            lines += await asyncio.get_running_loop().run_in_executor(self._readers, _state_gauges)
        except Exception as exc:  # the database is down: say so, and still show what was counted
            log.warning("/metrics: cannot count jobs, tasks and providers: %s", exc)
        lines += gauge("jobplane_watchers", "Event-stream watchers connected now.", {(): self._hub.watchers})
        lines += gauge("jobplane_up", "1 while the server takes changes; 0 once its database refused a write.",
                       {(): 0 if self._failed() is not None else 1})
        leads, epoch = self._leading()
        lines += gauge("jobplane_leader", "1 while this server replica leads (always, for a single server on SQLite).",
                       {(): int(leads)})
        lines += gauge("jobplane_lease_epoch", "The epoch of the lease this replica leads at (0: following, or SQLite).",
                       {(): epoch if leads else 0})
        lines += gauge("jobplane_unplaceable_tasks", "Queued tasks no provider could take at the last dispatch (no "
                       "free slot or room, or none with the labels, prerequisites or facts they need), per requirement set "
                       "(the leader's view; the scale-out hook's $JOBPLANE_UNMET).",
                       {_requirement(d): d["tasks"] for d in self._unplaceable()}, "labels", "prerequisites",
                       "conditions", "resources")
        lines += gauge("jobplane_provider_silence_seconds", "Seconds since each connected provider was last heard "
                       "from (the leader's view); past its heartbeat interval times --heartbeat-tolerance it is "
                       "SUSPECT.", _silences(self._heard()), "provider")
        for instrument in (m.commit_seconds, m.batch_operations, m.heartbeat_seconds, m.ready_to_assigned,
                           m.ready_to_running, m.restart_seconds):
            lines += histogram(instrument)
        for instrument in (m.events, m.rejected_reports, m.rpcs, m.continued):
            lines += counter(instrument)
        return "\n".join(lines) + "\n"


def _state_gauges() -> list[str]:
    """Jobs, tasks and providers counted in the database (on a reader thread)."""
    jobs, tasks, providers = stats.all_counts()
    queued = sum(n for state, _, n in tasks if state == TaskState.QUEUED)
    return [*gauge("jobplane_jobs", "Jobs by normalized status (the default policy's view).", _by_status(jobs), "status"),
            *gauge("jobplane_tasks", "Tasks by normalized status (the default policy's view).", _by_status(tasks),
                   "status"),
            *gauge("jobplane_queue_depth", "Tasks queued for a provider (ready to run, not yet assigned).",
                   {(): queued}),
            *gauge("jobplane_providers", "Providers (agents) by state.", _by_state(providers), "state")]


def _silences(heard: dict[str, float]) -> dict[tuple[str, ...], float]:
    now = time.time()
    return {(provider,): round(max(0.0, now - last), 3) for provider, last in heard.items()}


def _requirement(d: dict) -> tuple[str, str, str, str]:
    return (",".join(f"{k}={v}" for k, v in d["labels"].items()), ",".join(d["prerequisites"]),
            ",".join(d["conditions"]), ",".join(f"{k}={v:g}" for k, v in d.get("resources", {}).items()))


def _by_status(rows: Iterable[tuple[int, int, int]]) -> dict[tuple[str, ...], float]:
    """Every normalized status (0 when none), so a rate or an alert has a series to look at."""
    out: dict[tuple[str, ...], float] = {(s.name,): 0 for s in Status if s.value}
    for _, status, n in rows:
        if status in Status._value2member_map_ and status:
            out[(Status(status).name,)] += n
    return out


def _by_state(rows: Iterable[tuple[int, int]]) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {(s.name,): 0 for s in ProviderState}
    for state, n in rows:
        if state in ProviderState._value2member_map_:
            out[(ProviderState(state).name,)] += n
    return out
