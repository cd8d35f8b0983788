"""Job files: the examples convert, bad files are reported at the right line, server paths map back."""

from __future__ import annotations

import importlib
import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from google.protobuf import json_format, struct_pb2

from jobplane.client import JobFileError, job_spec_from_mapping, load_job_file, parse_job_file
from jobplane.client.jobfile_signatures import load_signature_file, signature_structs
from jobplane.v1 import job_pb2

EXAMPLES = resources.files("jobplane.examples")
EXAMPLE_FILES = sorted(item.name for item in EXAMPLES.iterdir() if item.name.endswith((".toml", ".json")))
# What the examples may run: present on any Debian/Ubuntu.
PORTABLE_PROGRAMS = {"sh", "echo", "sleep", "true", "false"}


def example(name: str):
    return parse_job_file(
        EXAMPLES.joinpath(name).read_text(), name=name, syntax="json" if name.endswith(".json") else "toml"
    )


def problems(text: str, syntax: str = "toml") -> list[str]:
    with pytest.raises(JobFileError) as caught:
        parse_job_file(text, name="job." + syntax, syntax=syntax)
    return [str(problem) for problem in caught.value.problems]


# The examples


def test_the_examples_include_every_documented_file():
    expected = {"hello.toml", "hello.json", "sweep.toml", "chunks.toml", "dag.toml", "python.toml", "demo.toml"}
    assert expected <= set(EXAMPLE_FILES)


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_every_example_runs_only_portable_programs_and_existing_callables(name):
    for task in example(name).spec.tasks:
        if task.command:
            assert task.command[0] in PORTABLE_PROGRAMS, f"{name}: {task.name} runs {task.command[0]}"
        else:
            module, _, function = task.python.partition(":")
            assert callable(getattr(importlib.import_module(module), function)), f"{name}: {task.python}"


def test_hello_json_is_the_same_job_as_hello_toml():
    assert example("hello.json").spec == example("hello.toml").spec
    assert list(example("hello.toml").spec.tasks[0].command) == ["echo", "hello from jobplane"]


def test_sweep_keeps_the_matrix_in_file_order_and_the_placeholders_for_the_server():
    (train,) = example("sweep.toml").spec.tasks
    assert [(p.name, json.loads(p.values_json)) for p in train.matrix] == [("lr", [0.1, 0.01]), ("batch", [16, 32])]
    assert "lr={lr}" in train.command[2]
    assert train.env["RUN"] == "lr-{lr}-batch-{batch}"
    assert train.timeout_seconds == 60


def test_chunks_become_items_json_and_chunk_size():
    (task,) = example("chunks.toml").spec.tasks
    assert task.python == "jobplane.examples.funcs:sum_items"
    assert json.loads(task.items_json) == list(range(1, 11))
    assert task.chunk_size == 3


def test_dag_wires_load_after_both_transforms():
    spec = example("dag.toml").spec
    after = {task.name: list(task.after) for task in spec.tasks}
    assert after == {
        "extract": [],
        "transform_left": ["extract"],
        "transform_right": ["extract"],
        "load": ["transform_left", "transform_right"],
    }
    assert spec.priority == 5
    assert spec.tasks[0].command[:2] == ["sh", "-c"]  # a command string is split like a shell would


def test_python_args_table_is_keyword_arguments_and_array_is_positional():
    tasks = {task.name: task for task in example("python.toml").spec.tasks}
    assert json.loads(tasks["square"].args_json) == {"x": 7}
    assert json.loads(tasks["add"].args_json) == [2, 3]


def test_the_example_callables_compute_what_their_names_say():
    funcs = importlib.import_module("jobplane.examples.funcs")
    assert (funcs.square(3), funcs.add(2, 3), funcs.sum_items([1, 2, 3]), funcs.noop()) == (9, 5, 6, None)
    with pytest.raises(RuntimeError, match="boom"):
        funcs.fail("boom")


