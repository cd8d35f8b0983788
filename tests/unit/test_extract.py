import json

import pytest

from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import JobSpec, TaskSpec
from jobplane.server.errors import InvalidArgument


def extract(*tasks, max_tasks=1000):
    return extract_tasks(JobSpec("job", tasks=tuple(tasks)), max_tasks=max_tasks, default_max_attempts=1)


def test_explicit_tasks_keep_order_and_dependencies():
    drafts = extract(TaskSpec("a", command=("true",)), TaskSpec("b", command=("true",), after=("a",)))
    assert [(d.name, d.after_groups) for d in drafts] == [("a", ()), ("b", ("a",))]


def test_sweep_makes_one_task_per_combination_and_fills_placeholders():
    drafts = extract(TaskSpec("train", command=("run", "--lr={lr}", "--bs={bs}"),
                              matrix=(("lr", "[0.1, 0.01]"), ("bs", "[16, 32, 64]"))))
    assert len(drafts) == 6
    assert drafts[0].name == "train[lr=0.1,bs=16]"
    assert drafts[0].spec.command == ("run", "--lr=0.1", "--bs=16")
    assert {d.group for d in drafts} == {"train"}


def test_python_sweep_passes_parameters_as_keyword_arguments():
    drafts = extract(TaskSpec("sq", python="m:f", args_json='{"base": 1}', matrix=(("x", "[2, 3]"),)))
    assert [json.loads(d.spec.args_json) for d in drafts] == [{"base": 1, "x": 2}, {"base": 1, "x": 3}]


def test_chunks_split_items():
    drafts = extract(TaskSpec("sum", python="m:f", items_json=json.dumps(list(range(10))), chunk_size=4))
    assert [json.loads(d.spec.args_json)["items"] for d in drafts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [d.name for d in drafts] == ["sum[0]", "sum[1]", "sum[2]"]


def test_command_chunks_expand_items_placeholder_and_env():
    (draft,) = extract(TaskSpec("c", command=("echo", "{items}"), items_json='["a", "b"]', chunk_size=5))
    assert draft.spec.command == ("echo", "a", "b")
    assert json.loads(draft.spec.env["JOBPLANE_ITEMS"]) == ["a", "b"]


@pytest.mark.parametrize("tasks, field, words", [
    ((), "spec.tasks", "at least one task"),
    ((TaskSpec("", command=("x",)),), "spec.tasks[0].name", "must not be empty"),
    ((TaskSpec("a", command=("x",)), TaskSpec("a", command=("y",))), "spec.tasks[1].name", "duplicate"),
    ((TaskSpec("a"),), "spec.tasks[0].command", "exactly one of"),
    ((TaskSpec("a", command=("x",), python="m:f"),), "spec.tasks[0].command", "exactly one of"),
    ((TaskSpec("a", python="not a target"),), "spec.tasks[0].python", "module:function"),
    ((TaskSpec("a", python="m:f", args_json="{"),), "spec.tasks[0].args_json", "not valid JSON"),
    ((TaskSpec("a", command=("x",), after=("zzz",)),), "spec.tasks[0].after[0]", "unknown task 'zzz'"),
    ((TaskSpec("a", command=("x",), timeout_seconds=-1),), "spec.tasks[0].timeout_seconds", ">= 0"),
    ((TaskSpec("a", command=("x",), matrix=(("p", "[]"),)),), "spec.tasks[0].matrix[0].values_json", "non-empty"),
    ((TaskSpec("a", command=("x",), items_json="[1]"),), "spec.tasks[0].chunk_size", ">= 1"),
    ((TaskSpec("a", command=("x",), chunk_size=3),), "spec.tasks[0].chunk_size", "needs items"),
    ((TaskSpec("a", command=("x",), retry_on=("sometimes",)),), "spec.tasks[0].retry_on[0]", "use error, timeout or exit_code:N"),
    ((TaskSpec("a", command=("x",), expected_seconds=-1),), "spec.tasks[0].expected_seconds", ">= 0"),
])
def test_bad_specs_name_the_field(tasks, field, words):
    with pytest.raises(InvalidArgument) as err:
        extract(*tasks)
    assert err.value.field == field
    assert words in str(err.value)


def test_cycle_is_rejected_with_its_path():
    with pytest.raises(InvalidArgument, match=r"dependency cycle a -> c -> b -> a"):
        extract(TaskSpec("a", command=("x",), after=("c",)), TaskSpec("b", command=("x",), after=("a",)),
                TaskSpec("c", command=("x",), after=("b",)))


def test_task_limit():
    with pytest.raises(InvalidArgument, match="expands to 10 tasks, more than the 5") as err:
        extract(TaskSpec("s", command=("x",), matrix=(("p", json.dumps(list(range(10)))),)), max_tasks=5)
    assert err.value.field == "spec.tasks[0].matrix"
