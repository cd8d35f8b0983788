"""Resource requests packed into capacity: sizes, shortfalls, the ready queue and continuation
placement, and the engine's dispatch driven directly."""

from dataclasses import replace

import pytest
from support_engine import assigned, cmd, engine

from jobplane.resources import Resources, describe, parse_memory, shortfall, total
from jobplane.server.domain.continuation import Pending, Receiver, place
from jobplane.server.domain.dispatch import ReadyQueue
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import (ExternalSpec, Hello, JobSpec, Outcome, Report, ReportKind, SlurmSpec,
                                          TaskSpec, TaskState)
from jobplane.server.errors import InvalidArgument

GiB = 2**30


@pytest.mark.parametrize("text, size", [("512MiB", 512 * 2**20), ("8GiB", 8 * GiB), ("2G", 2 * 10**9),
                                        ("1073741824", GiB), (4096, 4096), ("1.5Gi", int(1.5 * GiB)),
                                        ("100 kb", 100_000), ("0", 0)])
def test_memory_sizes_read_as_people_write_them(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("text, why", [("8XB", "unknown unit 'XB'"), ("lots", "is not a size"),
                                       ("-5", "is not a size"), (-5, "must not be negative"),
                                       (True, "expected a size")])
def test_a_bad_memory_size_says_what_is_wrong_and_how_to_write_one(text, why):
    with pytest.raises(ValueError) as raised:
        parse_memory(text)
    assert why in str(raised.value) and '"8GiB"' in str(raised.value)


def test_a_request_fits_what_is_left_and_names_the_first_resource_short():
    capacity = Resources(cpus=8, memory=16 * GiB, gpus=1, custom=(("license", 1),))
    assert shortfall(Resources(cpus=4, memory=8 * GiB), capacity) == ""
    assert shortfall(Resources(cpus=4), capacity, used=Resources(cpus=4.5)) == "cpus"
    assert shortfall(Resources(cpus=0.5), capacity, used=Resources(cpus=7.5)) == ""
    assert shortfall(Resources(gpus=1), capacity, used=Resources(gpus=1)) == "gpus"
    assert shortfall(Resources(custom=(("license", 1),)), capacity, used=Resources(custom=(("license", 1),))) \
        == "license"
    assert shortfall(Resources(custom=(("other", 1),)), capacity) == "other"


def test_an_agent_that_advertised_nothing_has_no_limits_but_no_custom_resources():
    assert shortfall(Resources(cpus=1000, memory=10**15, gpus=64), None) == ""
    assert shortfall(Resources(cpus=1, custom=(("license", 1),)), None) == "license"


def test_requests_sum_and_a_task_takes_its_jobs_defaults_where_it_sets_none():
    assert total([Resources(cpus=1.5), Resources(cpus=2, custom=(("x", 1),)), Resources()]) == \
        Resources(cpus=3.5, custom=(("x", 1),))
    assert Resources(cpus=1).over(Resources(cpus=4, memory=GiB)) == Resources(cpus=1, memory=GiB)
    assert describe(Resources(cpus=4, memory=8 * GiB, custom=(("license_x", 2),))) == \
        "4 cpus, 8 GiB memory, 2 license_x"


def test_the_ready_queue_passes_over_a_task_with_no_room_for_one_that_fits():
    queue = ReadyQueue()
    queue.push(1, {}, 5, 1, 0, resources=Resources(cpus=8))
    queue.push(2, {}, 0, 2, 0, resources=Resources(cpus=2))
    queue.push(3, {}, 0, 3, 0)

    def room(cpus):
        return lambda request: not shortfall(request, Resources(cpus=cpus))
    assert queue.peek_for({}, fits=room(8)) == 1
    assert queue.pop_for({}, fits=room(4)) == 2
    assert queue.pop_for({}, fits=room(0)) == 3  # a task with no requests needs only a slot
    assert queue.pop_for({}, fits=room(0)) is None
    assert [(key[3], n) for key, n in queue.demand()] == [(Resources(cpus=8), 1)]


def test_continuations_go_only_where_their_requests_fit_with_what_is_placed_there():
    pending = [Pending((i,), i, 1, 100, "", {}, resources=Resources(cpus=4)) for i in range(3)]
    six = Receiver("six", {}, 4, False, capacity=Resources(cpus=6))
    assert place(pending, [six]) == ["six", None, None]
    eight = Receiver("eight", {}, 4, False, capacity=Resources(cpus=8), used=Resources(cpus=1))
    assert place(pending, [eight]) == ["eight", None, None]
    old = Receiver("old", {}, 4, False)  # advertised nothing: no limit
    assert place(pending, [old]) == ["old", "old", "old"]


def connect(e, name, capacity, slots=4):
    conn = hash(name) & 0xFFFF
    e.connect(Hello(name, {}, {}, slots, 1.0, (), capacity=capacity), conn_id=conn)
    e.ready_signal(name, conn)
    return conn


def submit(e, *tasks, **job):
    spec = JobSpec("job", tasks=tuple(tasks), **job)
    return e.submit(spec, extract_tasks(spec, max_tasks=100, default_max_attempts=1))


def finish(e, provider, conn, task):
    e.report(provider, conn, [Report(task.id, task.attempt, ReportKind.STARTED),
                              Report(task.id, task.attempt, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])


def test_dispatch_packs_requests_into_free_capacity_and_the_slot_count_stays_a_cap():
    e = engine()
    conn = connect(e, "a", Resources(cpus=6), slots=3)
    submit(e, *[cmd(f"big{i}", resources=Resources(cpus=4)) for i in range(2)],
           *[cmd(f"free{i}") for i in range(3)])
    first = assigned(e.take_changes())["a"]
    assert len(first) == 3 and sum(name.startswith("big") for name, _ in first) == 1
    done = next(t for t in e.tasks.values() if t.name == first[0][0])
    finish(e, "a", conn, done)
    second = assigned(e.take_changes())["a"]
    assert len(second) == 1
    assert sum(t.state == TaskState.QUEUED for t in e.tasks.values() if t.name.startswith("big")) == (
        0 if done.name.startswith("big") else 1)


def test_a_task_too_big_for_every_provider_says_what_is_short_until_one_could_hold_it():
    e = engine()
    connect(e, "small", Resources(cpus=2, memory=64 * GiB))
    submit(e, cmd("big", resources=Resources(cpus=16)))
    e.take_changes()
    task = next(iter(e.tasks.values()))
    assert task.state == TaskState.QUEUED
    assert task.reason == "waiting: needs 16 cpus, the largest provider has 2 cpus"
    connect(e, "huge", Resources(cpus=32))
    assert assigned(e.take_changes()) == {"huge": [("big", 1)]}


def test_a_custom_resource_no_provider_has_says_none_has_any():
    e = engine()
    connect(e, "a", Resources(cpus=4))
    submit(e, cmd("licensed", resources=Resources(custom=(("license", 1),))))
    e.take_changes()
    assert next(iter(e.tasks.values())).reason == "waiting: needs 1 license, no provider has any"


def test_an_agent_that_advertised_nothing_runs_what_it_ran_before():
    e = engine()
    connect(e, "old", None, slots=2)
    submit(e, cmd("sized", resources=Resources(cpus=64)), cmd("plain"))
    assert sorted(assigned(e.take_changes())["old"]) == [("plain", 1), ("sized", 1)]


def test_the_reason_follows_the_providers_for_tasks_already_waiting_and_for_new_ones_alike():
    e = engine()
    connect(e, "small", Resources(cpus=2))
    connect(e, "huge", Resources(cpus=32), slots=1)
    submit(e, *[cmd(f"big{i}", resources=Resources(cpus=16)) for i in range(2)])
    assert sum(len(v) for v in assigned(e.take_changes()).values()) == 1
    waiting = next(t for t in e.tasks.values() if t.state == TaskState.QUEUED)
    assert not waiting.reason.startswith("waiting: needs")  # the huge one could hold it once free
    e.provider_rules.drain("huge", wait=True, deadline=0)
    e.want_dispatch()
    e.take_changes()
    too_big = "waiting: needs 16 cpus, the largest provider has 2 cpus"
    assert waiting.reason == too_big
    submit(e, cmd("later", resources=Resources(cpus=16)))
    e.take_changes()
    assert next(t for t in e.tasks.values() if t.name == "later").reason == too_big
    connect(e, "other", Resources(cpus=64), slots=4)
    assert sorted(name for name, _ in assigned(e.take_changes())["other"]) == ["big1", "later"]


def test_an_outside_schedulers_task_takes_no_capacity_and_asking_for_some_is_refused():
    slurm = TaskSpec("s", slurm=SlurmSpec(wrap="true", cpus=8))
    spec = JobSpec("j", tasks=(slurm, cmd("local")), task_resources=Resources(cpus=2))
    drafts = extract_tasks(spec, max_tasks=10, default_max_attempts=1)
    assert [d.spec.resources for d in drafts] == [Resources(), Resources(cpus=2)]  # the defaults pass it by
    for outside in (replace(slurm, resources=Resources(cpus=1)),
                    TaskSpec("e", external=ExternalSpec(("submit",), ("poll",)), resources=Resources(memory=GiB))):
        with pytest.raises(InvalidArgument) as refused:
            extract_tasks(JobSpec("j", tasks=(outside,)), max_tasks=10, default_max_attempts=1)
        assert refused.value.field == "spec.tasks[0].resources" and "leave these unset" in str(refused.value)