def test_demo_is_a_small_graph_of_commands_and_python_calls():
    tasks = example("demo.toml").spec.tasks
    assert {bool(task.command) for task in tasks} == {True, False}
    assert any(task.matrix for task in tasks) and any(task.items_json for task in tasks)
    assert any(task.after for task in tasks)


# Conversion details


def test_numbers_and_booleans_in_env_requires_and_labels_become_strings():
    spec = parse_job_file(
        'name = "j"\nlabels = { tier = 1 }\n[[tasks]]\nname = "t"\ncommand = "true"\n'
        "env = { RETRIES = 3, RATIO = 0.5 }\nrequires = { gpu = false }\n"
    ).spec
    assert dict(spec.labels) == {"tier": "1"}
    assert dict(spec.tasks[0].env) == {"RETRIES": "3", "RATIO": "0.5"}
    assert dict(spec.tasks[0].requires) == {"gpu": "false"}


def test_supervision_settings_convert_to_their_proto_fields():
    spec = parse_job_file(
        'name = "j"\nwait_for_providers = true\n[[tasks]]\nname = "t"\ncommand = "true"\n'
        'expected = 30\nretry_backoff = 0.5\nretry_on = ["timeout", "exit_code:3"]\n'
    ).spec
    assert spec.wait_for_providers
    (task,) = spec.tasks
    assert (task.expected_seconds, task.retry_backoff_seconds) == (30, 0.5)
    assert task.retry_failures == job_pb2.RetryFailures(timeout=True, exit_codes=[3])
    job_file = parse_job_file('name = "j"\n[[tasks]]\nname = "t"\ncommand = "true"\nexpected = 30\n', name="job.toml")
    assert str(job_file.locate("spec.tasks[0].expected_seconds: must be > 0")) == "job.toml:5: tasks[0].expected: must be > 0"


def test_continuation_rule_kinds_become_rule_kinds_and_an_unknown_one_names_the_choices():
    text = 'name = "j"\ncontinuation_rules = [{ kind = "end_of_month", priority = 2, days = 3 }]\n' + TASK
    (rule,) = parse_job_file(text).spec.continuation_rules
    assert rule == job_pb2.ContinuationRule(rule_kind=job_pb2.CONTINUATION_RULE_KIND_END_OF_MONTH, priority=2, days=3)
    assert problems(text.replace("end_of_month", "monthly")) == [
        "job.toml:2: continuation_rules[0].kind: unknown kind 'monthly'; use one of end_of_month, end_of_quarter, "
        "end_of_year, end_of_period, date, cron"]


def test_retry_on_words_become_retry_failures_and_unknown_ones_name_their_entry():
    words = 'name = "j"\n[[tasks]]\nname = "t"\ncommand = "true"\nretry_on = ["error", "exit_code:-1"]\n'
    job_file = parse_job_file(words, name="job.toml")
    assert job_file.spec.tasks[0].retry_failures == job_pb2.RetryFailures(any=True, exit_codes=[-1])
    assert str(job_file.locate("spec.tasks[0].retry_failures.exit_codes: has 101 entries")) == \
        "job.toml:5: tasks[0].retry_on: has 101 entries"
    assert problems(words.replace('"error"', '"sometimes"')) == [
        "job.toml:5: tasks[0].retry_on[0]: unknown 'sometimes'; use error (any failure), timeout or exit_code:N"]


def test_a_mapping_converts_like_a_file_and_reports_paths_without_lines():
    spec = job_spec_from_mapping({"name": "j", "tasks": [{"name": "t", "command": "echo 'a b'"}]})
    assert list(spec.tasks[0].command) == ["echo", "a b"]
    with pytest.raises(JobFileError) as caught:
        job_spec_from_mapping({"name": "j", "tasks": [{"name": "t", "command": 3}]})
    assert str(caught.value) == "tasks[0].command: expected a list of strings or a string; got an integer"


