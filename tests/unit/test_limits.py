"""The limits on what a request may hold (server/domain/limits.py) and the checks that use
them: sizes and depths measured without parsing, counts known before expanding, times and
numbers bounded, every refusal naming the field."""

from __future__ import annotations

import json
import math

import pytest

from jobplane.server.domain import limits
from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.limits import check_time, compile_regex, json_shape
from jobplane.server.domain.model import JobSpec, TaskSpec
from jobplane.server.domain.query import NUMBER, parse_filter, parse_order
from jobplane.server.domain.windows import Window
from jobplane.server.errors import InvalidArgument
from jobplane.server.services import convert
from jobplane.server.store import paging
from jobplane.server.store.queries import Query
from jobplane.v1 import job_pb2


@pytest.mark.parametrize("text, shape", [
    ("[]", (1, 0)), ("[1]", (1, 1)), (" [ 1 , 2 ] ", (1, 2)), ("{}", (1, 0)), ('{"a": 1, "b": [1, 2]}', (2, 2)),
    ("[[1, 2], [3]]", (2, 2)), ('["a,b", "[", "\\"]"]', (1, 3)), ("[[], [[], [[]]]]", (4, 2)), ("7", (0, 0)),
])
def test_json_shape_counts_depth_and_top_level_entries_without_parsing(text, shape):
    assert json_shape(text) == shape


def test_json_shape_stops_measuring_past_the_depth_limit():
    assert json_shape("[" * 100_000 + "]" * 100_000) == (limits.MAX_JSON_DEPTH + 1, 0)
    assert json_shape("[1," * 50 + "1" + "]" * 50)[0] == limits.MAX_JSON_DEPTH + 1  # not only runs of "["


@pytest.mark.parametrize("seconds, nanos, words", [
    (2**62, 0, "seconds is 4611686018427387904"), (0, -1, "nanos is -1"), (0, 10**9, "nanos is 1000000000"),
    (-1, 0, "from 1970-01-01T00:00:00Z"),
])
def test_times_outside_what_jobplane_takes_are_refused_naming_the_field(seconds, nanos, words):
    with pytest.raises(InvalidArgument, match=words) as err:
        check_time("spec.hold_until", seconds, nanos)
    assert err.value.field == "spec.hold_until"
    assert check_time("at", 1_800_000_000, 500_000_000) == 1_800_000_000.5


def test_stored_times_beyond_a_timestamp_show_as_the_nearest_one():
    assert convert.ts(1e300).ToDatetime().year == 9999
    assert convert.ts(-1e300).ToDatetime().year == 1
    assert convert.ts(math.inf).ToDatetime().year == 9999
    assert convert.ts(math.nan) is None
    assert convert.ts(1.5).ToNanoseconds() == 1_500_000_000


@pytest.mark.parametrize("pattern, words", [
    ("(" * 1000, "has 1000 characters"), ("(" * 20 + ")" * 20, "nests groups 20 deep"),
    ("([a-z]", "does not compile"),
])
def test_regexes_are_bounded_before_they_are_compiled(pattern, words):
    with pytest.raises(InvalidArgument, match=words):
        compile_regex("version_regex", pattern)
    assert compile_regex("r", r"\(\((v(\d+))\)[(]").groups == 2  # escaped and classed parens are not groups


@pytest.mark.parametrize("text", ["id=99999999999999999999999", "id=nan", "priority>inf", "id!=-1e300"])
def test_filter_numbers_are_bounded(text):
    with pytest.raises(InvalidArgument, match="takes a number from"):
        parse_filter(text, {"id": NUMBER, "priority": NUMBER}, 0.0)
    assert parse_filter("id=9007199254740992", {"id": NUMBER}, 0.0)[0].values == (2.0**53,)


def test_filter_and_order_by_lengths_are_refused_with_their_limit():
    with pytest.raises(InvalidArgument, match="filter: has 5000 characters; shorten it to at most 4096"):
        parse_filter("x" * 5000, {"id": NUMBER}, 0.0)
    with pytest.raises(InvalidArgument, match="order_by: has 300 characters; shorten it to at most 256"):
        parse_order("x" * 300, {"id": NUMBER})


# ----- jobs -----------------------------------------------------------------------------

def extract(*tasks: TaskSpec, max_tasks: int = 100_000, **job):
    return extract_tasks(JobSpec("j", tasks=tasks, **job), max_tasks=max_tasks, default_max_attempts=1)


def refused(field: str, *tasks: TaskSpec, **options) -> str:
    with pytest.raises(InvalidArgument) as err:
        extract(*tasks, **options)
    assert err.value.field == field, str(err.value)
    return err.value.problem


