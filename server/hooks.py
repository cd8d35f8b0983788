"""The provider manager: what grows and shrinks the set of providers.

Inside the engine, standbys are activated when queued work exceeds active capacity and
promoted, for good, into the place of a lost active provider (domain/providers.py). Outside
it, the fleet is an operator's: `ProviderManager` is the interface the server drives after
each commit, fed by the demand no provider could take (per requirement set) and by the
providers that idle; `CommandHooks` implements it with shell commands:

- `--scale-out-hook CMD` runs (at most every `--scale-out-interval` seconds) while queued
  tasks wait that no provider can take: none has a free slot, or none with a free slot has
  the labels, prerequisites or live facts they need. $JOBPLANE_UNMET_TASKS holds how many
  wait; $JOBPLANE_UNMET, as JSON, what they want:
  `[{"labels": {"gpu": "a100"}, "prerequisites": ["…"], "conditions": ["load_average<2"], "tasks": 12}]`.
- `--scale-in-hook CMD` runs (at most as often) when active providers have run nothing for
  `--scale-in-after` seconds while no work waits; $JOBPLANE_IDLE_PROVIDERS lists them,
  separated by spaces. The hook decides (drain them, stop their machines); the server only
  signals.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from .domain.model import ProviderState

log = logging.getLogger(__name__)


class ProviderManager(Protocol):
    """Called after every commit, in this order."""

    def scale_out(self, demand: list | None) -> None:
        """Queued work no provider could take: (requirement set, tasks) per set (ReadyQueue.demand);
        None when the batch did not dispatch (the demand is as it was)."""

    def scale_in(self, providers: Callable[[], Iterable]) -> None:
        """The providers as they are now (ProviderViews, made when called: only when wanted)."""

    @property
    def unplaceable(self) -> list[dict]:
        """The demand of the last dispatch, described (for /metrics)."""


def describe(demand: list) -> list[dict]:
    """Requirement sets as plain JSON: labels, prerequisite ids, conditions, the resources each
    task asks for (name -> amount; memory in bytes) and the tasks waiting."""
    return [{"labels": dict(sorted(labels)), "prerequisites": sorted(prerequisites),
             "conditions": [getattr(c, "text", str(c)) for c in conditions], "resources": resources.amounts(),
             "tasks": n}
            for (labels, prerequisites, conditions, resources), n in demand]


class CommandHooks:
    """The provider manager as two shell commands, each rate-limited and run off the loop's
    critical path (one at a time; a slow hook is never started twice)."""

    def __init__(self, scale_out: str = "", scale_in: str = "", interval: float = 30.0,
                 scale_in_after: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._out = _Hook("scale-out", scale_out, interval, clock)
        self._in = _Hook("scale-in", scale_in, interval, clock)
        self.scale_in_after = scale_in_after
        self._clock = clock
        self._idle_since: dict[str, float] = {}
        self._demand: list = []  # what no provider could take, at the last dispatch

    def scale_out(self, demand: list | None) -> None:
        if demand is not None:
            self._demand = demand
        demand = self._demand
        if demand and self._out.due():
            unmet = sum(n for _, n in demand)
            log.info("%d queued tasks no provider can take; running the scale-out hook", unmet)
            self._out.run({"JOBPLANE_UNMET_TASKS": str(unmet), "JOBPLANE_UNMET": json.dumps(describe(demand))})

    @property
    def unplaceable(self) -> list[dict]:
        """What no provider could take at the last dispatch, per requirement set (describe())."""
        return describe(self._demand)

    def scale_in(self, providers: Callable[[], Iterable]) -> None:
        if not self._in.due(quiet=True):
            return
        now, active = self._clock(), set()
        for p in providers():
            if p.state == ProviderState.ACTIVE and p.connected and not p.slots_in_use:
                active.add(p.id)
                self._idle_since.setdefault(p.id, now)
        self._idle_since = {pid: since for pid, since in self._idle_since.items() if pid in active}
        idle = sorted(pid for pid, since in self._idle_since.items() if now - since >= self.scale_in_after)
        if idle and not self._demand:
            log.info("providers idle for %gs: %s; running the scale-in hook", self.scale_in_after, " ".join(idle))
            self._in.run({"JOBPLANE_IDLE_PROVIDERS": " ".join(idle)})
        else:
            self._in.checked()


class _Hook:
    def __init__(self, name: str, command: str, interval: float, clock: Callable[[], float]) -> None:
        self.name, self.command, self.interval, self._clock = name, command, interval, clock
        self._last = -float("inf")
        self._looked = -float("inf")
        self._running: asyncio.Task | None = None

    def due(self, quiet: bool = False) -> bool:
        """Whether the hook may run now (and, `quiet`, whether it is time to look again)."""
        now = self._clock()
        if not self.command or now - self._last < self.interval or (quiet and now - self._looked < 1.0):
            return False
        return self._running is None or self._running.done()

    def checked(self) -> None:
        self._looked = self._clock()

    def run(self, env: dict[str, str]) -> None:
        self._last = self._looked = self._clock()
        self._running = asyncio.get_running_loop().create_task(self._run(env))

    async def _run(self, env: dict[str, str]) -> None:
        proc = await asyncio.create_subprocess_shell(self.command, env={**os.environ, **env},
                                                     stdout=asyncio.subprocess.DEVNULL,
                                                     stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode:
            log.warning("%s hook exited with %s: %s", self.name, proc.returncode,
                        err.decode(errors="replace")[-500:])