def test_load_job_file_reads_by_extension_and_names_the_file(tmp_path: Path):
    path = tmp_path / "job.json"
    path.write_text('{"name": "j", "tasks": [{"name": "t", "command": ["true"]}]}')
    assert load_job_file(path).spec.tasks[0].name == "t"
    with pytest.raises(JobFileError, match=r"missing\.toml: cannot read the job file"):
        load_job_file(tmp_path / "missing.toml")


# Bad files: every problem names its field and line


def test_toml_syntax_error_names_the_line():
    assert problems('name = "j"\n[[tasks]]\nname = \n') == ["job.toml:3: invalid TOML: Invalid value (column 8)"]


def test_json_syntax_error_names_the_line():
    (problem,) = problems('{"name": "j",\n "tasks": [\n  {"name": "t"\n  "command": []}]}', "json")
    assert problem.startswith("job.json:4: invalid JSON: Expecting ',' delimiter")


def test_unknown_key_names_its_line_and_suggests_the_known_one():
    text = 'name = "j"\n[[tasks]]\nname = "t"\ncomand = ["true"]\n'
    assert problems(text) == ['job.toml:4: tasks[0].comand: unknown key; did you mean "command"?']


def test_wrong_types_name_the_field_path_and_line():
    text = 'name = "j"\npriority = "high"\n[[tasks]]\nname = "a"\ncommand = ["true"]\n[[tasks]]\nname = "b"\ncommand = 3\n'
    assert problems(text) == [
        "job.toml:2: priority: expected an integer; got a string",
        "job.toml:8: tasks[1].command: expected a list of strings or a string; got an integer",
    ]


def test_env_value_of_the_wrong_type_in_a_subtable_points_at_its_line():
    text = 'name = "j"\n[[tasks]]\nname = "t"\ncommand = "true"\n[tasks.env]\nA = "1"\nB = [2]\n'
    assert problems(text) == ["job.toml:7: tasks[0].env.B: expected a string; got a list"]


def test_missing_names_point_at_the_top_and_at_the_task_header():
    assert problems('priority = 1\n[[tasks]]\ncommand = "true"\n[[tasks]]\nname = "b"\ncommand = "true"\n') == [
        'job.toml:1: name: missing; add name = "..."',
        'job.toml:2: tasks[0].name: missing; add name = "..."',
    ]


def test_a_job_without_tasks_is_reported():
    assert problems('name = "j"\n') == ["job.toml:1: tasks: missing; add at least one [[tasks]] table"]


@pytest.mark.parametrize(
    ("matrix", "problem"),
    [
        ("matrix = [1, 2]", "job.toml:5: tasks[0].matrix: expected a table of lists, e.g. { lr = [0.1, 0.01] }; got a list"),
        ("matrix = { lr = 0.1 }", "job.toml:5: tasks[0].matrix.lr: expected a list of values to sweep; got a number"),
    ],
)
def test_matrix_must_be_a_table_of_lists(matrix, problem):
    assert problems(f'name = "j"\n[[tasks]]\nname = "t"\ncommand = "true"\n{matrix}\n') == [problem]


def test_a_task_needs_exactly_one_of_command_python_and_external():
    text = 'name = "j"\n[[tasks]]\nname = "a"\n[[tasks]]\nname = "b"\ncommand = "true"\npython = "m:f"\n'
    assert problems(text) == [
        'job.toml:2: tasks[0]: missing command or python; add command = ["..."], python = "module:function", '
        'external = { submit = [...], poll = [...] } or slurm = { script = "run.sh" }',
        "job.toml:7: tasks[1].python: set only one of command, python, external and slurm, not command and python",
    ]


