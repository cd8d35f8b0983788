"""Queue-ahead: quick tasks given to an agent beyond its slots, so that its next task is there
when a slot frees instead of a commit's round trip later (the agent starts them in the order
they came; Hello.queue_ahead says how many it holds at most).

A task queued ahead waits behind the agent's running ones, so the server queues ahead only
what will not wait long: at most as many tasks as that provider finished in the last WINDOW
seconds (at its recent pace they are started within about that), and only tasks of jobs whose
last finished attempt held its slot under QUICK seconds. A new job, a job whose tasks turned
out slow, and a provider whose every slot holds a task not known to be quick (or suspended in
place) get none; every provider's free slots are filled before any task is queued ahead, and
none is at a provider a waiting continuation could go to (continuation.py: it waits for a free
slot, which queueing ahead would keep from freeing). A component of Engine: the providers'
recent finishes and the jobs' last runtimes are its state (in memory: after a restart it
starts cold).

A task out at an agent that must not start there after all (its job was held, or its runtime
conditions stopped holding there) is taken back: its agent gives the attempt back if it has not
started (not yet given a slot), as it does one no slot freed for, and lets it run on if it has
(Cancellations.unstarted_only). The attempts asked back are in memory too: after a restart a
give-back still comes, with the plainer reason."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .changes import Stop
from .model import Outcome, ProviderState, TaskState

if TYPE_CHECKING:
    from .engine import Engine
    from .model import Report
    from .state import AttemptRt, JobRt, ProviderRt, TaskRt

QUICK = 0.1  # seconds: an attempt that held its slot less long was quick
WINDOW = 0.25  # seconds: a provider's finishes this recent count towards what it may hold ahead
QUEUED_AHEAD = "queued ahead at the provider: it starts when one of its slots frees"
NOT_STARTED = "not_started"  # the raw state of an attempt queued ahead that its agent gave back
UNSLOTTED = "none of its slots freed for it"  # why an agent gives back what it was not asked back
HELD = "its job is held by hand: {}"  # why a task of a held job is taken back (holds.py)


class QueueAhead:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._asked: dict[int, tuple[int, str]] = {}  # task id -> (attempt, why) taken back, unanswered

    def finished(self, job: JobRt | None, attempt: AttemptRt, provider: ProviderRt | None) -> None:
        """An attempt the provider reported finished: its pace, and whether its job is quick."""
        now = self.engine.now
        if job is not None:
            job.quick = attempt.start_time is not None and now - attempt.start_time < QUICK
        if provider is not None and provider.ahead:
            if provider.finishes is None:
                provider.finishes = deque(maxlen=provider.ahead)
            provider.finishes.append(now)

    def take_back(self, task: TaskRt, why: str) -> bool:
        """Ask the agent holding the task's assigned attempt to give it back if it has not
        started: `why` it must not start there. It comes back (given_back) and is queued again,
        where what holds it keeps it; one that started meanwhile runs on. False (nothing asked)
        when it is not assigned, was asked already, or its agent cannot (an older one)."""
        attempt = task.current
        if task.state != TaskState.ASSIGNED or attempt is None or self._asked.get(task.id, (0,))[0] == attempt.number:
            return False
        provider = self.engine.providers.get(attempt.provider)
        if provider is None or not provider.gives_back:
            return False
        self._asked[task.id] = (attempt.number, why)
        self.engine.changes.stop(provider.id, Stop(task.id, attempt.number, why, unstarted_only=True))
        return True

    def can_take_back(self, task: TaskRt) -> bool:
        """Whether the task is out at a provider but not known to have started, and its agent
        would give it back."""
        provider = self.engine.providers.get(task.provider or "") if task.state == TaskState.ASSIGNED else None
        return provider is not None and provider.gives_back

    def reconnected(self, provider: ProviderRt) -> None:
        """A provider (re)connected holding assigned attempts that must not start there: they are
        asked back again (the ask may have been lost with a stream, or with a restart of the
        server, which knows then only that their job is held by hand; failing conditions are
        looked at again with the next heartbeat)."""
        e = self.engine
        for tid in provider.in_flight if provider.gives_back else ():
            task = e.tasks.get(tid)
            job = e.jobs.get(task.job_id) if task is not None else None
            if job is None or task.state != TaskState.ASSIGNED or task.suspended.get("mode") == "requeue":
                continue  # (one a hold requeues (suspension.REQUEUE) is stopped already; one it suspends is asked too)
            why = self._asked.pop(tid, (0, ""))[1] or (HELD.format(job.hold) if job.hold else "")
            if why:
                self.take_back(task, why)

    def forget(self, task_id: int) -> None:
        """Its attempt started, or ended: no give-back is awaited."""
        if self._asked:
            self._asked.pop(task_id, None)

    def given_back(self, task: TaskRt, attempt: AttemptRt, report: Report) -> bool:
        """The agent gave back an attempt it had not started: queued ahead, no slot freed for it
        in time (behind a task that turned out long, or a paused one), or taken back (its job
        held, its conditions failing there). It never started, so the task is queued again at
        once (held, if something holds it), the attempt not counted as a try (TaskRt.given_back;
        it may still become late to start), and an outside job it was to adopt is adopted by the
        next; True. False for any other end."""
        if (report.raw.get("state") != NOT_STARTED or report.outcome != Outcome.CANCELLED
                or task.state != TaskState.ASSIGNED):
            return False
        e = self.engine
        number, asked = self._asked.pop(task.id, (0, ""))
        why = f"given back unstarted by {attempt.provider}: {asked if number == attempt.number else UNSLOTTED}"
        adopt = e.adoption.handed_job(task)  # the outside job it was to follow runs on: the next one follows it
        task.given_back += 1
        e.close_attempt(task, attempt, int(Outcome.CANCELLED), None, why)
        task.adopt_job = adopt
        e.lifecycle.transition(task, TaskState.QUEUED, f"{why}; queued again")
        return True

    def room(self, provider: ProviderRt) -> int:
        """How many more tasks the provider may be given beyond its free slots now."""
        recent = provider.finishes
        if not recent or not provider.accepting or provider.state != ProviderState.ACTIVE:
            return 0
        since = self.engine.now - WINDOW
        while recent and recent[0] < since:
            recent.popleft()
        return min(provider.ahead, len(recent)) - max(0, len(provider.in_flight) - provider.slots)

    def behind_quick(self, provider: ProviderRt) -> bool:
        """Whether a task queued ahead at the provider starts at its recent pace: fewer of the tasks
        out there than its slots are of a job not known to be quick, or suspended in place (either
        may hold its slot long), so a slot keeps running quick ones. Behind a long task alone a
        task queued ahead would wait as long (its recent finishes are from before it started)."""
        e = self.engine
        held_long = 0
        for tid in provider.in_flight:
            task = e.tasks.get(tid)
            job = e.jobs.get(task.job_id) if task is not None else None
            if job is None or not job.quick or task.suspended:
                held_long += 1
                if held_long >= provider.slots:
                    return False
        return True

    def quick(self, job_id: int) -> bool:
        """Whether tasks of this job may be queued ahead."""
        job = self.engine.jobs.get(job_id)
        return job is not None and job.quick


__all__ = ["HELD", "NOT_STARTED", "QUEUED_AHEAD", "QUICK", "QueueAhead", "UNSLOTTED", "WINDOW"]
