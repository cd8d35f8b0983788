"""Reruns of conflict victims: a task that failed transiently (deadlock victim, lock timeout:
an exit code or raw value its job marks as transient) is queued again after a backoff, up to
a limit, inside its window, without using up an attempt. Each such failure also records the
job classes that were running beside it, so `conflicts suggest` can name pairs that keep
failing together; with `--learn N`, a pair seen together in N such failures becomes an
exclusive conflict rule by itself. A component of Engine: the recently finished jobs and the
count of each pair are its state."""

from __future__ import annotations

import hashlib
from collections import deque
from typing import TYPE_CHECKING

from .model import TASK_OUT, EventKind, Transient, TaskState
from .changes import Overlap
from .conflicts import EXCLUSIVE, ConflictRule, covers, selector_for
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
        self.together: dict[tuple[str, str], int] = {}  # (class a, class b) -> failures seen together

    def restore(self, together: dict[tuple[str, str], int]) -> None:
        """The pairs' counts as the database has them (after a restart)."""
        self.together = dict(together)

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
            self.together[(a, b)] = self.together.get((a, b), 0) + 1
            self._maybe_learn(a, b)

    def _maybe_learn(self, a: str, b: str) -> None:
        """With `--learn N`: the pair's Nth failure together keeps them apart from now on."""
        e = self.engine
        n, seen = e.config.learn_conflicts, self.together[(a, b)]
        if not n or seen < n or covers(e.holds.rules.values(), a, b):
            return
        name = "learned-" + hashlib.sha256(f"{a}\0{b}".encode()).hexdigest()[:12]
        if name in e.holds.rules:
            return  # a rule of that name that no longer covers them: the operator changed it; leave it
        rule = ConflictRule(name, EXCLUSIVE, selector_for(a), selector_for(b), created_by="learned", create_time=e.now)
        e.holds.add_rule(rule)  # for jobs from now on: the running ones are left as they are
        why = f"learned: {a} and {b} failed transiently together {seen} times (--learn {n})"
        e.event(EventKind.POLICY, raw_status="LEARNED", message=f"conflict rule {name} added: {why}",
                environment="jobplane", raw={"scope": "conflicts", "rule": rule.name, "jobs": a, "other": b,
                                             "failures": str(seen)})
        e.changes.audits.append({"time": e.now, "identity": "jobplane-server", "role": 0,
                                 "method": "learn conflict rule", "target": name, "code": "OK", "message": why})

    def remember_run(self, job: JobRt) -> None:
        """A job ended: what ran when, for the overlaps of later failures."""
        if job.start_time is not None:
            self._recent_runs.append((job.id, job_class(job), job.start_time, self.engine.now))


__all__ = ["Reruns", "is_transient"]
