"""How a task ended, as everyone sees it: the stored status of a finished task is what the
default policy reads in the raw properties its environment reported, so a caller without
policies and one whose policies do not match see the same thing; and that status decides
whether the task succeeded, for its job and its dependents too (one truth)."""

import pytest

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import (
    ExternalSpec, Hello, JobSpec, JobState, Outcome, Report, ReportKind, Status, TaskSpec, TaskState)
from jobplane.server.domain.policies import renormalize


def finish(spec: TaskSpec, outcome: Outcome, raw: dict, exit_code=None):
    e = Engine(EngineConfig())
    e.begin(100.0)
    job_spec = JobSpec("j", tasks=(spec,), wait_for_providers=True)
    job = e.submit(job_spec, extract_tasks(job_spec, max_tasks=10, default_max_attempts=1))
    e.connect(Hello("a", {}, {}, 1, 1.0, (), False), conn_id=1)
    e.ready_signal("a", 1)
    e.take_changes()
    (task,) = e.tasks.values()
    e.report("a", 1, [Report(task.id, 1, ReportKind.STARTED),
                      Report(task.id, 1, ReportKind.FINISHED, outcome, exit_code, raw=raw)])
    e.take_changes()
    return job, task


EXTERNAL = TaskSpec("t", external=ExternalSpec(("submit",), ("poll",)))


@pytest.mark.parametrize("spec, outcome, raw, exit_code, status, job_state", [
    (TaskSpec("t", command=("true",)), Outcome.SUCCEEDED, {"state": "exited", "exit_code": "0"}, 0,
     Status.SUCCESS, JobState.SUCCEEDED),
    (TaskSpec("t", command=("false",)), Outcome.FAILED, {"state": "exited", "exit_code": "1"}, 1,
     Status.FAILURE, JobState.FAILED),
    (TaskSpec("t", python="m:f"), Outcome.FAILED, {"state": "raised", "exception_type": "KeyboardInterrupt"},
     None, Status.CANCEL, JobState.FAILED),  # interrupted from outside, says the default policy
    (EXTERNAL, Outcome.SUCCEEDED, {"status": "WEIRD", "state": "external_done", "exit_code": "0"}, 0,
     Status.SUCCESS, JobState.SUCCEEDED),  # a status nobody knows: the exit code decides
    (EXTERNAL, Outcome.FAILED, {"status": "WEIRD", "state": "external_done", "exit_code": "3"}, 3,
     Status.FAILURE, JobState.FAILED),
    (EXTERNAL, Outcome.SUCCEEDED, {"status": "ABEND", "state": "external_done", "exit_code": "0"}, 0,
     Status.FAILURE, JobState.FAILED),  # the scheduler's word wins over its exit code, for the job too
    (EXTERNAL, Outcome.CANCELLED, {"status": "EXECUTING", "state": "cancelled"}, None,
     Status.CANCEL, JobState.FAILED),  # the agent ended it: the last poll's status is stale
])
def test_a_finished_task_reads_the_same_with_or_without_policies(spec, outcome, raw, exit_code, status, job_state):
    job, task = finish(spec, outcome, raw, exit_code)
    assert task.status == status
    assert renormalize(task.environment, task.raw, task.status, user=None) == status
    assert job.state == job_state


def test_a_failed_task_whose_status_no_rule_knows_still_fails_its_job():
    job, task = finish(TaskSpec("t", command=("x",)), Outcome.FAILED, {"state": "something_new"})
    assert task.state == TaskState.FAILED and task.status == Status.UNKNOWN
    assert job.state == JobState.FAILED and job.counts["not_ok"] == 1


def finish_first_of_two(raw: dict, outcome: Outcome, exit_code=None):
    """A job of an external task and a command after it; the first ends with `raw`."""
    e = Engine(EngineConfig())
    e.begin(100.0)
    spec = JobSpec("j", tasks=(EXTERNAL, TaskSpec("next", command=("true",), after=("t",))), wait_for_providers=True)
    job = e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    e.connect(Hello("a", {}, {}, 2, 1.0, (), False), conn_id=1)
    e.ready_signal("a", 1)
    e.take_changes()
    first, second = sorted(e.tasks.values(), key=lambda t: t.idx)
    e.report("a", 1, [Report(first.id, 1, ReportKind.STARTED),
                      Report(first.id, 1, ReportKind.FINISHED, outcome, exit_code, raw=raw)])
    cs = e.take_changes()
    return job, first, second, cs


def test_an_abend_with_exit_code_zero_fails_its_task_and_its_dependents_never_run():
    job, first, second, cs = finish_first_of_two({"status": "ABEND", "state": "external_done", "exit_code": "0"},
                                                 Outcome.SUCCEEDED, 0)
    assert (first.state, first.status) == (TaskState.FAILED, Status.FAILURE)
    assert "ABEND" in first.reason and "default policy" in first.reason
    assert second.state == TaskState.CANCELLED and not cs.assignments, "the dependent does not run"
    assert job.state == JobState.FAILED


def test_a_success_the_policy_agrees_with_releases_the_dependent():
    job, first, second, cs = finish_first_of_two({"status": "ENDED", "state": "external_done", "exit_code": "0"},
                                                 Outcome.SUCCEEDED, 0)
    assert (first.state, first.status) == (TaskState.SUCCEEDED, Status.SUCCESS)
    assert [t.name for t, *_ in cs.assignments["a"]] == ["next"]
