"""Slurm tasks at submit: checked field by field, placed only on Slurm agents, arrays expanded."""

from __future__ import annotations

import pytest

from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import JobSpec, SlurmSpec, TaskSpec
from jobplane.server.errors import InvalidArgument


def extract(*tasks, max_tasks=1000):
    return extract_tasks(JobSpec("job", tasks=tuple(tasks)), max_tasks=max_tasks, default_max_attempts=1)


def slurm_task(name="sim", **spec):
    return TaskSpec(name, slurm=SlurmSpec(**({"script": "run.sh"} | spec)))


def test_a_slurm_task_requires_an_agent_that_submits_to_slurm():
    (draft,) = extract(TaskSpec("sim", requires={"site": "a"}, slurm=SlurmSpec(script="run.sh", partition="debug")))
    assert draft.spec.requires == {"site": "a", "slurm": "true"}
    assert draft.spec.environment == "slurm"


def test_an_array_is_one_task_per_element_each_a_one_element_array():
    drafts = extract(slurm_task(array="1-3,7,10-14:2"))
    assert [d.name for d in drafts] == ["sim[1]", "sim[2]", "sim[3]", "sim[7]", "sim[10]", "sim[12]", "sim[14]"]
    assert [d.spec.slurm.array for d in drafts] == ["1", "2", "3", "7", "10", "12", "14"]
    assert {d.group for d in drafts} == {"sim"}


def test_an_array_counts_against_the_task_limit():
    with pytest.raises(InvalidArgument, match="more than 10 tasks"):
        extract(slurm_task(array="1-11"), max_tasks=10)


@pytest.mark.parametrize("task, field, words", [
    (TaskSpec("a", slurm=SlurmSpec()), "spec.tasks[0].slurm.script", "exactly one of script"),
    (TaskSpec("a", slurm=SlurmSpec(script="a.sh", wrap="b")), "spec.tasks[0].slurm.script", "exactly one of script"),
    (TaskSpec("a", command=("x",), slurm=SlurmSpec(script="a.sh")), "spec.tasks[0].command", "slurm (a batch job)"),
    (slurm_task(wrap="x", script="", args=("1",)), "spec.tasks[0].slurm.args", "put them in wrap"),
    (slurm_task(time_limit="ten minutes"), "spec.tasks[0].slurm.time_limit", '"HH:MM:SS"'),
    (slurm_task(mem="1 GB"), "spec.tasks[0].slurm.mem", "unit K, M, G or T"),
    (slurm_task(cpus=-1), "spec.tasks[0].slurm.cpus", ">= 1"),
    (slurm_task(partition="debug queue"), "spec.tasks[0].slurm.partition", "not a Slurm partition name"),
    (slurm_task(array="1-8%2"), "spec.tasks[0].slurm.array", "--slots"),
    (slurm_task(array="8-1"), "spec.tasks[0].slurm.array", "from low to high"),
    (slurm_task(array="1,x"), "spec.tasks[0].slurm.array", "'x' is not an array index"),
    (slurm_task(array="1-3,2"), "spec.tasks[0].slurm.array", "index 2 twice"),
    (slurm_task(extra_args=("--gres=gpu:1", "--output=x.log")), "spec.tasks[0].slurm.extra_args[1]",
     "--output is set by jobplane"),
    (slurm_task(extra_args=("-ox.log",)), "spec.tasks[0].slurm.extra_args[0]", "-o is set by jobplane"),
    (slurm_task(extra_args=("gpu",)), "spec.tasks[0].slurm.extra_args[0]", "not an sbatch option"),
    (TaskSpec("a", requires={"slurm": "false"}, slurm=SlurmSpec(script="a.sh")), "spec.tasks[0].requires.slurm",
     "only on agents with slurm=true"),
    (TaskSpec("a", args_json="{}", slurm=SlurmSpec(script="a.sh")), "spec.tasks[0].args_json", "slurm.args"),
    (TaskSpec("a", matrix=(("x", "[1]"),), slurm=SlurmSpec(script="a.sh", array="1-2")),
     "spec.tasks[0].slurm.array", "not both"),
])
def test_a_bad_slurm_task_is_refused_naming_the_field(task, field, words):
    with pytest.raises(InvalidArgument) as error:
        extract(task)
    assert error.value.field == field
    assert words in str(error.value)


@pytest.mark.parametrize("time_limit", ["30", "30:00", "01:30:00", "2-00", "2-12:00", "1-00:00:00", "UNLIMITED"])
def test_slurms_time_formats_are_accepted(time_limit):
    assert extract(slurm_task(time_limit=time_limit))