def test_external_tasks_and_lateness_keys_convert():
    text = ('name = "j"\nmax_wait = 5\nfinish_by = 2026-12-24T18:00:00Z\n[[tasks]]\nname = "mf"\n'
            'external = { submit = ["./s"], poll = "./p --json", poll_interval = 0.5 }\nmax_runtime = 60\n')
    spec = parse_job_file(text, name="job.toml").spec
    (task,) = spec.tasks
    assert (list(task.external.submit), list(task.external.poll)) == (["./s"], ["./p", "--json"])
    assert (task.external.poll_interval_seconds, task.lateness.max_runtime_seconds) == (0.5, 60)
    assert (spec.lateness.max_wait_seconds, spec.lateness.finish_by.seconds) == (5, 1798135200)
    assert problems('name = "j"\nstart_by = "soon"\n[[tasks]]\nname = "a"\ncommand = "true"\n') == [
        "job.toml:2: start_by: expected a time like 2026-12-24T18:00:00+01:00; got 'soon'"]
    job_file = parse_job_file(text, name="job.toml")  # the server names the lateness message's fields
    assert str(job_file.locate("spec.lateness.max_wait_seconds: must be >= 0")) == "job.toml:2: max_wait: must be >= 0"
    assert str(job_file.locate("spec.tasks[0].lateness.max_runtime_seconds: too long")) == \
        "job.toml:7: tasks[0].max_runtime: too long"


def test_json_problems_point_at_the_exact_line_of_nested_values():
    text = '{\n  "name": "j",\n  "tasks": [\n    {"name": "t",\n     "command": ["true"],\n     "env": {\n       "X": {"y": 1}\n     }}\n  ]\n}\n'
    assert problems(text, "json") == ["job.json:7: tasks[0].env.X: expected a string; got an object"]


def test_key_lookalikes_inside_multiline_arrays_and_strings_do_not_move_lines():
    text = (
        'name = "j"\n'
        "[[tasks]]\n"
        'name = "t"\n'
        'command = [\n  "sh",\n  "-c",\n  """\ntimeout = 1\n""",\n]\n'
        "timeout = true\n"
    )
    assert problems(text) == ["job.toml:11: tasks[0].timeout: expected a number of seconds; got a boolean"]


# Server INVALID_ARGUMENT paths back to file lines


DAG = """name = "j"

[[tasks]]
name = "a"
command = ["true"]

[[tasks]]
name = "b"
python = "m:f"
args = { x = 1 }
matrix = { lr = [0.1], batch = [] }
after = [
  "a",
  "x",
]
"""


@pytest.mark.parametrize(
    ("message", "located"),
    [
        (
            'spec.tasks[1].after[1]: unknown task "x"; name a task of this job',
            'job.toml:14: tasks[1].after: unknown task "x"; name a task of this job',
        ),
        ("spec.tasks[1].args_json: must be an object or an array", "job.toml:10: tasks[1].args: must be an object or an array"),
        ("spec.tasks[1].timeout_seconds: must be >= 0", "job.toml:7: tasks[1].timeout: must be >= 0"),
        ("spec.tasks[1].matrix[1].values_json: must not be empty", "job.toml:11: tasks[1].matrix.batch: must not be empty"),
        ("spec.name: must not be empty; give the job a name", "job.toml:1: name: must not be empty; give the job a name"),
        ("job rejected", "job.toml: job rejected"),
    ],
)
def test_server_field_paths_map_back_to_file_names_and_lines(message, located):
    assert str(parse_job_file(DAG, name="job.toml").locate(message)) == located


def test_server_paths_find_exact_lines_in_json_files():
    text = '{"name": "j",\n "tasks": [\n  {"name": "a", "command": ["true"]},\n  {"name": "b", "command": ["true"],\n   "after": ["x"]}\n ]}\n'
    job_file = parse_job_file(text, name="job.json", syntax="json")
    assert str(job_file.locate('spec.tasks[1].after[0]: unknown task "x"')) == 'job.json:5: tasks[1].after: unknown task "x"'


# Prerequisites: a list of signature tables, carried as Structs; the server checks their fields


