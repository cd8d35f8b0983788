"""Fencing rules: a task whose earlier attempt may still run gets no new attempt until that
one has certainly ended (see fences.py for how we know). An external or slurm attempt whose
job id the server knows is not fenced: the next attempt adopts that job (adoption.py). A component
of Engine: the Fences index is its state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fences import Fence, Fences, certainly_stopped_by
from .model import TaskState
from .state import ProviderRt, TaskRt

if TYPE_CHECKING:
    from .engine import Engine


class Fencing:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.fences = Fences()  # tasks whose earlier attempt may still run somewhere
        self._parked: set[int] = set()  # fenced tasks that wait for their fence to enter the ready queue

    def __contains__(self, task_id: int) -> bool:
        return task_id in self.fences

    def fence(self, task: TaskRt, provider_id: str, number: int) -> str:
        """Fence the task on its attempt `number` at the provider, which may still run it;
        returns what it now waits for ("" if nothing: that provider cannot be running it)."""
        e = self.engine
        provider = e.providers.get(provider_id)
        if provider is None:
            return ""
        if provider.conn_id:  # connected: it confirms the stop (report, probe, reconnect)
            fence = Fence(provider_id, number, None, probe=e.ids.probe)
            self._arm_stop_check(provider)
        else:
            until = certainly_stopped_by(provider, e.now, e.config.reconnect_grace)
            if until <= e.now:
                return ""
            fence = Fence(provider_id, number, until)
            self._lift_at(until)
        self.fences.add(task.id, fence)
        task.fence = fence
        e.changes.task(task)
        return fence.describe()

    def restore(self, task: TaskRt) -> None:
        """A task restored with a fence keeps it."""
        fence = task.fence
        if fence is None:
            return
        if fence.until is None:
            fence = task.fence = Fence(fence.provider, fence.attempt, None, probe=self.engine.ids.probe)
        else:
            self._lift_at(fence.until)
        self.fences.add(task.id, fence)

    def parks(self, task: TaskRt) -> bool:
        """Park a fenced task that wants the ready queue; True if it was parked."""
        if task.id not in self.fences:
            return False
        self._parked.add(task.id)
        return True

    def _lift(self, task_ids: list[int]) -> None:
        """These tasks' earlier attempts have ended: they may be dispatched again."""
        e = self.engine
        for tid in task_ids:
            task = e.tasks.get(tid)
            if task is None:
                continue
            task.fence = None
            e.changes.task(task)
            if tid in self._parked:
                self._parked.discard(tid)
                job = e.jobs.get(task.job_id)
                if job is not None and task.state == TaskState.QUEUED:
                    e.enqueue(task, job)
            e.want_dispatch()

    def unfence(self, task: TaskRt) -> None:
        """The task no longer waits for anything (it finished or was cancelled)."""
        if task.fence is not None:
            self.fences.drop(task.id)
            self._parked.discard(task.id)
            task.fence = None

    def lift_due(self) -> None:
        """A time fence passed: its tasks' stranded attempts have certainly been killed."""
        self._lift(self.fences.due(self.engine.now))

    def _lift_at(self, until: float) -> None:
        self.engine.changes.timer(max(0.0, until - self.engine.now), lambda engine: engine.fencing.lift_due())

    def stops_confirmed(self, provider_id: str, held: list[tuple[int, int]], probe: int | None = None) -> None:
        """The provider says it holds only `held`: every stop it was to confirm and that is not
        among them is confirmed."""
        if not self.fences:
            return
        self._lift(self.fences.not_held(provider_id, held, probe))
        self._maybe_close_revoked(provider_id)
        provider = self.engine.providers.get(provider_id)
        if provider is not None and provider.conn_id and self.fences.awaiting(provider_id):
            self._arm_stop_check(provider)  # what it still holds: it was told to stop it

    def stop_confirmed(self, provider_id: str, task_id: int, number: int) -> None:
        """The provider reported the attempt finished: a task waiting for that may go on."""
        if self.fences and self.fences.confirmed(provider_id, task_id, number):
            self._lift([task_id])
            self._maybe_close_revoked(provider_id)

    def awaiting(self, provider_id: str) -> list[int]:
        """Tasks waiting for the provider to confirm a stop."""
        return self.fences.awaiting(provider_id)

    def provider_gone(self, provider: ProviderRt) -> None:
        """Its stream is gone: what it was to confirm waits for its keeper's promise instead."""
        if not self.fences:
            return
        e = self.engine
        until = certainly_stopped_by(provider, e.now, e.config.reconnect_grace)
        moved = self.fences.timed(provider.id, until)
        for tid, fence in moved:
            task = e.tasks.get(tid)
            if task is not None:
                task.fence = fence
                e.changes.task(task)
        if moved:
            self._lift_at(until)

    def _arm_stop_check(self, provider: ProviderRt) -> None:
        """One check per provider a while after it was asked to stop attempts."""
        if not provider.stop_check:
            provider.stop_check = True
            provider_id = provider.id
            self.engine.changes.timer(self.engine.config.terminate_grace,
                                      lambda engine: engine.fencing.check_stops(provider_id))

    def check_stops(self, provider_id: str) -> None:
        """Stops asked of a connected provider a while ago are not confirmed yet: ask it what it
        still runs (an unanswered probe makes it LOST, and its keeper's promise applies)."""
        provider = self.engine.providers.get(provider_id)
        if provider is None:
            return
        provider.stop_check = False
        if provider.conn_id and self.fences.awaiting(provider_id):
            self.engine.supervision.probe(provider)
            self._arm_stop_check(provider)

    def _maybe_close_revoked(self, provider_id: str) -> None:
        provider = self.engine.providers.get(provider_id)
        if provider is not None and provider.close_when_clear and not self.fences.awaiting(provider_id):
            self.close_revoked(provider_id, provider.epoch)

    def close_revoked(self, provider_id: str, epoch: int) -> None:
        """A revoked provider's stream closes once it confirmed its stops, or after a while."""
        provider = self.engine.providers.get(provider_id)
        if provider is None or provider.epoch != epoch or not provider.close_when_clear:
            return
        provider.close_when_clear = False
        if provider.conn_id:
            self.engine.changes.closes.append(provider.conn_id)


__all__ = ["Fencing"]
