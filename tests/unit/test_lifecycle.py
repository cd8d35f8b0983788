"""The task lifecycle: one table says which state changes exist, and the engine keeps to it."""

import pytest

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.lifecycle import TRANSITIONS, IllegalTransition, check
from jobplane.server.domain.model import (
    TASK_DONE, Hello, JobSpec, Outcome, Report, ReportKind, TaskSpec, TaskState)

S = TaskState


def run_engine():
    """An engine with one provider and a job of two tasks, the second after the first."""
    e = Engine(EngineConfig(reconnect_grace=1.0))
    e.begin(100.0)
    e.connect(Hello("a", {}, {}, 2, 1.0, (), False), conn_id=1)
    e.ready_signal("a", 1)
    spec = JobSpec("j", 0, {}, (TaskSpec("first", command=("true",)),
                                TaskSpec("second", command=("true",), after=("first",))))
    job = e.submit(spec, extract_tasks(spec, max_tasks=10, default_max_attempts=1))
    e.take_changes()
    return e, job


def test_final_states_lead_nowhere():
    for state in TASK_DONE:
        assert TRANSITIONS[state] == frozenset()
        for to in TaskState:
            with pytest.raises(IllegalTransition, match=f"from {state.name} to {to.name}"):
                check(state, to)


@pytest.mark.parametrize("old,new", [(S.QUEUED, S.RUNNING), (S.BLOCKED, S.ASSIGNED), (S.BLOCKED, S.RUNNING),
                                     (S.RUNNING, S.ASSIGNED), (S.QUEUED, S.SUCCEEDED)])
def test_skipping_a_step_is_refused(old, new):
    with pytest.raises(IllegalTransition):
        check(old, new)


def test_every_state_is_in_the_table():
    assert set(TRANSITIONS) == set(TaskState)
    assert all(targets <= set(TaskState) for targets in TRANSITIONS.values())


def test_the_engine_refuses_to_move_a_finished_task_and_changes_nothing():
    e, job = run_engine()
    first = next(t for t in e.tasks.values() if t.name == "first")
    e.report("a", 1, [Report(first.id, 1, ReportKind.STARTED),
                      Report(first.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])
    assert first.state == S.SUCCEEDED
    with pytest.raises(IllegalTransition, match="from SUCCEEDED to QUEUED"):
        e.lifecycle.transition(first, S.QUEUED, "again")
    assert first.state == S.SUCCEEDED


def test_a_task_goes_through_the_table_from_submit_to_success():
    e, job = run_engine()
    seen = []
    real = e.lifecycle.transition

    def spy(task, to, reason="", **kw):
        seen.append((task.name, task.state, to))
        real(task, to, reason, **kw)

    e.lifecycle.transition = spy
    second = next(t for t in e.tasks.values() if t.name == "second")
    assert second.state == S.BLOCKED
    for name in ("first", "second"):
        task = next(t for t in e.tasks.values() if t.name == name)
        e.report("a", 1, [Report(task.id, 1, ReportKind.STARTED),
                          Report(task.id, 1, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])
        e.take_changes()
    moves = [(n, old, new) for n, old, new in seen if old != new]
    assert moves == [("first", S.ASSIGNED, S.RUNNING), ("first", S.RUNNING, S.SUCCEEDED),
                     ("second", S.BLOCKED, S.QUEUED), ("second", S.QUEUED, S.ASSIGNED),
                     ("second", S.ASSIGNED, S.RUNNING), ("second", S.RUNNING, S.SUCCEEDED)]
    assert all(new in TRANSITIONS[old] for _, old, new in seen)
