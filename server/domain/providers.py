"""Provider rules: connect and reconcile, standby, disconnect and the reconnection grace,
loss and handing unfinished tasks on. A mixin of Engine: it shares the engine's state."""

from __future__ import annotations

from ..errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from .model import EventKind, Hello, ProviderState, TaskState
from .continuation import Pending
from .state import ProviderRt, TaskRt
from .status import provider_status

MAX_LOST_ATTEMPTS = 20
CONNECTED = (ProviderState.CONNECTING, ProviderState.ACTIVE, ProviderState.STANDBY, ProviderState.SUSPECT)
SUPERVISED = (ProviderState.CONNECTING, ProviderState.ACTIVE, ProviderState.STANDBY, ProviderState.DRAINING)


class ProviderRules:
    def connect(self, hello: Hello, conn_id: int, takeover: bool = False) -> ProviderRt:
        """A provider's stream opened with its hello. `takeover`: the caller is proven (by its
        certificate) to be this provider, so a stream of its that is still open is replaced."""
        provider = self.providers.get(hello.name)
        if provider is not None and provider.state == ProviderState.REVOKED:
            raise PermissionDenied(f"provider {hello.name!r} was revoked and may not connect again; "
                                   "ask an operator, or run this agent under another --name")
        if provider is not None and provider.conn_id and takeover:
            self._cs.closes.append(provider.conn_id)
        elif provider is not None and provider.conn_id:
            raise AlreadyExists(f"provider {hello.name!r} is connected already; start this agent with another --name")
        if provider is None:
            provider = self.providers[hello.name] = ProviderRt(hello.name, ProviderState.ACTIVE)
        provider.facts, provider.labels = dict(hello.facts), dict(hello.labels)
        provider.slots, provider.heartbeat, provider.standby = hello.slots, hello.heartbeat, hello.standby
        provider.connect_time = provider.last_seen = self.now
        provider.conn_id, provider.accepting, provider.probe_id = conn_id, False, 0
        provider.epoch += 1
        self._reconcile(provider, set(hello.running))
        if provider.drained:
            state = ProviderState.DRAINING if provider.in_flight else ProviderState.DRAINED
        else:
            state = ProviderState.CONNECTING
        kind = "standby, " if hello.standby else ""
        self._set_provider(provider, state, f"connected ({kind}{hello.slots} slots, heartbeat every "
                                            f"{hello.heartbeat:g}s, holding {len(provider.in_flight)} tasks)")
        return provider

    def _reconcile(self, provider: ProviderRt, held: set[tuple[int, int]]) -> None:
        """Keep what a reconnecting agent still holds; hand on what it lost; stop what is stale."""
        for tid in list(provider.in_flight):
            task = self.tasks[tid]
            if (tid, task.current.number) not in held:
                self._lose(task, f"provider {provider.id} came back without it")
        for tid, number in held:
            if not self._is_current(tid, number, provider.id):
                self._stop_attempt(provider.id, tid, number, "attempt superseded")

    def _is_current(self, task_id: int, number: int, provider_id: str) -> bool:
        task = self.tasks.get(task_id)
        current = task.current if task is not None else None
        return current is not None and current.number == number and current.provider == provider_id

    def _stop_attempt(self, provider_id: str, task_id: int, number: int, reason: str) -> None:
        self._cs.cancels.setdefault(provider_id, []).append((task_id, number, reason))

    def ready_signal(self, provider_id: str, conn_id: int) -> None:
        provider = self.providers.get(provider_id)
        if provider is not None and provider.conn_id == conn_id:
            provider.accepting = True
            provider.last_seen = self.now
            self._dispatch_wanted = True
            if provider.state == ProviderState.CONNECTING:
                standby = provider.standby and not provider.in_flight
                self._set_provider(provider, ProviderState.STANDBY if standby else ProviderState.ACTIVE,
                                   "ready: standing by" if standby else "ready: taking work")

    def disconnect(self, provider_id: str, conn_id: int) -> None:
        provider = self.providers.get(provider_id)
        if provider is None or provider.conn_id != conn_id:
            return
        provider.conn_id, provider.accepting, provider.probe_id = 0, False, 0
        if provider.state != ProviderState.REVOKED:
            self._suspect(provider, "stream closed")

    def _suspect(self, provider: ProviderRt, why: str) -> None:
        provider.epoch += 1
        grace = self.config.reconnect_grace
        self._set_provider(provider, ProviderState.SUSPECT, f"{why}; waiting {grace:g}s for it to reconnect")
        epoch = provider.epoch
        self._cs.timers.append((grace, lambda engine: engine.expire(provider.id, epoch)))

    def expire(self, provider_id: str, epoch: int) -> None:
        """The reconnection grace passed: the provider is lost and its tasks go on elsewhere."""
        provider = self.providers.get(provider_id)
        if provider is None or provider.epoch != epoch or provider.state != ProviderState.SUSPECT:
            return
        self._lost(provider, f"provider {provider_id} lost: no reconnection within {self.config.reconnect_grace:g}s")

    def _lost(self, provider: ProviderRt, reason: str) -> None:
        """Mark the provider LOST, close its stream if open, and hand its tasks on."""
        if provider.conn_id:
            self._cs.closes.append(provider.conn_id)
        provider.conn_id, provider.accepting, provider.probe_id = 0, False, 0
        provider.epoch += 1
        self._set_provider(provider, ProviderState.LOST, reason)
        self._hand_on(provider, reason, stop=False)

    def _lose(self, task: TaskRt, reason: str, continue_as: Pending | None = None) -> None:
        """The attempt's provider is gone (or gave up on it): the task waits for another,
        as a continuation in priority order when `continue_as` says so."""
        self._close_attempt(task, task.current, 0, None, reason)
        if task.state == TaskState.CANCELLED:
            self._forget_if_done(task)
            return
        task.lost_attempts += 1
        if task.lost_attempts > MAX_LOST_ATTEMPTS:
            self._set_task(task, TaskState.FAILED, f"lost with {MAX_LOST_ATTEMPTS} providers in a row")
            self._task_done(task)
        elif continue_as is not None:
            self._wait_to_continue(task, continue_as, reason)
        else:
            self._set_task(task, TaskState.QUEUED, reason)

    def drain(self, provider_id: str, wait: bool, deadline: float) -> ProviderRt:
        """No new work to the provider; its tasks finish (wait) or go on elsewhere now."""
        provider = self.providers.get(provider_id)
        if provider is None:
            raise NotFound(f"provider {provider_id!r} not found; `jobplane providers list` shows them")
        if provider.state == ProviderState.LOST:
            raise FailedPrecondition(f"provider {provider_id!r} is lost; its tasks were handed on already")
        if provider.drained:
            return provider
        provider.drained = True
        if not wait:
            self._set_provider(provider, ProviderState.DRAINING, "draining: handing its tasks on")
            self._hand_on(provider, f"provider {provider_id} drained", stop=True)
        else:
            limit = f" for up to {deadline:g}s" if deadline else ""
            self._set_provider(provider, ProviderState.DRAINING, f"draining: letting its tasks finish{limit}")
            if deadline:
                epoch = provider.epoch
                self._cs.timers.append((deadline, lambda engine: engine._drain_deadline(provider_id, epoch)))
        self._maybe_drained(provider)
        return provider

    def revoke(self, provider_id: str, reason: str) -> ProviderRt:
        """Close the provider's stream, hand its tasks on and refuse it from now on."""
        provider = self.providers.get(provider_id)
        if provider is None:
            raise NotFound(f"provider {provider_id!r} not found; `jobplane providers list` shows them")
        if provider.state == ProviderState.REVOKED:
            return provider
        why = f"provider {provider_id} revoked" + (f": {reason}" if reason else "")
        provider.epoch += 1
        provider.accepting, provider.probe_id = False, 0
        self._set_provider(provider, ProviderState.REVOKED, why)
        # Told to stop its attempts before its stream closes; reports it sends meanwhile are stale.
        self._hand_on(provider, why, stop=True)
        if provider.conn_id:
            self._cs.closes.append(provider.conn_id)
        return provider

    def _drain_deadline(self, provider_id: str, epoch: int) -> None:
        provider = self.providers.get(provider_id)
        if provider is not None and provider.epoch == epoch and provider.state == ProviderState.DRAINING:
            self._hand_on(provider, f"provider {provider_id} drained: its tasks did not finish in time", stop=True)
            self._maybe_drained(provider)

    def _maybe_drained(self, provider: ProviderRt) -> None:
        if provider.state == ProviderState.DRAINING and not provider.in_flight:
            self._set_provider(provider, ProviderState.DRAINED, "drained: no tasks left")

    def _activate_standby(self) -> bool:
        """Queued work beyond active capacity: wake a standby provider that can take it."""
        for provider in self.providers.values():
            if (provider.state == ProviderState.STANDBY and provider.conn_id and provider.accepting
                    and self.ready.peek_for(provider.labels, self.has_all(provider), self.meets(provider)) is not None):
                provider.idle_since = None
                self._set_provider(provider, ProviderState.ACTIVE,
                                   f"activated: {len(self.ready)} tasks waiting beyond active capacity")
                return True
        return False

    def _set_provider(self, provider: ProviderRt, state: ProviderState, message: str) -> None:
        provider.state = state
        self._cs.providers[provider.id] = provider
        self._event(EventKind.PROVIDER, provider_id=provider.id, raw_status=state.name,
                    status=provider_status(state), message=message)
