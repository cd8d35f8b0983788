"""Fencing rules: a task whose earlier attempt may still run gets no new attempt until that
one has certainly ended (see fences.py for how we know). An external or slurm attempt whose
job id the server knows is not fenced: the next attempt adopts that job (adoption.py). A mixin
of Engine: it shares the engine's state; the Fences index is its own."""

from __future__ import annotations

from .fences import Fence, certainly_stopped_by
from .model import TaskState
from .state import ProviderRt, TaskRt


class FenceRules:
    def _fence(self, task: TaskRt, provider_id: str, number: int) -> str:
        """Fence the task on its attempt `number` at the provider, which may still run it;
        returns what it now waits for ("" if nothing: that provider cannot be running it)."""
        provider = self.providers.get(provider_id)
        if provider is None:
            return ""
        if provider.conn_id:  # connected: it confirms the stop (report, probe, reconnect)
            fence = Fence(provider_id, number, None, probe=self.ids.probe)
            self._arm_stop_check(provider)
        else:
            until = certainly_stopped_by(provider, self.now, self.config.reconnect_grace)
            if until <= self.now:
                return ""
            fence = Fence(provider_id, number, until)
            self._lift_at(until)
        self.fences.add(task.id, fence)
        task.fence = fence
        self._cs.task(task)
        return fence.describe()

    def _restore_fence(self, task: TaskRt) -> None:
        fence = task.fence
        if fence.until is None:
            fence = task.fence = Fence(fence.provider, fence.attempt, None, probe=self.ids.probe)
        else:
            self._lift_at(fence.until)
        self.fences.add(task.id, fence)

    def _fenced_out(self, task: TaskRt) -> bool:
        """Park a fenced task that wants the ready queue; True if it was parked."""
        if task.id not in self.fences:
            return False
        self._parked.add(task.id)
        return True

    def _lift(self, task_ids: list[int]) -> None:
        """These tasks' earlier attempts have ended: they may be dispatched again."""
        for tid in task_ids:
            task = self.tasks.get(tid)
            if task is None:
                continue
            task.fence = None
            self._cs.task(task)
            if tid in self._parked:
                self._parked.discard(tid)
                job = self.jobs.get(task.job_id)
                if job is not None and task.state == TaskState.QUEUED:
                    self._enqueue(task, job)
            self._dispatch_wanted = True

    def _unfence(self, task: TaskRt) -> None:
        """The task no longer waits for anything (it finished or was cancelled)."""
        if task.fence is not None:
            self.fences.drop(task.id)
            self._parked.discard(task.id)
            task.fence = None

    def lift_due_fences(self) -> None:
        """A time fence passed: its tasks' stranded attempts have certainly been killed."""
        self._lift(self.fences.due(self.now))

    def _lift_at(self, until: float) -> None:
        self._cs.timers.append((max(0.0, until - self.now), lambda engine: engine.lift_due_fences()))

    def _stops_confirmed(self, provider_id: str, held: list[tuple[int, int]], probe: int | None = None) -> None:
        """The provider says it holds only `held`: every stop it was to confirm and that is not
        among them is confirmed."""
        self._lift(self.fences.not_held(provider_id, held, probe))
        self._maybe_close_revoked(provider_id)
        provider = self.providers.get(provider_id)
        if provider is not None and provider.conn_id and self.fences.awaiting(provider_id):
            self._arm_stop_check(provider)  # what it still holds: it was told to stop it

    def _stop_confirmed(self, provider_id: str, task_id: int, number: int) -> None:
        if self.fences.confirmed(provider_id, task_id, number):
            self._lift([task_id])
            self._maybe_close_revoked(provider_id)

    def _provider_gone(self, provider: ProviderRt) -> None:
        """Its stream is gone: what it was to confirm waits for its keeper's promise instead."""
        until = certainly_stopped_by(provider, self.now, self.config.reconnect_grace)
        moved = self.fences.timed(provider.id, until)
        for tid, fence in moved:
            task = self.tasks.get(tid)
            if task is not None:
                task.fence = fence
                self._cs.task(task)
        if moved:
            self._lift_at(until)

    def _arm_stop_check(self, provider: ProviderRt) -> None:
        """One check per provider a while after it was asked to stop attempts."""
        if not provider.stop_check:
            provider.stop_check = True
            provider_id = provider.id
            self._cs.timers.append((self.config.terminate_grace, lambda e: e.check_stops(provider_id)))

    def check_stops(self, provider_id: str) -> None:
        """Stops asked of a connected provider a while ago are not confirmed yet: ask it what it
        still runs (an unanswered probe makes it LOST, and its keeper's promise applies)."""
        provider = self.providers.get(provider_id)
        if provider is None:
            return
        provider.stop_check = False
        if provider.conn_id and self.fences.awaiting(provider_id):
            self._probe(provider)
            self._arm_stop_check(provider)

    def _maybe_close_revoked(self, provider_id: str) -> None:
        provider = self.providers.get(provider_id)
        if provider is not None and provider.close_when_clear and not self.fences.awaiting(provider_id):
            self._close_revoked(provider_id, provider.epoch)

    def _close_revoked(self, provider_id: str, epoch: int) -> None:
        """A revoked provider's stream closes once it confirmed its stops, or after a while."""
        provider = self.providers.get(provider_id)
        if provider is None or provider.epoch != epoch or not provider.close_when_clear:
            return
        provider.close_when_clear = False
        if provider.conn_id:
            self._cs.closes.append(provider.conn_id)
