"""INACTIVE for jobs and tasks: work that cannot go on until someone acts, as opposed to WAITING
(it goes on by itself once a slot frees) and ON_HOLD (held on purpose, or until a time or a
condition). The one place that decides it; the causes, each with its reason:

- a queued task whose every provider with the labels it requires is drained, draining or revoked
  ("only drained providers have gpu=true (a: DRAINED); `jobplane providers resume a`"); it is
  WAITING again as soon as one is resumed or another that has them connects;
- anything else that leaves a task unable to progress until an operator acts (a suspended task,
  a paused schedule's run) calls `mark(task, why)` and `clear(task)`: the task shows INACTIVE
  with the reason while it is marked.

A job not yet started all of whose queued tasks are INACTIVE is INACTIVE too, with the reason.
A component of Engine: the tasks it shows INACTIVE are its state (derived: a restart works it
out again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import EventKind, ProviderState, Status, TaskState
from .status import task_status

if TYPE_CHECKING:
    from .engine import Engine
    from .state import TaskRt

DISABLED = (ProviderState.DRAINING, ProviderState.DRAINED, ProviderState.REVOKED)  # by an operator, until undone


class Inactivity:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._shown: dict[int, str] = {}  # task id -> why it is INACTIVE
        self._marked: dict[int, str] = {}  # task id -> why, as another component said
        self._jobs: dict[int, str] = {}  # job id -> why it is INACTIVE

    def mark(self, task: TaskRt, why: str) -> None:
        """Another component's cause: the task shows INACTIVE with `why` until `clear`."""
        self._marked[task.id] = why
        self._show(task, why)
        self._show_jobs()

    def clear(self, task: TaskRt) -> None:
        if self._marked.pop(task.id, None) is not None:
            self._unshow(task, "active again")
            self._show_jobs()

    def explain(self) -> None:
        """After dispatch: queued tasks whose only providers are disabled say so; tasks shown
        INACTIVE that can go on again are WAITING (or RESTART) again. Costs a look at each
        provider per label set; tasks are visited only where something is INACTIVE."""
        e = self.engine
        disabled = {labels: why for labels in e.ready.label_sets() if (why := self._disabled_only(labels))}
        for labels, why in disabled.items():
            for tid in list(e.ready.requiring(labels)):
                if tid not in self._marked:
                    self._show(e.tasks[tid], why)
        for tid in [t for t in self._shown if t not in self._marked]:
            task = e.tasks.get(tid)
            if task is None or tid not in e.ready:
                self._shown.pop(tid)  # it left the queue: its new state says what it is now
            elif frozenset(task.spec.requires.items()) not in disabled:
                self._unshow(task, "a provider that may run it is back")
        if self._shown or self._jobs:
            self._show_jobs()

    def _disabled_only(self, requires: frozenset) -> str:
        """Why no provider with these labels can take work until an operator acts, or ""."""
        matching = [p for p in self.engine.providers.values() if all(p.labels.get(k) == v for k, v in requires)]
        if not matching or any(p.state not in DISABLED for p in matching):
            return ""
        labels = ", ".join(f"{k}={v}" for k, v in sorted(requires)) or "no labels asked for"
        names = ", ".join(f"{p.id}: {p.state.name}" for p in sorted(matching, key=lambda p: p.id)[:3])
        resumable = [p.id for p in matching if p.state != ProviderState.REVOKED]
        fix = f"; `jobplane providers resume {resumable[0]}`" if resumable else "; connect a provider that has them"
        return f"only disabled providers have {labels} ({names}){fix}"

    def _show(self, task: TaskRt, why: str) -> None:
        if task.status != Status.INACTIVE or task.reason != why:
            self.engine.lifecycle.show(task, Status.INACTIVE, why)
        self._shown[task.id] = why

    def _unshow(self, task: TaskRt, why: str) -> None:
        self._shown.pop(task.id, None)
        if task.status == Status.INACTIVE and task.state not in (TaskState.SUCCEEDED, TaskState.FAILED,
                                                                 TaskState.CANCELLED):
            self.engine.lifecycle.show(task, task_status(task.state, task.attempt), why)

    def _show_jobs(self) -> None:
        """A job not yet started whose queued tasks are all INACTIVE is INACTIVE, saying why."""
        e = self.engine
        found: dict[int, str] = {}
        for tid, why in self._shown.items():
            task = e.tasks.get(tid)
            if task is not None:
                found.setdefault(task.job_id, why)
        for job_id in list(found):
            job = e.jobs.get(job_id)
            if job is None or any(e.tasks[t].state == TaskState.QUEUED and t not in self._shown
                                  for t in job.task_ids if t in e.tasks):
                found.pop(job_id)
        for job_id in set(found) | set(self._jobs):
            job = e.jobs.get(job_id)
            why = found.get(job_id, "")
            if job is None or job.inactive == why:
                continue
            before = job.status
            job.inactive = why
            e.changes.job(job)
            if job.status != before:
                e.event(EventKind.JOB, job_id=job.id, raw_status=job.state.name, status=job.status,
                        message=why or "active again", environment="jobplane")
        self._jobs = found


__all__ = ["DISABLED", "Inactivity"]