ALIGN = """name = "j"

[[tasks]]
name = "align"
command = "true"
prerequisites = [
  { kind = "file", path = "/data/ref.fa" },
  { kind = "executable", name = "samtools", version_args = ["--version"], version = ">=1.10" },
]
"""


def test_prerequisites_become_structs_with_the_file_keys_and_values():
    (task,) = parse_job_file(ALIGN).spec.tasks
    assert [json_format.MessageToDict(signature) for signature in task.prerequisites] == [
        {"kind": "file", "path": "/data/ref.fa"},
        {"kind": "executable", "name": "samtools", "version_args": ["--version"], "version": ">=1.10"},
    ]


def test_prerequisites_read_the_same_from_toml_tables_json_and_a_mapping():
    tables = (
        'name = "j"\n[[tasks]]\nname = "align"\ncommand = "true"\n'
        '[[tasks.prerequisites]]\nkind = "file"\npath = "/data/ref.fa"\n'
        '[[tasks.prerequisites]]\nkind = "executable"\nname = "samtools"\nversion_args = ["--version"]\n'
        'version = ">=1.10"\n'
    )
    document = tomllib.loads(ALIGN)
    expected = parse_job_file(ALIGN).spec
    assert parse_job_file(tables).spec == expected
    assert parse_job_file(json.dumps(document), syntax="json").spec == expected
    assert job_spec_from_mapping(document) == expected


def test_prerequisites_problems_are_structural_only_and_name_their_lines():
    text = (
        'name = "j"\n[[tasks]]\nname = "t"\ncommand = "true"\nprerequisites = [\n'
        '  { kind = "file", path = "/a" },\n'
        '  { name = "samtools" },\n'
        '  "samtools",\n'
        "  { kind = 3 },\n"
        '  { kind = "file", path = "/b", newer_than = 2026-01-01 },\n'
        '  { kind = "no-such-kind", whatever = [1, { x = true }] },\n'  # the server's to judge
        "]\n"
    )
    assert problems(text) == [
        'job.toml:7: tasks[0].prerequisites[1].kind: missing; add kind = "file", "executable", "python_package", ...',
        'job.toml:8: tasks[0].prerequisites[2]: expected a table such as { kind = "file", path = "/data/ref.fa" }; '
        "got a string",
        "job.toml:9: tasks[0].prerequisites[3].kind: expected a string; got an integer",
        "job.toml:10: tasks[0].prerequisites[4]: expected values JSON can carry (no dates or times): "
        "Object of type date is not JSON serializable",
    ]
    assert problems('name = "j"\n[[tasks]]\nname = "t"\ncommand = "true"\nprerequisites = { kind = "file" }\n') == [
        'job.toml:5: tasks[0].prerequisites: expected a list of signature tables, e.g. [{ kind = "file", '
        'path = "/data/ref.fa" }]; got a table'
    ]


@pytest.mark.parametrize(
    ("message", "located"),
    [
        (
            "spec.tasks[0].prerequisites[1].version: '>=1.x' is not a version constraint",
            "job.toml:8: tasks[0].prerequisites[1].version: '>=1.x' is not a version constraint",
        ),
        (
            "spec.tasks[0].prerequisites[1].version_args[0]: is empty",
            "job.toml:8: tasks[0].prerequisites[1].version_args[0]: is empty",
        ),
        ("spec.tasks[0].prerequisites[0]: repeats", "job.toml:7: tasks[0].prerequisites[0]: repeats"),
        ("spec.tasks[0].prerequisites: has 51 prerequisites", "job.toml:6: tasks[0].prerequisites: has 51 prerequisites"),
    ],
)
def test_server_paths_inside_prerequisites_find_the_line_of_their_signature(message, located):
    assert str(parse_job_file(ALIGN, name="job.toml").locate(message)) == located


