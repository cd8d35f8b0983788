"""Providers: connect and reconcile, standby, disconnect and the reconnection grace (the
restart grace after a server restart), loss and handing unfinished tasks on, drain (until
resumed), goodbye and revoke. A component of Engine: the registry (engine.providers) is the engine's, these are
its rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobplane.resources import describe

from ..errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from .changes import Stop
from .inactive import DISABLED
from .model import TASK_DONE, EventKind, Hello, ProviderState
from .state import ProviderRt
from .status import provider_status

if TYPE_CHECKING:
    from .engine import Engine

# An agent that does not say how long it waits between reconnection attempts is assumed to
# wait at most this (the jobplane agent's cap).
DEFAULT_BACKOFF_CAP = 2.0
CONNECTED = (ProviderState.CONNECTING, ProviderState.ACTIVE, ProviderState.STANDBY, ProviderState.SUSPECT)
SUPERVISED = (ProviderState.CONNECTING, ProviderState.ACTIVE, ProviderState.STANDBY, ProviderState.DRAINING)
GONE = (ProviderState.LOST, ProviderState.REVOKED, ProviderState.STOPPED)


class Providers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Lost active providers whose place no standby has taken yet, oldest first (a dict: one
        # place each, however often it was lost).
        self.owed: dict[str, None] = {}
        self.standing_by: set[str] = set()  # providers in STANDBY: a dispatch never looks at every provider

    # ----- connecting ----------------------------------------------------------------

    def connect(self, hello: Hello, conn_id: int, takeover: bool = False) -> ProviderRt:
        """A provider's stream opened with its hello. `takeover`: the caller is proven (by its
        certificate) to be this provider, so a stream of its that is still open is replaced."""
        e = self.engine
        provider = e.providers.get(hello.name)
        if provider is not None and provider.state == ProviderState.REVOKED:
            raise PermissionDenied(f"provider {hello.name!r} was revoked and may not connect again; "
                                   "ask an operator, or run this agent under another --name")
        if provider is not None and provider.conn_id and takeover:
            e.changes.closes.append(provider.conn_id)
        elif provider is not None and provider.conn_id:
            raise AlreadyExists(f"provider {hello.name!r} is connected already; start this agent with another --name")
        if provider is None:
            provider = e.providers[hello.name] = ProviderRt(hello.name, ProviderState.ACTIVE)
        _take_hello(provider, hello, conn_id, e.now)
        self._reconcile(provider, set(hello.running))
        e.suspension.reconnected(provider)
        e.queue_ahead.reconnected(provider)
        e.fencing.stops_confirmed(provider.id, list(hello.running))  # what it no longer holds has ended
        if provider.drained:
            state = ProviderState.DRAINING if provider.in_flight else ProviderState.DRAINED
        else:
            state = ProviderState.CONNECTING
        kind = "standby, " if hello.standby else ""
        kind += f"{describe(hello.capacity)}, " if hello.capacity else ""
        self.set_state(provider, state, f"connected ({kind}{hello.slots} slots, heartbeat every "
                                        f"{hello.heartbeat:g}s, holding {len(provider.in_flight)} tasks)")
        return provider

    def _reconcile(self, provider: ProviderRt, held: set[tuple[int, int]]) -> None:
        """Keep what a reconnecting agent still holds; hand on what it lost; stop what is stale."""
        e = self.engine
        for tid in list(provider.in_flight):
            task = e.tasks[tid]
            if (tid, task.current.number) not in held:
                e.lose(task, f"provider {provider.id} came back without it", fence=False)
        for tid, number in held:
            if not self.is_current(tid, number, provider.id):
                e.adoption.stop_superseded(provider.id, tid, number)
            elif e.tasks[tid].state in TASK_DONE:
                # Cancelled while the provider was away: the stop went nowhere (no stream), and
                # the attempt, still the task's until its report, would run on to its end.
                self.stop_attempt(provider.id, tid, number, e.tasks[tid].reason or "cancelled")

    def kept(self, provider_id: str) -> list[tuple[int, int]]:
        """The attempts (task id, number) the provider holds as their tasks' current ones: what
        a reconnecting agent's held attempts come to after connect (its welcome lists them)."""
        e = self.engine
        provider = e.providers.get(provider_id)
        held = [(tid, e.tasks[tid].current) for tid in (provider.in_flight if provider is not None else ())]
        return [(tid, current.number) for tid, current in held if current is not None]

    def is_current(self, task_id: int, number: int, provider_id: str) -> bool:
        task = self.engine.tasks.get(task_id)
        current = task.current if task is not None else None
        return current is not None and current.number == number and current.provider == provider_id

    def stop_attempt(self, provider_id: str, task_id: int, number: int, reason: str, keep_job: str = "") -> None:
        """Tell the provider to stop the attempt; `keep_job`: an outside job another attempt
        follows now, which the attempt leaves running if it follows it (adoption.py)."""
        self.engine.changes.stop(provider_id, Stop(task_id, number, reason, keep_job))

    def ready_signal(self, provider_id: str, conn_id: int) -> None:
        e = self.engine
        provider = e.providers.get(provider_id)
        if provider is not None and provider.conn_id == conn_id:
            provider.accepting = True
            provider.last_seen = e.now
            e.want_dispatch()
            if provider.state == ProviderState.CONNECTING:
                standby = provider.standby and not provider.in_flight and not provider.promoted
                self.set_state(provider, ProviderState.STANDBY if standby else ProviderState.ACTIVE,
                               "ready: standing by" if standby else "ready: taking work")

    # ----- losing them ---------------------------------------------------------------

    def disconnect(self, provider_id: str, conn_id: int) -> None:
        e = self.engine
        provider = e.providers.get(provider_id)
        if provider is None or provider.conn_id != conn_id:
            return
        provider.conn_id, provider.accepting, provider.probe_id = 0, False, 0
        e.supervision.schedule(provider)  # no heartbeat is promised now (a revoked one's state stays)
        # Heard from until its stream closed: the agent process ended (or closed it); else it
        # fell silent first and its keeper's promise counts from its last signal.
        heard = e.now - (provider.last_seen or e.now) <= provider.heartbeat * e.config.heartbeat_tolerance
        provider.closed_at = e.now if heard else None
        e.fencing.provider_gone(provider)
        if provider.state == ProviderState.REVOKED:
            return
        if provider.leaving and not provider.in_flight:
            provider.epoch += 1
            self.set_state(provider, ProviderState.STOPPED, "stopped: the agent said goodbye and holds no task")
        else:
            self._suspect(provider, "stream closed")

    def _suspect(self, provider: ProviderRt, why: str) -> None:
        if provider.state != ProviderState.SUSPECT:
            provider.before_suspect = provider.state
        provider.epoch += 1
        grace = self.engine.config.reconnect_grace
        self.set_state(provider, ProviderState.SUSPECT, f"{why}; waiting {grace:g}s for it to reconnect")
        provider_id, epoch = provider.id, provider.epoch
        self.engine.changes.timer(grace, lambda engine: engine.provider_rules.expire(provider_id, epoch))

    def expire(self, provider_id: str, epoch: int) -> None:
        """The reconnection grace passed: the provider is lost and its tasks go on elsewhere."""
        e = self.engine
        provider = e.providers.get(provider_id)
        if provider is None or provider.epoch != epoch or provider.state != ProviderState.SUSPECT:
            return
        if provider.grace_until is not None:
            why = f"no reconnection within the {self._restart_grace(provider):g}s restart grace"
        else:
            why = f"no reconnection within {e.config.reconnect_grace:g}s"
        self.lost(provider, f"provider {provider_id} lost: {why}")

    def lost(self, provider: ProviderRt, reason: str) -> None:
        """Mark the provider LOST, close its stream if open, and hand its tasks on."""
        e = self.engine
        if provider.conn_id:
            e.changes.closes.append(provider.conn_id)
        provider.conn_id, provider.accepting, provider.probe_id = 0, False, 0
        provider.epoch += 1
        provider.grace_until = None
        was = provider.before_suspect if provider.state == ProviderState.SUSPECT else provider.state
        self.set_state(provider, ProviderState.LOST, reason)
        if was == ProviderState.ACTIVE and (provider.promoted or not provider.standby):
            self.owed[provider.id] = None  # a standby takes its place (fill_places)
            e.want_dispatch()
        e.fencing.provider_gone(provider)
        e.continuations.hand_on(provider, reason, stop=False)

    def fill_places(self) -> None:
        """Active providers were lost: a standby takes each one's place for good, so capacity is
        kept whether or not work was running there (one with the same labels first). Not while
        continuations wait to go out (fenced, or for a slot): a standby that takes them takes the
        place when they are all out (continuation.py)."""
        e = self.engine
        if not self.owed or not self.standing_by:  # (each dispatch asks: it costs nothing per provider)
            return
        self.owed = {pid: None for pid in self.owed if e.providers[pid].state == ProviderState.LOST}
        if not self.owed or e.continuations.pending or any(
                e.providers[pid].took_continuations for pid in self.standing_by):
            return
        while self.owed:
            standbys = [p for p in map(e.providers.__getitem__, self.standing_by)
                        if p.conn_id and p.accepting and not p.drained]
            if not standbys:
                return
            lost_id = next(iter(self.owed))
            del self.owed[lost_id]
            lost = e.providers[lost_id]
            chosen = min(standbys, key=lambda p: (p.labels != lost.labels, p.id))
            chosen.promoted, chosen.idle_since = True, None
            self.set_state(chosen, ProviderState.ACTIVE, f"promoted: takes the place of lost provider {lost.id}")

    def took_place(self) -> None:
        """A standby was promoted after taking continuations: it holds one lost provider's place."""
        if self.owed:
            del self.owed[next(iter(self.owed))]

    # ----- after a server restart ----------------------------------------------------

    def restore(self) -> None:
        """The providers connected before the server restarted are SUSPECT until they come
        back; their restart grace starts once the server listens (arm_restart_grace)."""
        for provider in self.engine.providers.values():
            provider.conn_id, provider.accepting = 0, False
            if provider.state not in GONE:
                provider.epoch += 1
                provider.grace_until = None
                self.set_state(provider, ProviderState.SUSPECT, "the server restarted; waiting for it to reconnect")

    def arm_restart_grace(self, takeover: float = 0.0) -> None:
        """The server listens again: each provider it restored gets a grace sized from its own
        reconnect backoff to come back with its tasks (a finished attempt's report included).
        `takeover`: a replica took over from a leader that died, and its agents first have to
        notice and find it among the replicas; they get this many seconds more."""
        e = self.engine
        what = "a new leader took over" if takeover else "the server restarted"
        for provider in e.providers.values():
            if provider.state != ProviderState.SUSPECT or provider.conn_id or provider.grace_until is not None:
                continue
            grace = self._restart_grace(provider) + takeover
            provider.grace_until = e.now + grace
            provider.closed_at = e.now
            self.set_state(provider, ProviderState.SUSPECT, f"{what}; waiting {grace:g}s "
                                                            "(its restart grace) for it to reconnect")
            e.changes.timer(grace, lambda engine, pid=provider.id, epoch=provider.epoch:
                            engine.provider_rules.expire(pid, epoch))

    def _restart_grace(self, provider: ProviderRt) -> float:
        """--restart-grace, else two of the agent's longest reconnect pauses, two heartbeats and
        a second for its hello (never less than the reconnect grace)."""
        config = self.engine.config
        if config.restart_grace > 0:
            return config.restart_grace
        cap = provider.backoff_cap or DEFAULT_BACKOFF_CAP
        return max(config.reconnect_grace, round(2 * cap + 2 * provider.heartbeat + 1.0, 3))

    # ----- drain, goodbye, revoke ----------------------------------------------------

    def drain(self, provider_id: str, wait: bool, deadline: float) -> ProviderRt:
        """No new work to the provider; its tasks finish (wait) or go on elsewhere now."""
        provider = self._named(provider_id)
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
        provider = self.engine.providers.get(provider_id)
        if provider is None or provider.conn_id != conn_id or provider.leaving:
            return
        provider.leaving = True
        if provider.state in (ProviderState.DRAINING, ProviderState.DRAINED, ProviderState.REVOKED):
            return  # handing on already, or nothing to hand on
        self._drain(provider, wait, deadline, f"provider {provider_id} is stopping")

    def _drain(self, provider: ProviderRt, wait: bool, deadline: float, why: str) -> None:
        e = self.engine
        if not wait:
            self.set_state(provider, ProviderState.DRAINING, f"{why}: handing its tasks on")
            e.continuations.hand_on(provider, why, stop=True)
        else:
            limit = f" for up to {deadline:g}s" if deadline else ""
            self.set_state(provider, ProviderState.DRAINING, f"{why}: letting its tasks finish{limit}")
            if deadline:
                provider_id, epoch = provider.id, provider.epoch
                e.changes.timer(deadline, lambda engine: engine.provider_rules.drain_deadline(provider_id, epoch))
        self.maybe_drained(provider)

    def resume(self, provider_id: str) -> ProviderRt:
        """Undo a drain: the provider takes work again, at once if it is connected and ready,
        else once it is. A provider that is not drained is left as it is."""
        provider = self._named(provider_id)
        if provider.state == ProviderState.REVOKED:
            raise FailedPrecondition(f"provider {provider_id!r} was revoked and may not connect again; there is "
                                     "nothing to resume: run the agent under another --name")
        if not provider.drained:
            return provider
        provider.drained = False
        why = f"provider {provider_id} resumed"
        draining = provider.state in (ProviderState.DRAINING, ProviderState.DRAINED)
        if draining and not provider.conn_id and provider.in_flight:
            self._suspect(provider, f"{why} while not connected")
        elif draining and not provider.conn_id:
            self.set_state(provider, ProviderState.STOPPED, f"{why}: takes work once an agent with its name connects")
        elif not draining or provider.leaving:  # lost, stopped, suspect or stopping: as it is, undrained
            self.set_state(provider, provider.state, f"{why}: takes work once an agent with its name is ready")
        elif not provider.accepting:
            provider.epoch += 1  # a drain's deadline set before does nothing now
            self.set_state(provider, ProviderState.CONNECTING, f"{why}: takes work once it signals ready")
        else:
            provider.epoch += 1
            standby = provider.standby and not provider.in_flight and not provider.promoted
            self.set_state(provider, ProviderState.STANDBY if standby else ProviderState.ACTIVE,
                           f"{why}: standing by" if standby else f"{why}: taking work")
            self.engine.want_dispatch()
        return provider

    def drain_deadline(self, provider_id: str, epoch: int) -> None:
        provider = self.engine.providers.get(provider_id)
        if provider is not None and provider.epoch == epoch and provider.state == ProviderState.DRAINING:
            self.engine.continuations.hand_on(provider, f"provider {provider_id} drained: its tasks did not "
                                                        "finish in time", stop=True)
            self.maybe_drained(provider)

    def maybe_drained(self, provider: ProviderRt) -> None:
        if provider.state == ProviderState.DRAINING and not provider.in_flight:
            self.set_state(provider, ProviderState.DRAINED, "drained: no tasks left")

    def revoke(self, provider_id: str, reason: str) -> ProviderRt:
        """Close the provider's stream, hand its tasks on and refuse it from now on."""
        e = self.engine
        provider = self._named(provider_id)
        if provider.state == ProviderState.REVOKED:
            return provider
        why = f"provider {provider_id} revoked" + (f": {reason}" if reason else "")
        provider.epoch += 1
        provider.accepting, provider.probe_id = False, 0
        self.set_state(provider, ProviderState.REVOKED, why)
        # Told to stop its attempts before its stream closes; reports it sends meanwhile are
        # stale, but they confirm the stops: the stream closes once they are all in (or soon).
        e.continuations.hand_on(provider, why, stop=True)
        if provider.conn_id and e.fencing.awaiting(provider_id):
            provider.close_when_clear = True
            epoch = provider.epoch
            e.changes.timer(e.config.terminate_grace, lambda engine: engine.fencing.close_revoked(provider_id, epoch))
        elif provider.conn_id:
            e.changes.closes.append(provider.conn_id)
        return provider

    def _named(self, provider_id: str) -> ProviderRt:
        provider = self.engine.providers.get(provider_id)
        if provider is None:
            raise NotFound(f"provider {provider_id!r} not found; `jobplane providers list` shows them")
        return provider

    # ----- standby -------------------------------------------------------------------

    def activate_standby(self) -> bool:
        """Queued work beyond active capacity: wake a standby provider that can take it."""
        e = self.engine
        for provider in e.providers.values():
            if (provider.state == ProviderState.STANDBY and provider.conn_id and provider.accepting
                    and e.ready.peek_for(provider.labels, e.inventory.has_all(provider),
                                         e.conditions.meets(provider), e.capacity.fits(provider)) is not None):
                provider.idle_since = None
                self.set_state(provider, ProviderState.ACTIVE,
                               f"activated: {len(e.ready)} tasks waiting beyond active capacity")
                return True
        return False

    def set_state(self, provider: ProviderRt, state: ProviderState, message: str) -> None:
        if (state in DISABLED) != (provider.state in DISABLED):
            self.engine.want_dispatch()  # what only it could run may be INACTIVE now, or no longer (inactive.py)
        provider.state = state
        if state == ProviderState.STANDBY:
            self.standing_by.add(provider.id)
        else:
            self.standing_by.discard(provider.id)
        self.engine.supervision.schedule(provider)  # e.g. an activated standby: its idle time counts now
        self.engine.changes.provider(provider)
        self.engine.event(EventKind.PROVIDER, provider_id=provider.id, raw_status=state.name,
                          status=provider_status(state), message=message)


def _take_hello(provider: ProviderRt, hello: Hello, conn_id: int, now: float) -> None:
    """What a hello says of the provider, and a fresh connection."""
    provider.facts, provider.labels = dict(hello.facts), dict(hello.labels)
    provider.slots, provider.heartbeat, provider.standby = hello.slots, hello.heartbeat, hello.standby
    provider.kill_deadline, provider.containment = hello.kill_deadline, hello.containment
    provider.backoff_cap = hello.backoff_cap
    provider.capacity = hello.capacity
    provider.ahead, provider.finishes, provider.gives_back = hello.queue_ahead, None, hello.gives_back
    provider.connect_time = provider.last_seen = now
    provider.conn_id, provider.accepting, provider.probe_id = conn_id, False, 0
    provider.closed_at = provider.grace_until = None
    provider.leaving = provider.close_when_clear = False
    provider.epoch += 1


__all__ = ["CONNECTED", "DEFAULT_BACKOFF_CAP", "Providers", "SUPERVISED"]
