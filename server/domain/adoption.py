"""Outside jobs handed on. An external or slurm attempt runs nothing under its agent: it
follows a job in an outside scheduler, which the agent's keeper cannot kill and which does not
die with the agent. So when the server gives such an attempt up while its job may still run
(its provider was lost, drained, revoked or said goodbye; it came back without the attempt; the
attempt was overdue without progress) and the agent had told the job's id, the task's next
attempt adopts that job (Assignment.adopt_external_job_id): it follows the job from its id and
never submits it again. No fence is needed, since nothing new starts: the job stays the one job.
The old attempt, if an agent still holds it, is told to stop following the job and leave it
running (AttemptRef.handed_on_external_job_id), never to cancel it.

Not handed on: a job whose id never reached the server (the submit may or may not have
happened: that attempt is fenced and the task submitted again, as any attempt is, fencing.py),
one that ended (its attempt finished) and one stopped for good (a cancel, the hard timeout).
A component of Engine, with no state of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .state import AttemptRt, TaskRt

if TYPE_CHECKING:
    from .engine import Engine

# Environments whose attempts follow a job in an outside scheduler.
OUTSIDE = frozenset({"external", "slurm"})
# The longest job id the server records (AttemptStarted.external_job_id).
JOB_ID_MAX = 256


class Adoption:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def handed_job(self, task: TaskRt) -> str:
        """The outside job of the task's current attempt, which goes on with the next attempt
        if this one is given up now; "" if there is none (or it is not the server's to know)."""
        if task.current is None or task.spec.environment not in OUTSIDE:
            return ""
        return task.current.external_job_id

    def followed_job(self, task_id: int) -> str:
        """The outside job the task's attempts follow now: its current attempt's, or the one
        its next attempt adopts; "" if none."""
        task = self.engine.tasks.get(task_id)
        if task is None or task.spec.environment not in OUTSIDE:
            return ""
        return task.current.external_job_id if task.current is not None else task.adopt_job

    def stop_superseded(self, provider_id: str, task_id: int, number: int) -> None:
        """A provider holds an attempt that is no longer current: it stops it, but leaves
        running the outside job the task's current attempt follows, if it is that one."""
        self.engine.provider_rules.stop_attempt(provider_id, task_id, number, "attempt superseded",
                                                self.followed_job(task_id))

    def record_job(self, attempt: AttemptRt, job_id: str) -> None:
        """The agent says which outside job the attempt follows; it changes no status."""
        if job_id and job_id != attempt.external_job_id:
            attempt.external_job_id = job_id
            self.engine.changes.attempt(attempt)

    def adopting(self, task: TaskRt, attempt: AttemptRt) -> str:
        """A new attempt takes over the job its predecessor handed on, if any; its reason."""
        job_id, task.adopt_job = task.adopt_job, ""
        if not job_id or task.spec.environment not in OUTSIDE:
            return ""
        attempt.external_job_id = job_id
        return f"follows {task.spec.environment} job {job_id}, submitted by an earlier attempt"


def handed_on(environment: str, job_id: str) -> str:
    """What the reason of an attempt given up says of the outside job it hands on."""
    return f"its {environment} job {job_id} runs on and the next attempt follows it"