def test_keys_inside_a_prerequisite_are_shown_as_written_not_renamed_like_task_fields():
    text = ALIGN.replace('path = "/data/ref.fa"', 'path = "/data/ref.fa", timeout_seconds = 1')
    located = parse_job_file(text, name="job.toml").locate("spec.tasks[0].prerequisites[0].timeout_seconds: unknown")
    assert str(located) == "job.toml:7: tasks[0].prerequisites[0].timeout_seconds: unknown"


def test_prerequisite_tables_of_a_later_task_are_counted_from_zero():
    text = (
        'name = "j"\n'
        '[[tasks]]\nname = "a"\ncommand = "true"\n[[tasks.prerequisites]]\nkind = "file"\npath = "/a"\n'
        '[[tasks]]\nname = "b"\ncommand = "true"\n[[tasks.prerequisites]]\nkind = "file"\npath = "/b"\n'
        '[[tasks.prerequisites]]\nkind = "env"\nname = "HOME"\n'
    )
    job_file = parse_job_file(text, name="job.toml")
    assert str(job_file.locate("spec.tasks[1].prerequisites[0].path: x")) == "job.toml:13: tasks[1].prerequisites[0].path: x"
    assert str(job_file.locate("spec.tasks[1].prerequisites[1]: y")) == "job.toml:14: tasks[1].prerequisites[1]: y"


def test_server_paths_inside_prerequisites_find_exact_lines_in_json_files():
    text = (
        '{"name": "j", "tasks": [{"name": "t", "command": ["true"],\n'
        ' "prerequisites": [\n'
        '  {"kind": "file", "path": "/a"},\n'
        '  {"kind": "executable",\n'
        '   "name": "samtools",\n'
        '   "version": ">=x"}]}]}\n'
    )
    job_file = parse_job_file(text, name="job.json", syntax="json")
    assert str(job_file.locate("spec.tasks[0].prerequisites[1].version: bad")) == (
        "job.json:6: tasks[0].prerequisites[1].version: bad")


# Signature files (`jobplane inventory scan --file`)


