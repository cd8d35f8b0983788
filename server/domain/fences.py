"""Fences: at most one live attempt per task, across every fault.

When the server gives up on an attempt that may still be running (its provider was lost,
drained, revoked or said goodbye; the attempt was overdue or past its hard timeout), the
task's next attempt must not start before that one has certainly ended. The task is fenced
on the old attempt until one of these says it has:

- the provider confirms: it reports the attempt finished (a stale report, rejected but
  telling), answers a probe without it, or reconnects without holding it;
- the provider is gone and its keeper has certainly killed what it ran: the agent promised
  (Hello.kill_deadline_seconds) that a dead agent's attempts die within the reconnect grace
  plus that deadline, and a frozen one's within two heartbeat intervals more.

A fenced task keeps its place (in the ready queue's waiting or the continuation line) and is
dispatched when the fence lifts. Fences are persisted with the task, so a server restart
keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import ProviderRt

# Slack on top of the agent's promise, for clocks and the time a kill takes to show.
MARGIN = 0.25


@dataclass(frozen=True)
class Fence:
    """The attempt `attempt` of a task on `provider` may still run; `until`: the time it has
    certainly ended by, or None while the connected provider is yet to confirm. Replies to
    probes numbered below `probe` were sent before the stop and confirm nothing."""

    provider: str
    attempt: int
    until: float | None = None
    probe: int = 0

    def dump(self) -> str:
        return json.dumps({"provider": self.provider, "attempt": self.attempt, "until": self.until})

    @staticmethod
    def load(text: str) -> Fence | None:
        if not text:
            return None
        d = json.loads(text)
        return Fence(str(d["provider"]), int(d["attempt"]), d.get("until"))

    def describe(self) -> str:
        return f"once attempt {self.attempt} on {self.provider} has certainly stopped"


def certainly_stopped_by(p: ProviderRt, now: float, reconnect_grace: float) -> float:
    """When nothing a provider that is gone ran can still be running.

    Its keeper kills the attempts of a dead agent once the reconnect grace has passed since
    the agent's stream closed, and those of a frozen one once it has not renewed its lease
    for the grace plus two heartbeats; either takes at most the promised kill deadline. An
    agent that promised nothing (kill deadline 0) is trusted to have stopped now, as before.
    """
    if p.kill_deadline <= 0:
        return now
    if p.closed_at is not None:  # the stream closed while it was heard from: the process ended
        since = p.closed_at
    else:  # silent: frozen, or its machine is gone; it was alive at its last signal
        since = (p.last_seen or now) + 3 * p.heartbeat
    return max(now, since + reconnect_grace + p.kill_deadline + MARGIN)


class Fences:
    """Which tasks wait on which attempts (few: only attempts in limbo)."""

    def __init__(self) -> None:
        self._by_task: dict[int, Fence] = {}

    def __contains__(self, task_id: int) -> bool:
        return task_id in self._by_task

    def __len__(self) -> int:
        return len(self._by_task)

    def add(self, task_id: int, fence: Fence) -> None:
        self._by_task[task_id] = fence

    def drop(self, task_id: int) -> None:
        self._by_task.pop(task_id, None)

    def awaiting(self, provider: str) -> list[int]:
        """Tasks waiting for `provider` to confirm a stop."""
        return [tid for tid, f in self._by_task.items() if f.provider == provider and f.until is None]

    def confirmed(self, provider: str, task_id: int, attempt: int) -> bool:
        """The provider says this attempt ended; True if that lifted a fence."""
        fence = self._by_task.get(task_id)
        if fence is None or fence.provider != provider or fence.attempt != attempt:
            return False
        del self._by_task[task_id]
        return True

    def not_held(self, provider: str, held: Iterable[tuple[int, int]], probe: int | None = None) -> list[int]:
        """The provider holds (or runs) only `held`: lift its fences on anything else and
        return those task ids. `probe`: the reply's probe id, when a probe reply told us.
        Attempts it still holds wait for it to confirm again, whatever time they had."""
        keep = set(held)
        lifted = []
        for tid, f in list(self._by_task.items()):
            if f.provider != provider or (probe is not None and probe < f.probe):
                continue
            if (tid, f.attempt) not in keep:
                lifted.append(tid)
                del self._by_task[tid]
            elif f.until is not None:
                self._by_task[tid] = replace(f, until=None)
        return lifted

    def timed(self, provider: str, until: float) -> list[tuple[int, Fence]]:
        """The provider is gone: the fences waiting for it to confirm wait until `until` instead."""
        moved = [(tid, replace(f, until=until)) for tid, f in self._by_task.items()
                 if f.provider == provider and f.until is None]
        self._by_task.update(moved)
        return moved

    def due(self, now: float) -> list[int]:
        """Task ids whose time has come (their fences are lifted)."""
        lifted = [tid for tid, f in self._by_task.items() if f.until is not None and f.until <= now]
        for tid in lifted:
            del self._by_task[tid]
        return lifted
