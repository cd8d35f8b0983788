"""Driving the engine directly in unit tests: an engine at a fixed time, providers and tasks,
and what a batch of changes assigned or set to fire later."""

from __future__ import annotations

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.model import Hello, TaskSpec

GRACE, KILL = 1.0, 0.5  # the server's reconnect grace; the agents' promised kill deadline


def engine(now: float = 100.0, **config) -> Engine:
    """An engine whose clock reads `now`, with a reconnect grace of GRACE."""
    e = Engine(EngineConfig(reconnect_grace=GRACE, **config))
    e.begin(now)
    return e


def provider(e, name, slots=2, labels=None, running=(), standby=False, ahead=0):
    """Connect provider `name` (holding up to `ahead` tasks queued beyond its slots) and make it
    ready; returns its connection id."""
    e.connect(Hello(name, {}, labels or {}, slots, 1.0, tuple(running), standby, queue_ahead=ahead),
              conn_id=hash(name) & 0xFFFF)
    e.ready_signal(name, hash(name) & 0xFFFF)
    return hash(name) & 0xFFFF


def cmd(name, **kw):
    """A command task `true`."""
    return TaskSpec(name, command=("true",), **kw)


def assigned(cs):
    """{provider: [(task name, attempt), ...]} of a change set's assignments."""
    return {p: [(a.task.name, a.attempt) for a in items] for p, items in cs.assignments.items()}


def run_timers(e, cs, since, now):
    """Let time pass to `now` and fire the timers `cs` set at `since` that are due by then."""
    e.begin(now)
    for delay, op in sorted(cs.timers, key=lambda t: t[0]):
        if since + delay <= now:
            op(e)
    return e.take_changes()