def test_signature_files_in_toml_and_both_json_forms_read_the_same(tmp_path: Path):
    signatures = [{"kind": "file", "path": "/data/ref.fa"}, {"kind": "port", "port": 5432}]
    files = {
        "sigs.toml": 'signatures = [\n  { kind = "file", path = "/data/ref.fa" },\n  { kind = "port", port = 5432 },\n]\n',
        "tables.toml": '[[signatures]]\nkind = "file"\npath = "/data/ref.fa"\n[[signatures]]\nkind = "port"\nport = 5432\n',
        "list.json": json.dumps(signatures),
        "object.json": json.dumps({"signatures": signatures}),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        loaded = load_signature_file(tmp_path / name)
        assert [json_format.MessageToDict(s) for s in loaded.signatures] == signatures, name


def test_signature_file_problems_name_their_lines(tmp_path: Path):
    path = tmp_path / "sigs.json"
    path.write_text('[\n  {"kind": "file", "path": "/a"},\n  {"path": "/b"}\n]\n')
    with pytest.raises(JobFileError) as caught:
        load_signature_file(path)
    assert str(caught.value) == f'{path}:3: signatures[1].kind: missing; add kind = "file", "executable", "python_package", ...'

    path = tmp_path / "sigs.toml"
    path.write_text('[[signature]]\nkind = "file"\n')
    with pytest.raises(JobFileError) as caught:
        load_signature_file(path)
    assert [str(problem) for problem in caught.value.problems] == [
        f'{path}:1: signature: unknown key; did you mean "signatures"?',
        f'{path}:1: signatures: missing; add signatures = [{{ kind = "file", path = "/data/ref.fa" }}, ...]',
    ]


def test_server_paths_map_back_to_signature_file_lines_and_others_are_not_the_files(tmp_path: Path):
    path = tmp_path / "sigs.json"
    path.write_text('[\n  {"kind": "file", "path": "/a"},\n  {"kind": "executable", "name": "tool",\n   "version": "1"}\n]\n')
    signature_file = load_signature_file(path)
    assert str(signature_file.locate("signatures[1].version: clause '1' has no operator")) == (
        f"{path}:4: signatures[1].version: clause '1' has no operator")
    assert signature_file.locate("provider_id: must not be empty") is None


def test_signature_mappings_are_checked_and_structs_pass_as_they_are():
    struct = struct_pb2.Struct()
    struct.update({"kind": "env", "name": "HOME"})
    converted = signature_structs([{"kind": "os", "value": "linux"}, struct])
    assert [json_format.MessageToDict(s) for s in converted] == [{"kind": "os", "value": "linux"},
                                                                 {"kind": "env", "name": "HOME"}]
    with pytest.raises(JobFileError, match=r"^signatures\[0\]\.kind: missing"):
        signature_structs([{"name": "HOME"}])


# Scheduling keys: class, run_window, hold_until, give_up_after, transient, conditions, locks

TASK = '[[tasks]]\nname = "t"\ncommand = "true"\n'
SCHEDULED = '''name = "nightly"
class = "etl-load"
run_window = "22:00-04:00"
hold_until = 2026-12-24T18:00:00Z
give_up_after = 7200
transient = { exit_codes = [75], raw_statuses = ["DEADLOCK"], max_reruns = 3, backoff = 1.5 }
conditions = ["load_average<2", "free_memory_bytes>=512Mi"]
locks = { orders = "read", ledger = "Write" }
''' + TASK


def test_scheduling_keys_convert_to_their_job_spec_fields():
    spec = parse_job_file(SCHEDULED).spec
    assert (spec.job_class, spec.run_window, spec.hold_until.seconds) == ("etl-load", "22:00-04:00", 1798135200)
    assert (spec.give_up.WhichOneof("deadline"), spec.give_up.after_seconds) == ("after_seconds", 7200)
    t = spec.transient
    assert (list(t.exit_codes), list(t.raw_statuses), t.max_reruns, t.backoff_seconds) == ([75], ["DEADLOCK"], 3, 1.5)
    assert list(spec.fact_conditions) == [
        job_pb2.FactCondition(fact="load_average", op=job_pb2.COMPARISON_LESS, value=2),
        job_pb2.FactCondition(fact="free_memory_bytes", op=job_pb2.COMPARISON_GREATER_OR_EQUAL, value=512 * 2**20)]
    assert dict(spec.resource_locks) == {"orders": job_pb2.LOCK_MODE_READ, "ledger": job_pb2.LOCK_MODE_WRITE}


def test_give_up_after_is_a_time_or_seconds_after_submit():
    at_time = parse_job_file(f'name = "j"\ngive_up_after = "2026-12-24T18:00:00Z"\n{TASK}').spec
    assert (at_time.give_up.WhichOneof("deadline"), at_time.give_up.time.seconds) == ("time", 1798135200)
    toml_time = parse_job_file(f'name = "j"\ngive_up_after = 2026-12-24T18:00:00Z\n{TASK}').spec
    assert toml_time.give_up == at_time.give_up


def test_scheduling_keys_read_the_same_from_json_and_a_mapping():
    document = {"name": "nightly", "class": "etl-load", "run_window": "22:00-04:00",
                "hold_until": "2026-12-24T18:00:00Z", "give_up_after": 7200,
                "transient": {"exit_codes": [75], "raw_statuses": ["DEADLOCK"], "max_reruns": 3, "backoff": 1.5},
                "conditions": ["load_average<2", "free_memory_bytes>=512Mi"],
                "locks": {"orders": "read", "ledger": "Write"},
                "tasks": [{"name": "t", "command": "true"}]}
    expected = parse_job_file(SCHEDULED).spec
    assert parse_job_file(json.dumps(document, indent=1), syntax="json").spec == expected
    assert job_spec_from_mapping(document) == expected


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("class = 3", "class: expected a string; got an integer"),
        ('run_window = "22:00"', 'run_window: expected a daily window "HH:MM-HH:MM" on a 24-hour clock, '
                                 "e.g. \"22:00-04:00\"; got '22:00'"),
        ('run_window = "24:00-01:00"', "run_window: expected a daily window"),
        ('run_window = "10:00-10:00"', "run_window: opens and closes at the same time"),
        ('hold_until = "soon"', "hold_until: expected a time like 2026-12-24T18:00:00+01:00; got 'soon'"),
        ('give_up_after = "2h"', "give_up_after: expected a time like 2026-12-24T18:00:00Z or a number of "
                                 "seconds after submit like 7200; got '2h'"),
        ("give_up_after = -5", "give_up_after: expected a number of seconds after submit (>= 0); got -5"),
        ("give_up_after = [1]", "give_up_after: expected a date-time (e.g. 2026-12-24T18:00:00Z) or a number"),
        ("transient = [75]", "transient: expected a table such as { exit_codes = [75]"),
        ("transient = { retries = 2 }", "transient.retries: unknown key; expected one of exit_codes, "
                                        "raw_statuses, max_reruns, backoff"),
        ("transient = { backof = 2 }", 'transient.backof: unknown key; did you mean "backoff"?'),
        ("transient = { exit_codes = [75, 300] }", "transient.exit_codes[1]: 300 is not an exit code; use 0 to 255"),
        ("transient = { exit_codes = 75 }", "transient.exit_codes: expected a list of exit codes, e.g. [75]"),
        ('transient = { max_reruns = "3" }', "transient.max_reruns: expected an integer; got a string"),
        ('transient = { backoff = "1s" }', "transient.backoff: expected a number of seconds; got a string"),
        ("conditions = [2]", "conditions: expected a list of strings; got a list"),
        ('conditions = ["load is high"]', "conditions[0]: 'load is high' is not FACT OP NUMBER, e.g. \"load_average<2\""),
        ('locks = ["orders"]', "locks: expected a table of resource = mode"),
        ('locks = { orders = "exclusive" }', 'locks.orders: expected "read" (shared with other readers) or '
                                            "\"write\" (alone); got 'exclusive'"),
        ("locks = { orders = 1 }", "locks.orders: expected \"read\" (shared with other readers) or \"write\" (alone); "
                                   "got an integer"),
    ],
)
def test_bad_scheduling_values_name_the_key_line_and_fix(line, problem):
    (reported,) = problems(f'name = "j"\n{line}\n{TASK}')
    assert reported.startswith(f"job.toml:2: {problem}")


