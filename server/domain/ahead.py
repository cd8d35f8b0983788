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
starts cold)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .model import Outcome, ProviderState, TaskState

if TYPE_CHECKING:
    from .engine import Engine
    from .model import Report
    from .state import AttemptRt, JobRt, ProviderRt, TaskRt

QUICK = 0.1  # seconds: an attempt that held its slot less long was quick
WINDOW = 0.25  # seconds: a provider's finishes this recent count towards what it may hold ahead
QUEUED_AHEAD = "queued ahead at the provider: it starts when one of its slots frees"
NOT_STARTED = "not_started"  # the raw state of an attempt queued ahead that its agent gave back


class QueueAhead:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def finished(self, job: JobRt | None, attempt: AttemptRt, provider: ProviderRt | None) -> None:
        """An attempt the provider reported finished: its pace, and whether its job is quick."""
        now = self.engine.now
        if job is not None:
            job.quick = attempt.start_time is not None and now - attempt.start_time < QUICK
        if provider is not None and provider.ahead:
            if provider.finishes is None:
                provider.finishes = deque(maxlen=provider.ahead)
            provider.finishes.append(now)

    def given_back(self, task: TaskRt, attempt: AttemptRt, report: Report) -> bool:
        """The agent gave back an attempt queued ahead for which no slot freed in time (behind a
        task that turned out long, or a paused one): it never started, so the task is queued
        again at once, the attempt not counted as a try (TaskRt.given_back; it may still become
        late to start), and an outside job it was to adopt is adopted by the next; True. False
        for any other end."""
        if (report.raw.get("state") != NOT_STARTED or report.outcome != Outcome.CANCELLED
                or task.state != TaskState.ASSIGNED):
            return False
        e = self.engine
        why = f"given back unstarted by {attempt.provider}: none of its slots freed for it"
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


__all__ = ["NOT_STARTED", "QUEUED_AHEAD", "QUICK", "QueueAhead", "WINDOW"]
