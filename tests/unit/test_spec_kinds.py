"""A submitted job's tasks that differ only by name are converted once and renamed
(convert.task_specs_from_proto): each task still comes out as converting it alone makes it."""

from __future__ import annotations

from jobplane.server.services import convert
from jobplane.v1 import job_pb2


def test_tasks_of_one_kind_and_of_many_convert_as_each_alone() -> None:
    tasks = [job_pb2.TaskSpec(name="a", command=["/bin/true"]),
             job_pb2.TaskSpec(name="b", command=["/bin/true"]),
             job_pb2.TaskSpec(name="c", command=["/bin/false"]),  # differs in a repeated field
             job_pb2.TaskSpec(name="d", command=["/bin/true"], timeout_seconds=5),  # in a scalar
             job_pb2.TaskSpec(name="e", python="m:f"),
             job_pb2.TaskSpec(name="f", python="m:f", env={"X": "1"}),  # a map: converted on its own
             job_pb2.TaskSpec(name="g", python="m:f", env={"X": "2"}),
             job_pb2.TaskSpec(name="h", python="m:f", max_attempts=3)]
    got = convert.job_spec_from_proto(job_pb2.JobSpec(name="j", tasks=tasks)).tasks
    assert got == tuple(convert.task_spec_from_proto(t) for t in tasks)
    assert [t.name for t in got] == list("abcdefgh")
    assert got[1].prerequisite_ids == frozenset()


def test_a_renamed_copy_is_stored_as_the_spec_it_equals() -> None:
    from jobplane.server.domain.model import TaskSpec
    from jobplane.server.store.codec import TaskSpecs, dump_task_spec, load_task_spec

    first = TaskSpec(name="t-1", command=("/bin/echo", "x"), env={"A": "1"}, timeout_seconds=2.5)
    copies = [first.renamed(name) for name in ("t-2", "t\u00e9", 'q"uote')]
    specs = TaskSpecs()
    for copy in copies:
        alone = TaskSpec(name=copy.name, command=("/bin/echo", "x"), env={"A": "1"}, timeout_seconds=2.5)
        assert copy == alone and copy.kind is first
        assert specs(copy) == dump_task_spec(alone)
        assert load_task_spec(specs(copy)) == alone


def test_a_renamed_copy_is_sent_as_the_spec_it_equals() -> None:
    from jobplane.server.domain.model import Lateness, TaskSpec

    values = dict(command=("/bin/echo", "x"), env={"A": "1"}, timeout_seconds=2.5, lateness=Lateness(None, None, 60.0, 0.0))
    first = TaskSpec(name="t-1", **values)
    for name in ("t-2", "t-3"):
        copy = first.renamed(name)
        sent = convert.fill_task_spec(job_pb2.TaskSpec(), copy)
        assert sent == convert.fill_task_spec(job_pb2.TaskSpec(), TaskSpec(name=name, **values))
        assert sent.name == name and list(sent.command) == ["/bin/echo", "x"]
