"""Resources in the engine: a provider's room for a task is its advertised capacity less what
the tasks out at it (assigned or running) ask for, worked out from those tasks each time, so it
is right after a server restart, a reconnect or a continuation with no counter to drift. A
queued task that no eligible provider could ever hold says which resource is short.
A component of Engine: the queued tasks with resource requests are its state."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from jobplane.resources import Resources, amount_of, describe, shortfall, show_amount, total

from .model import ProviderState, Status, TaskState

if TYPE_CHECKING:
    from .engine import Engine
    from .state import ProviderRt, TaskRt

TOO_BIG = "waiting: needs "  # how the reason of a task too big for every provider starts
ELIGIBLE = (ProviderState.ACTIVE, ProviderState.STANDBY, ProviderState.CONNECTING)
SHOWN = (Status.WAITING, Status.LATE_TO_START)  # statuses whose reason may say what is short


Key = tuple  # (frozenset of the labels a task requires, its Resources): what its reason depends on


class Capacity:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Queued tasks that ask for resources, by what their reason depends on; the reason each
        # group was last given; the groups that gained tasks since.
        self._sized: dict[Key, dict[int, None]] = {}
        self._reasons: dict[Key, str] = {}
        self._fresh: set[Key] = set()

    def used(self, provider: ProviderRt) -> Resources:
        """What the tasks out at the provider ask for, summed."""
        tasks = self.engine.tasks
        return total(tasks[t].spec.resources for t in provider.in_flight if t in tasks)

    def fits(self, provider: ProviderRt) -> Callable[[Resources], bool]:
        """Whether the provider has room for a request now (the ready queue's `fits`, made for
        one look at the queue: what is in use is summed once, on the first request it checks)."""
        used: list[Resources] = []

        def fits(request: Resources) -> bool:
            if not used:
                used.append(self.used(provider))
            return not shortfall(request, provider.capacity, used[0])
        return fits

    def track(self, task: TaskRt) -> None:
        """A task was queued: if it asks for resources, explain() looks at it."""
        if task.spec.resources:
            key = (frozenset(task.spec.requires.items()), task.spec.resources)
            self._sized.setdefault(key, {})[task.id] = None
            self._fresh.add(key)

    def explain(self) -> None:
        """After dispatch: a queued task too big for every connected provider that has its
        labels says which resource is short; once one could hold it, it says so. The reason is
        worked out once per group of tasks asking the same; a group's tasks are looked at only
        when it gained tasks, its reason changed or some were on hold (shown another reason
        until let go), so a dispatch costs O(groups), not O(queued tasks asking for resources)."""
        fresh, self._fresh = self._fresh, set()
        for key in list(self._sized):
            if not self._prune_head(key):
                continue
            why = self._too_big(*key)
            if key in fresh or self._reasons.get(key) != why:
                self._reasons[key] = why
                self._show(key, why)

    def _prune_head(self, key: Key) -> bool:
        """Drop the group's oldest tasks that left the queue (tasks mostly leave in the order
        they came); False when none is left. Each task is dropped once: amortized O(1)."""
        tids = self._sized[key]
        while tids:
            tid = next(iter(tids))
            if self._queued(tid):
                return True
            del tids[tid]
        del self._sized[key]
        self._reasons.pop(key, None)
        return False

    def _queued(self, tid: int) -> bool:
        task = self.engine.tasks.get(tid)
        return task is not None and task.state == TaskState.QUEUED and tid in self.engine.ready

    def _show(self, key: Key, why: str) -> None:
        e, tids = self.engine, self._sized[key]
        for tid in list(tids):
            if not self._queued(tid):
                del tids[tid]
                continue
            task = e.tasks[tid]
            if task.status not in SHOWN:  # on hold (conditions, a conflict) or inactive: that
                self._fresh.add(key)       # reason is the one to show; look again next time
                continue
            if why and task.reason != why:
                e.lifecycle.show(task, task.status, why)
            elif not why and task.reason.startswith(TOO_BIG):
                e.lifecycle.show(task, task.status, f"waiting for room: a provider can hold "
                                                    f"{describe(task.spec.resources)}")

    def _too_big(self, requires: frozenset, request: Resources) -> str:
        """Why no eligible provider could ever hold such a task ("" when one could, or none is
        eligible: then its labels are what it waits for)."""
        live = [p for p in self.engine.providers.values() if p.conn_id and p.state in ELIGIBLE and not p.drained
                and all(p.labels.get(k) == v for k, v in requires)]
        if not live or any(not shortfall(request, p.capacity) for p in live):
            return ""
        for name, amount in request.amounts().items():
            offered = [amount_of(p.capacity, name) for p in live]
            if all(o is not None and o < amount for o in offered):
                largest = max(offered)
                has = f"the largest provider has {show_amount(name, largest)}" if largest else "no provider has any"
                return f"{TOO_BIG}{show_amount(name, amount)}, {has}"
        return f"{TOO_BIG}{describe(request)} at once, and no provider has all of it"


__all__ = ["Capacity"]
