"""Reruns of conflict victims: a task that failed transiently (deadlock victim, lock timeout:
an exit code or raw value its job marks as transient) is queued again after a backoff, up to
a limit, inside its window, without using up an attempt. Each such failure also records the
job classes that were running beside it, so `conflicts suggest` can name pairs that keep
failing together. A component of Engine: the recently finished jobs are its state."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .model import TASK_OUT, Transient, TaskState
from .changes import Overlap
from .state import JobRt, TaskRt

if TYPE_CHECKING:
    from .engine import Engine

DEFAULT = Transient()
RECENT_RUNS = 1000  # finished jobs remembered, to find what overlapped a failure


def is_transient(spec: Transient, exit_code: int | None, raw: dict[str, str]) -> str:
    """What marks the failure as transient ("exit code 75", "DEADLOCK"), or ""."""
    if exit_code is not None and exit_code in spec.exit_codes:
        return f"exit code {exit_code}"
    wanted = {s.upper() for s in spec.raw_statuses}
    for value in raw.values():
        if str(value).strip().upper() in wanted:
            return str(value)
    return ""


def job_class(job: JobRt) -> str:
    """What learned conflicts call a job, as a selector term: its class, else its name."""
    return f"class={job.spec.job_class}" if job.spec.job_class else f"name={job.name}"


class Reruns:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._recent_runs: deque = deque(maxlen=RECENT_RUNS)  # (job id, class, start, end)

    def rerun(self, task: TaskRt, reason: str, raw: dict, exit_code: int | None) -> bool:
        """Queue the task again if its failure is transient and it may still rerun."""
        e = self.engine
        job = e.jobs[task.job_id]
        spec = job.spec.transient or DEFAULT
        what = is_transient(spec, exit_code, raw)
        if not what:
            return False
        self._record_overlaps(task, job)
        if task.reruns >= spec.max_reruns:
            return False
        delay = (spec.backoff_seconds or DEFAULT.backoff_seconds) * 2 ** task.reruns
        closes = job.window[1] if job.window is not None else None
        if closes is not None and e.now + delay >= closes:
            return False
        task.reruns += 1
        e.lifecycle.transition(task, TaskState.QUEUED, f"attempt {task.attempt} {reason}: transient ({what}); rerun "
                                                       f"{task.reruns} of {spec.max_reruns} in {delay:.1f}s",
                               enqueue=False)
        attempt = task.attempt
        e.changes.timer(delay, lambda engine: engine.release(task.id, attempt))
        return True

    def _record_overlaps(self, task: TaskRt, job: JobRt) -> None:
        """The job classes that ran while the failed attempt did: one observation each."""
        e = self.engine
        start = task.started_at or e.now  # the failed attempt's start (see Engine.close_attempt)
        mine = job_class(job)
        seen = set()
        for other in e.holds.admitted():
            if other.id != job.id and any(e.tasks.get(t) is not None and e.tasks[t].state in TASK_OUT
                                          for t in other.task_ids):
                seen.add(job_class(other))
        for _, cls, began, ended in self._recent_runs:
            if ended >= start and began <= e.now:
                seen.add(cls)
        for cls in sorted(seen):
            a, b = sorted((mine, cls))
            e.changes.overlaps.append(Overlap(a, b, e.now))

    def remember_run(self, job: JobRt) -> None:
        """A job ended: what ran when, for the overlaps of later failures."""
        if job.start_time is not None:
            self._recent_runs.append((job.id, job_class(job), job.start_time, self.engine.now))


__all__ = ["Reruns", "is_transient"]
