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


class Capacity:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sized: dict[int, None] = {}  # queued tasks that ask for resources

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
            self._sized[task.id] = None

    def explain(self) -> None:
        """After dispatch: a queued task too big for every connected provider that has its
        labels says which resource is short; once one could hold it, it says so."""
        e = self.engine
        reasons: dict[tuple, str] = {}
        for tid in list(self._sized):
            task = e.tasks.get(tid)
            if task is None or task.state != TaskState.QUEUED or tid not in e.ready:
                self._sized.pop(tid, None)
                continue
            key = (frozenset(task.spec.requires.items()), task.spec.resources)
            if key not in reasons:
                reasons[key] = self._too_big(task)
            why = reasons[key]
            if task.status not in SHOWN:
                continue  # on hold (conditions, a conflict) or inactive: that reason is the one to show
            if why and task.reason != why:
                e.lifecycle.show(task, task.status, why)
            elif not why and task.reason.startswith(TOO_BIG):
                e.lifecycle.show(task, task.status, f"waiting for room: a provider can hold "
                                                    f"{describe(task.spec.resources)}")

    def _too_big(self, task: TaskRt) -> str:
        """Why no eligible provider could ever hold the task ("" when one could, or none is
        eligible: then its labels are what it waits for)."""
        request = task.spec.resources
        live = [p for p in self.engine.providers.values() if p.conn_id and p.state in ELIGIBLE and not p.drained
                and all(p.labels.get(k) == v for k, v in task.spec.requires.items())]
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
