"""An external task whose agent is lost (kill -9, not restarted), drained, or comes back late:
the task continues on another agent as an attempt that adopts the job the first one submitted,
and the job runs once. Real server, real agents, and an outside scheduler in a shell script
whose jobs are real processes: what the scheduler's files record is the judge.

And the same handing-on across a server restart, on each backend (the store keeps it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import pid_alive, wait_until

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import ExternalSpec, Hello, JobSpec, Report, ReportKind, TaskSpec, TaskState
from jobplane.server.store.db import open_database
from jobplane.server.store.repo import Store, runtime_from_snapshot

SUCCEEDED = 3  # JOB_STATE_SUCCEEDED
TASK_SUCCEEDED = 5

# `sched.sh submit|poll ID|cancel ID`. A job is a real process that runs until STATE/go exists
# (or two minutes, so none outlives a failed test for long) and then says it finished. Every
# submit, poll and cancel is logged with the attempt that ran it.
SCHEDULER = r"""#!/bin/sh
S=STATE
case "$1" in
  submit) echo "attempt $JOBPLANE_ATTEMPT" >> $S/submits
          setsid sh -c 'i=0; while [ ! -e '$S'/go ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done
                        echo "job $$ finished" >> '$S'/ran' </dev/null >/dev/null 2>&1 &
          echo "{\"id\": \"$!\"}" ;;
  poll) echo "$JOBPLANE_ATTEMPT $2" >> $S/polls
        if grep -qx "job $2 finished" $S/ran 2>/dev/null; then echo '{"status": "ENDED", "done": true, "exit_code": 0}'
        elif kill -0 "$2" 2>/dev/null; then echo '{"status": "EXECUTING"}'
        else echo '{"status": "GONE", "done": true, "exit_code": 137}'; fi ;;
  cancel) echo "$JOBPLANE_ATTEMPT $2" >> $S/cancels; kill "$2"; echo '{}' ;;
esac
"""


class Scheduler:
    def __init__(self, directory: Path) -> None:
        self.state = directory / "sched"
        self.state.mkdir()
        self.script = directory / "sched.sh"
        self.script.write_text(SCHEDULER.replace("STATE", str(self.state)))
        self.script.chmod(0o755)

    def task(self) -> dict:
        run = [str(self.script)]
        return {"name": "t", "external": {"submit": [*run, "submit"], "poll": [*run, "poll"],
                                          "cancel": [*run, "cancel"], "poll_interval": 0.1}}

    def lines(self, name: str) -> list[str]:
        path = self.state / name
        return path.read_text().splitlines() if path.exists() else []

    def polled_by(self, attempt: int) -> set[str]:
        """The job ids attempt `attempt` polled."""
        return {line.split()[1] for line in self.lines("polls") if line.split()[0] == str(attempt)}

    def job(self) -> str:
        """The one job submitted so far, by attempt 1."""
        assert self.lines("submits") == ["attempt 1"]
        (job_id,) = self.polled_by(1)
        return job_id

    def finish(self) -> None:
        (self.state / "go").touch()


@pytest.fixture
def sched(tmp_path):
    scheduler = Scheduler(tmp_path)
    yield scheduler
    scheduler.finish()  # no job process outlives the test


def task_of(cluster, job_id):
    (task,) = list(cluster.client.list_tasks(job_id))
    return task


def started_on_a(cluster, sched):
    """The task's job submitted by agent a and followed there; agent b standing by to take it."""
    cluster.add_agent("a", slots=1)
    job = cluster.client.submit_job({"name": "x", "tasks": [sched.task()]})
    wait_until(lambda: sched.polled_by(1), 30, "agent a to submit and poll the job")
    cluster.add_agent("b", slots=1)
    return job, sched.job()


def adopted_and_finished(cluster, sched, job, job_id):
    """b follows the same job as attempt 2; once it ends, the task has succeeded once."""
    wait_until(lambda: job_id in sched.polled_by(2), 30, "attempt 2 to follow the job")
    assert pid_alive(int(job_id)), "the job runs on"
    sched.finish()
    done = cluster.client.wait_job(job.id, timeout=30)
    task = task_of(cluster, job.id)
    assert (done.state, task.state, task.attempt) == (SUCCEEDED, TASK_SUCCEEDED, 2)
    assert [a.provider_id for a in task.attempts] == ["a", "b"]
    assert sched.lines("submits") == ["attempt 1"], "submitted once, by attempt 1"
    assert sched.lines("ran") == [f"job {job_id} finished"], "the job ran once, to its end"
    assert sched.polled_by(2) == {job_id}
    assert sched.lines("cancels") == [], "nobody cancelled the job"
    return task


