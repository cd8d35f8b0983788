"""Provider rules: connect and reconcile, standby, disconnect and the reconnection grace (the
restart grace after a server restart), loss and handing unfinished tasks on, drain, goodbye
and revoke. A mixin of Engine: it shares the engine's state."""

from __future__ import annotations

from ..errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from .model import EventKind, Hello, ProviderState, TaskState
from .adoption import handed_on
from .continuation import Pending
from .state import ProviderRt, TaskRt
from .status import provider_status

MAX_LOST_ATTEMPTS = 20
# An agent that does not say how long it waits between reconnection attempts is assumed to
# wait at most this (the jobplane agent's cap).
DEFAULT_BACKOFF_CAP = 2.0
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
        provider.kill_deadline, provider.containment = hello.kill_deadline, hello.containment
        provider.backoff_cap = hello.backoff_cap
        provider.connect_time = provider.last_seen = self.now
        provider.conn_id, provider.accepting, provider.probe_id = conn_id, False, 0
        provider.closed_at = provider.grace_until = None
        provider.leaving = provider.close_when_clear = False
        provider.epoch += 1
        self._reconcile(provider, set(hello.running))
        if self.fences:  # stops it was to confirm: what it no longer holds has ended
            self._stops_confirmed(provider.id, list(hello.running))
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
                self._lose(task, f"provider {provider.id} came back without it", fence=False)
        for tid, number in held:
            if not self._is_current(tid, number, provider.id):
                self._stop_superseded(provider.id, tid, number)

    def _is_current(self, task_id: int, number: int, provider_id: str) -> bool:
        task = self.tasks.get(task_id)
        current = task.current if task is not None else None
        return current is not None and current.number == number and current.provider == provider_id

    def _stop_attempt(self, provider_id: str, task_id: int, number: int, reason: str, keep_job: str = "") -> None:
        """Tell the provider to stop the attempt; `keep_job`: an outside job another attempt
        follows now, which the attempt leaves running if it follows it (adoption.py)."""
        self._cs.cancels.setdefault(provider_id, []).append((task_id, number, reason))
        if keep_job:
            self._cs.handed_on[(task_id, number)] = keep_job

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
        # Heard from until its stream closed: the agent process ended (or closed it); else it
        # fell silent first and its keeper's promise counts from its last signal.
        heard = self.now - (provider.last_seen or self.now) <= provider.heartbeat * self.config.heartbeat_tolerance
        provider.closed_at = self.now if heard else None
        if self.fences:
            self._provider_gone(provider)
        if provider.state == ProviderState.REVOKED:
            return
        if provider.leaving and not provider.in_flight:
            provider.epoch += 1
            self._set_provider(provider, ProviderState.STOPPED, "stopped: the agent said goodbye and holds no task")
        else:
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
        if provider.grace_until is not None:
            why = f"no reconnection within the {self._restart_grace(provider):g}s restart grace"
        else:
            why = f"no reconnection within {self.config.reconnect_grace:g}s"
        self._lost(provider, f"provider {provider_id} lost: {why}")

    # ----- after a server restart ----------------------------------------------------

    def _await_after_restart(self, provider: ProviderRt) -> None:
        """A provider connected before the server restarted: SUSPECT until it comes back;
        its restart grace starts once the server listens (arm_restart_grace)."""
        provider.epoch += 1
        provider.grace_until = None
        self._set_provider(provider, ProviderState.SUSPECT, "the server restarted; waiting for it to reconnect")

    def arm_restart_grace(self) -> None:
        """The server listens again: each provider it restored gets a grace sized from its own
        reconnect backoff to come back with its tasks (a finished attempt's report included)."""
        for provider in self.providers.values():
            if provider.state != ProviderState.SUSPECT or provider.conn_id or provider.grace_until is not None:
                continue
            grace = self._restart_grace(provider)
            provider.grace_until = self.now + grace
            provider.closed_at = self.now
            self._set_provider(provider, ProviderState.SUSPECT, f"the server restarted; waiting {grace:g}s "
                                                                "(its restart grace) for it to reconnect")
            self._cs.timers.append((grace, lambda engine, pid=provider.id, e=provider.epoch: engine.expire(pid, e)))

    def _restart_grace(self, provider: ProviderRt) -> float:
        """--restart-grace, else two of the agent's longest reconnect pauses, two heartbeats and
        a second for its hello (never less than the reconnect grace)."""
        if self.config.restart_grace > 0:
            return self.config.restart_grace
        cap = provider.backoff_cap or DEFAULT_BACKOFF_CAP
        return max(self.config.reconnect_grace, round(2 * cap + 2 * provider.heartbeat + 1.0, 3))

    def _lost(self, provider: ProviderRt, reason: str) -> None:
        """Mark the provider LOST, close its stream if open, and hand its tasks on."""
        if provider.conn_id:
            self._cs.closes.append(provider.conn_id)
        provider.conn_id, provider.accepting, provider.probe_id = 0, False, 0
        provider.epoch += 1
        provider.grace_until = None
        self._set_provider(provider, ProviderState.LOST, reason)
        if self.fences:
            self._provider_gone(provider)
        self._hand_on(provider, reason, stop=False)

    def _lose(self, task: TaskRt, reason: str, continue_as: Pending | None = None, fence: bool = True) -> None:
        """The attempt's provider is gone (or gave up on it): the task waits for another,
        as a continuation in priority order when `continue_as` says so. `fence`: the attempt
        may still run, so the next one waits until it has certainly stopped; unless it follows
        an outside job, which the next one adopts instead (adoption.py)."""
        attempt = task.current
        handed = self._handed_job(task)
        if handed:
            reason = f"{reason}; {handed_on(task.spec.environment, handed)}"
        self._close_attempt(task, attempt, 0, None, reason)
        if task.state == TaskState.CANCELLED:
            self._forget_if_done(task)
            return
        if handed:
            task.adopt_job = handed
        elif fence and (waits := self._fence(task, attempt.provider, attempt.number)):
            reason = f"{reason}; it continues {waits}"
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
        self._drain(provider, wait, deadline, f"provider {provider_id} drained")
        return provider

    def goodbye(self, provider_id: str, conn_id: int, wait: bool, deadline: float) -> None:
        """The agent is stopping: as a drain, but for this connection only (a new agent process
        with its name takes work again)."""
        provider = self.providers.get(provider_id)
        if provider is None or provider.conn_id != conn_id or provider.leaving:
            return
        provider.leaving = True
        if provider.state in (ProviderState.DRAINING, ProviderState.DRAINED, ProviderState.REVOKED):
            return  # handing on already, or nothing to hand on
        self._drain(provider, wait, deadline, f"provider {provider_id} is stopping")

    def _drain(self, provider: ProviderRt, wait: bool, deadline: float, why: str) -> None:
        provider_id = provider.id
        if not wait:
            self._set_provider(provider, ProviderState.DRAINING, f"{why}: handing its tasks on")
            self._hand_on(provider, why, stop=True)
        else:
            limit = f" for up to {deadline:g}s" if deadline else ""
            self._set_provider(provider, ProviderState.DRAINING, f"{why}: letting its tasks finish{limit}")
            if deadline:
                epoch = provider.epoch
                self._cs.timers.append((deadline, lambda engine: engine._drain_deadline(provider_id, epoch)))
        self._maybe_drained(provider)

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
        # Told to stop its attempts before its stream closes; reports it sends meanwhile are
        # stale, but they confirm the stops: the stream closes once they are all in (or soon).
        self._hand_on(provider, why, stop=True)
        if provider.conn_id and self.fences.awaiting(provider_id):
            provider.close_when_clear = True
            epoch = provider.epoch
            self._cs.timers.append((self.config.terminate_grace,
                                    lambda engine: engine._close_revoked(provider_id, epoch)))
        elif provider.conn_id:
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
