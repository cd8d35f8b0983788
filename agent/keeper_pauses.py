"""The keeper's two ways of pausing an attempt's processes: suspended by request (a hold:
every process SIGSTOPped, `ps` shows T) and frozen for want of an agent process (the agent died
or a new one adopted the attempt paused). Either keeps the attempt from running; it runs on
only when neither holds it."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable

from . import cgroups, keeper_wire as wire, procs
from .keeper_attempts import Attempt

log = logging.getLogger("jobplane.agent.keeper")

Members = Callable[[Attempt], list[int]]  # every living process of an attempt (Keeper._members)


def suspend(attempt: Attempt, members: Members) -> None:
    """Every process of the attempt SIGSTOPped (so `ps` shows T): in a cgroup, frozen first, so
    that none forks while the others are stopped; else stopped round after round."""
    if attempt.suspended is not None:
        return
    deadline = time.monotonic() + wire.KILL_DEADLINE
    if attempt.cgroup is not None:
        cgroups.freeze(attempt.cgroup, True)
        cgroups.wait_frozen(attempt.cgroup, deadline)
        attempt.suspended = cgroups.members(attempt.cgroup)
        procs.send(attempt.suspended, signal.SIGSTOP)  # taken as they thaw, before they run on
        cgroups.freeze(attempt.cgroup, False)
    else:
        attempt.suspended = procs.stop_all(lambda: members(attempt), deadline)
    # Judged by the process table: a stop that did not take is sent again, and told.
    running = procs.unstopped(attempt.suspended, deadline + wire.KILL_DEADLINE)
    if running:
        log.warning("suspending the attempt in %s: processes %s are still not stopped",
                    attempt.directory, running)
    log.info("suspended the attempt in %s (%d processes stopped)", attempt.directory,
             len(attempt.suspended) - len(running))


def resume(attempt: Attempt) -> None:
    """Continue a suspended attempt, unless it is also paused for want of an agent process."""
    if attempt.suspended is None:
        return
    stopped, attempt.suspended = attempt.suspended, None
    if attempt.stopped is None:  # not also paused for want of an agent process
        procs.send(stopped, signal.SIGCONT)
    log.info("resumed the attempt in %s", attempt.directory)


def freeze(attempts: list[Attempt], members: Members) -> None:
    """Pause what the attempts run: a dead agent's attempt makes no progress (no side
    effect, no checkpoint) that its continuation would then redo."""
    deadline = time.monotonic() + wire.KILL_DEADLINE
    for attempt in attempts:
        if attempt.suspended is not None or attempt.status is not None:
            attempt.stopped = []  # stopped already (or ending); stays so until resumed
        elif attempt.cgroup is not None:
            cgroups.freeze(attempt.cgroup, True)
            attempt.stopped = []
        else:
            attempt.stopped = procs.stop_all(lambda a=attempt: members(a), deadline)


def thaw(attempt: Attempt) -> None:
    """Undo `freeze` (an attempt suspended by request stays so)."""
    if attempt.stopped is None:
        return
    if attempt.suspended is not None:  # suspended by request: it stays paused
        attempt.stopped = None
        return
    if attempt.cgroup is not None:
        cgroups.freeze(attempt.cgroup, False)
    procs.send(attempt.stopped, signal.SIGCONT)
    attempt.stopped = None