def test_a_killed_agents_external_job_is_adopted_by_another_agent(sqlite_cluster, sched):
    job, job_id = started_on_a(sqlite_cluster, sched)
    sqlite_cluster.agents["a"].kill()  # kill -9, and it does not come back
    task = adopted_and_finished(sqlite_cluster, sched, job, job_id)
    assert "runs on and the next attempt follows it" in task.attempts[0].reason


def test_a_drained_agents_external_job_is_adopted_without_a_cancel(sqlite_cluster, sched):
    job, job_id = started_on_a(sqlite_cluster, sched)
    sqlite_cluster.client.drain_provider("a")
    # a lets go of its attempt (its stopped report was taken, its record removed) and polls no more.
    attempt_dir = sqlite_cluster.workdir / "agent-a.state" / f"{task_of(sqlite_cluster, job.id).id}.1"
    wait_until(lambda: not attempt_dir.exists(), 30, "agent a to let go of attempt 1")
    assert sqlite_cluster.agents["a"].alive()
    adopted_and_finished(sqlite_cluster, sched, job, job_id)


def test_an_agent_back_after_its_job_was_adopted_stops_following_it_without_cancelling(sqlite_cluster, sched):
    job, job_id = started_on_a(sqlite_cluster, sched)
    sqlite_cluster.agents["a"].kill()
    wait_until(lambda: job_id in sched.polled_by(2), 30, "attempt 2 to follow the job")
    attempt_dir = sqlite_cluster.workdir / "agent-a.state" / f"{task_of(sqlite_cluster, job.id).id}.1"
    assert attempt_dir.exists(), "a's record of attempt 1 is there for it to adopt"
    sqlite_cluster.add_agent("a", slots=1)  # the same name and state directory
    # It adopts attempt 1 from its record, is told the job is followed elsewhere, and drops it.
    wait_until(lambda: not attempt_dir.exists(), 30, "agent a to drop its superseded attempt")
    adopted_and_finished(sqlite_cluster, sched, job, job_id)


def test_a_task_waiting_to_adopt_its_job_still_adopts_it_after_a_server_restart(db_url, tmp_path):
    store = Store(open_database(db_url))
    store.create_schema()
    engine = Engine(EngineConfig())
    engine.begin(1000.0)
    engine.connect(Hello("a", {}, {}, 1, 1.0, (), kill_deadline=0.5), conn_id=1)
    engine.ready_signal("a", 1)
    spec = JobSpec("j", tasks=(TaskSpec("t", external=ExternalSpec(("submit",), ("poll",), ("cancel",))),))
    job = engine.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    (task_id,) = job.task_ids
    store.apply(engine.take_changes())  # assigned to a
    assert engine.report("a", 1, [Report(task_id, 1, ReportKind.STARTED, external_job_id="J-77")]) == []
    store.apply(engine.take_changes())
    engine.disconnect("a", 1)
    (_, expire), = engine.take_changes().timers
    expire(engine)  # lost, and no other agent to take the task: it waits with the job to adopt
    store.apply(engine.take_changes())
    store.close()

    store = Store(open_database(db_url))
    counters, jobs, tasks, providers, waiting = runtime_from_snapshot(store.load())
    (task,) = tasks
    assert (task.state, task.adopt_job, task.fence) == (TaskState.QUEUED, "J-77", None)
    (attempt,) = store.reads.attempts_of([task_id])[task_id]
    assert attempt.external_job_id == "J-77"
    restarted = Engine(EngineConfig(), counters)
    restarted.begin(2000.0)
    restarted.restore(jobs, tasks, providers, waiting)
    restarted.connect(Hello("b", {}, {}, 1, 1.0, ()), conn_id=2)
    restarted.ready_signal("b", 2)
    cs = restarted.take_changes()
    assert [(t.id, n) for t, n, *_ in cs.assignments["b"]] == [(task_id, 2)]
    assert restarted.tasks[task_id].current.external_job_id == "J-77"
    store.apply(cs)
    store.close()