@pytest.mark.parametrize(
    ("message", "located"),
    [
        ("spec.job_class: is 300 characters", "job.toml:2: class: is 300 characters"),
        ("spec.give_up.after_seconds: must be >= 0", "job.toml:5: give_up_after: must be >= 0"),
        ("spec.give_up_after_seconds: must be >= 0", "job.toml:5: give_up_after: must be >= 0"),  # an older server
        ("spec.transient.backoff_seconds: must be >= 0", "job.toml:6: transient.backoff: must be >= 0"),
        ("spec.fact_conditions[1].fact: 'x' is not a fact", "job.toml:7: conditions[1]: 'x' is not a fact"),
        ("spec.fact_conditions: has 21 entries", "job.toml:7: conditions: has 21 entries"),
        ("spec.conditions[1]: 'x' is not FACT OP NUMBER", "job.toml:7: conditions[1]: 'x' is not FACT OP NUMBER"),
        ('spec.resource_locks["ledger"]: use read or write', 'job.toml:8: locks.ledger: use read or write'),
        ('spec.locks["ledger"]: use read or write', 'job.toml:8: locks.ledger: use read or write'),  # an older server
    ],
)
def test_server_paths_of_scheduling_fields_map_back_to_file_keys(message, located):
    assert str(parse_job_file(SCHEDULED, name="job.toml").locate(message)) == located