def test_a_sweep_is_counted_before_it_is_expanded():
    axes = tuple((f"p{k}", json.dumps(list(range(100)))) for k in range(4))
    words = refused("spec.tasks[0].matrix", TaskSpec("t", command=("x",), matrix=axes))
    assert words.startswith("expands to 100000000 tasks, more than the 100000")


def test_chunks_are_counted_from_the_items_text():
    items = json.dumps(list(range(10)))
    assert "expands to 10 tasks" in refused("spec.tasks[0].items_json",
                                            TaskSpec("t", command=("x",), items_json=items, chunk_size=1), max_tasks=9)
    assert len(extract(TaskSpec("t", command=("x",), items_json=items, chunk_size=3), max_tasks=4)) == 4
    assert "the job expands to 11 tasks" in refused("spec.tasks", TaskSpec("a", command=("x",)),
                                                    TaskSpec("t", command=("x",), items_json=items, chunk_size=1),
                                                    max_tasks=10)


@pytest.mark.parametrize("task, field, words", [
    (TaskSpec("t", command=("echo", "x" * 200_000)), "spec.tasks[0].command[1]", "at most 131072"),
    (TaskSpec("t", command=("echo",), env={"V": "x" * 200_000}), "spec.tasks[0].env['V']", "at most 131072"),
    (TaskSpec("t", command=("echo",), env={"A=B": "1"}), "spec.tasks[0].env['A=B']", "no '='"),
    (TaskSpec("t", command=("echo", "a\x00")), "spec.tasks[0].command[1]", "NUL"),
    (TaskSpec("t", command=("echo",) + ("x" * 100_000,) * 6), "spec.tasks[0].command", "add up to"),
    (TaskSpec("t", python="m:f", args_json="[" * 40 + "]" * 40), "spec.tasks[0].args_json", "33 deep"),
    (TaskSpec("t", command=("x",), timeout_seconds=1e300), "spec.tasks[0].timeout_seconds", "10 years"),
    (TaskSpec("t", command=("x",), cwd="/" * 5000), "spec.tasks[0].cwd", "at most 4096"),
    (TaskSpec("t", command=("x",), after=("t",) * 1001), "spec.tasks[0].after", "at most 1000"),
    (TaskSpec("t", command=("echo", "{p}" * 400), matrix=(("p", json.dumps(["a", "b" * 390])),)),
     "spec.tasks[0].command[1]", "in task t[p=bbb"),
])
def test_oversized_fields_are_refused_with_their_path(task, field, words):
    assert words in refused(field, task)


def test_job_fields_are_bounded():
    assert "at most 4096" in refused("spec.labels['k']", TaskSpec("t", command=("x",)), labels={"k": "v" * 5000})
    assert "10 years" in refused("spec.give_up.after_seconds", TaskSpec("t", command=("x",)),
                                 window=Window(give_up_after_seconds=math.inf))


# ----- lists ----------------------------------------------------------------------------

class Row:
    def __init__(self, id: int) -> None:
        self.id = id


def test_a_list_page_stops_at_its_byte_budget_and_resumes_where_it_stopped():
    big = {i: job_pb2.Job(id=str(i), reason="x" * 1000) for i in range(1, 11)}

    def fetch(cond, before, offset, limit, order):
        ids = [i for i in sorted(big, reverse=True) if before is None or i < before]
        return [Row(i) for i in ids[:limit]]

    source = paging.Source(fetch, lambda m, key: None)
    query = Query(None, [], [], None)
    size = lambda row: big[row.id].ByteSize()  # noqa: E731
    seen, token, pages = [], "", 0
    while True:
        page = paging.page(source, query, token, 100, size, max_bytes=3500)
        jobs, token = [big[r.id] for r in page.items], page.next_page_token
        assert 1 <= len(jobs) <= 3
        seen += [j.id for j in jobs]
        pages += 1
        if not token:
            break
    assert seen == [str(i) for i in range(10, 0, -1)] and pages == 4
    one = paging.page(source, query, "", 100, size, max_bytes=10).items
    assert len(one) == 1  # a row bigger than the budget still goes out, alone


def test_swept_task_names_must_fit_a_task_name():
    values = json.dumps(["short", "v" * 500])
    words = refused("spec.tasks[0].matrix[0].values_json", TaskSpec("t", command=("x",), matrix=(("p", values),)))
    assert "task names of 505 characters" in words and "at most 400" in words
    assert len(extract(TaskSpec("t", command=("x",), matrix=(("p", json.dumps(["v" * 390])),)))) == 1
