"""Job files: TOML or JSON documents describing a job, checked and converted to a JobSpec.

The client checks the shape (syntax, known keys, types, required fields) and names the line of
each problem; what the tasks mean together (cycles, unknown `after`, duplicate names) and what a
prerequisite signature says are the server's to check. `JobFile.locate` maps the field path of a
server INVALID_ARGUMENT back to a line. Signature files are read by the same converter
(jobfile_signatures.py).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from jobplane.client.documents import kind_of, parse_json, parse_toml, read_text, unknown_key
from jobplane.client.errors import FileProblem, JobFileError
from jobplane.client.jobfile_sched import FILE_NAMES as _SCHEDULING_FILE_NAMES
from jobplane.client.jobfile_sched import WHOLE as _SCHEDULING_WHOLE
from jobplane.client.jobfile_sched import JOB_KEYS, TRANSIENT_KEYS, SchedulingKeys
from jobplane.client.jobfile_recurring import locate_recurring, recurring_problems, schedule_message, split_recurring
from jobplane.client.jobfile_notify import JOB_KEYS as _NOTIFY_JOB_KEYS
from jobplane.client.jobfile_notify import NOTIFY_KEYS, NotifyKeys
from jobplane.client.jobfile_resources import FLATTENED as _RESOURCE_FLATTENED
from jobplane.client.jobfile_resources import JOB_KEYS as _RESOURCE_JOB_KEYS
from jobplane.client.jobfile_resources import TASK_KEYS as _RESOURCE_TASK_KEYS
from jobplane.client.jobfile_resources import ResourceKeys
from jobplane.client.jobfile_slurm import SlurmKeys, environment_problem
from jobplane.client.jobfile_text import TextKeys
from jobplane.client.locate import FieldPath, LineIndex, format_path, server_field
from jobplane.v1 import job_pb2, schedule_pb2

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class JobFile:
    """A parsed, checked job file: its JobSpec plus what it takes to point back at its lines."""

    name: str
    spec: job_pb2.JobSpec
    document: Mapping[str, Any]
    lines: LineIndex
    schedule: schedule_pb2.Schedule | None = None  # a recurring job's schedule (`schedule = "0 2 * * *"`)

    def locate(self, message: str) -> FileProblem:
        """Map a server message such as `spec.tasks[2].after[0]: unknown task "x"` to a file line."""
        recurring = locate_recurring(message, self.lines, self.name)
        if recurring is not None:
            return recurring
        if message.startswith("schedule.job"):  # a schedule's job is the file's job
            message = "spec" + message[len("schedule.job"):]
        found = server_field(message)
        if found is None:
            return FileProblem(self.name, None, "", message)
        path, line_path = _file_path(found[0], self.document)
        line = self.lines.line_of(line_path) if line_path else None
        return FileProblem(self.name, line, format_path(path), found[1])


def load_job_file(path: str | Path) -> JobFile:
    """Read and check a `.toml` or `.json` job file; raises JobFileError naming file and line."""
    name = str(path)
    return parse_job_file(read_text(path, "job file"), name=name, syntax="json" if name.endswith(".json") else "toml")


def parse_job_file(text: str, *, name: str = "<job file>", syntax: str = "toml") -> JobFile:
    """Check and convert job-file text (`syntax` "toml" or "json"); raises JobFileError."""
    if syntax == "json":
        document, lines = parse_json(text, name), LineIndex.for_json(text)
    else:
        document, lines = parse_toml(text, name), LineIndex.for_toml(text)
    job, recurring = split_recurring(document) if isinstance(document, Mapping) else (document, {})
    problems = recurring_problems(recurring, lines, name)
    try:
        spec = _Converter(syntax, lines, name).job_spec(job)
    except JobFileError as error:
        raise JobFileError(sorted(error.problems + tuple(problems), key=lambda p: p.line or 0)) from None
    if problems:
        raise JobFileError(problems)
    return JobFile(name, spec, document, lines, schedule_message(recurring, spec))


def job_spec_from_mapping(document: Mapping[str, Any]) -> job_pb2.JobSpec:
    """Convert a parsed job-file mapping (the dict a TOML or JSON file gives) to a JobSpec."""
    return _Converter("python", LineIndex({}), None).job_spec(document)


class _Invalid(Exception):
    """One value of the document has the wrong shape."""

    def __init__(self, path: FieldPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


_TABLE_WORD = {"toml": "a table", "json": "an object", "python": "a mapping"}


class _Converter(SchedulingKeys, SlurmKeys, TextKeys, NotifyKeys, ResourceKeys):
    """Checks a document's shape and builds the JobSpec, collecting every problem it finds."""

    def __init__(self, syntax: str, lines: LineIndex, name: str | None) -> None:
        self._syntax = syntax
        self._lines = lines
        self._name = name
        self._problems: list[FileProblem] = []

    def job_spec(self, document: Any) -> job_pb2.JobSpec:
        if not isinstance(document, Mapping):
            raise JobFileError([self._problem((), f"expected {self._table} at the top; got {self._kind(document)}")])
        fields = self._fields(document, (), _JOB_FIELDS, required=("name", "tasks"))
        self._raise_problems()
        return job_pb2.JobSpec(**fields)

    def signature_file(self, document: Any) -> list[struct_pb2.Struct]:
        if not isinstance(document, Mapping):
            expected = f"{self._table} with signatures, or a list of signatures"
            raise JobFileError([self._problem((), f"expected {expected}; got {self._kind(document)}")])
        fields = self._fields(document, (), _SIGNATURE_FILE_FIELDS, required=("signatures",))
        self._raise_problems()
        return fields["signatures"]

    def _raise_problems(self) -> None:
        if self._problems:
            raise JobFileError(sorted(self._problems, key=lambda problem: problem.line or 0))

    @property
    def _table(self) -> str:
        return _TABLE_WORD[self._syntax]

    def _problem(self, path: FieldPath, message: str) -> FileProblem:
        line = self._lines.line_of(path)
        if line is None and self._name is not None:
            line = 1  # a top-level key that is missing belongs at the top
        return FileProblem(self._name, line, format_path(path), message)

    def _report(self, path: FieldPath, message: str) -> None:
        self._problems.append(self._problem(path, message))

    def _fields(
        self, table: Mapping[str, Any], path: FieldPath, known: Mapping[str, _Field], required: tuple[str, ...]
    ) -> dict[str, Any]:
        """Converted proto fields of `table`; problems are recorded, not raised."""
        converted: dict[str, Any] = {}
        for key, value in table.items():
            field = known.get(key)
            try:
                if field is None:
                    raise _Invalid(path + (key,), unknown_key(key, known))
                result = field.convert(self, value, path + (key,))
                if field.proto_name is None:  # the converter chose the fields (e.g. give_up_after)
                    converted.update(result)
                elif "." in field.proto_name:  # a field of a sub-message: `lateness.start_by`
                    outer, inner = field.proto_name.split(".")
                    converted.setdefault(outer, {})[inner] = result
                else:
                    converted[field.proto_name] = result
            except _Invalid as invalid:
                self._report(invalid.path, invalid.message)
        for key in required:
            if key not in table:
                self._report(path + (key,), f"missing; {_REQUIRED_HINT[key]}")
        return converted

    def _kind(self, value: Any) -> str:
        return kind_of(value, self._table)

    def _fail(self, path: FieldPath, message: str) -> NoReturn:
        raise _Invalid(path, message)

    def _keyed(self, table: Mapping[str, Any], path: FieldPath,
               keys: Mapping[str, tuple[str | None, str]]) -> dict[str, Any]:
        """The fields of a sub-table whose keys are given as (proto field, converter method)."""
        return self._fields(table, path, _named_fields(keys), required=())

    # Converters: each takes the value and its path and returns the proto value or raises _Invalid.

    def string(self, value: Any, path: FieldPath) -> str:
        if not isinstance(value, str):
            raise _Invalid(path, f"expected a string; got {self._kind(value)}")
        return value

    def integer(self, value: Any, path: FieldPath) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(path, f"expected an integer; got {self._kind(value)}")
        if not INT32_MIN <= value <= INT32_MAX:
            raise _Invalid(path, f"expected an integer between {INT32_MIN} and {INT32_MAX}; got {value}")
        return value

    def boolean(self, value: Any, path: FieldPath) -> bool:
        if not isinstance(value, bool):
            raise _Invalid(path, f"expected true or false; got {self._kind(value)}")
        return value

    def seconds(self, value: Any, path: FieldPath) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(path, f"expected a number of seconds; got {self._kind(value)}")
        return float(value)

    def string_map(self, value: Any, path: FieldPath) -> dict[str, str]:
        """A table of strings; numbers and booleans become the strings they are written as."""
        if not isinstance(value, Mapping):
            raise _Invalid(path, f"expected {self._table} of strings; got {self._kind(value)}")
        return {str(key): self._label_value(item, path + (key,)) for key, item in value.items()}

    def _label_value(self, value: Any, path: FieldPath) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise _Invalid(path, f"expected a string; got {self._kind(value)}")

    def names(self, value: Any, path: FieldPath) -> list[str]:
        return self._strings(value, path, "a list of task names")

    def strings(self, value: Any, path: FieldPath) -> list[str]:
        return self._strings(value, path, "a list of strings")

    def _strings(self, value: Any, path: FieldPath, expected: str) -> list[str]:
        """A list of strings; a single string is a list of one."""
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _Invalid(path, f"expected {expected}; got {self._kind(value)}")
        return value

    def command(self, value: Any, path: FieldPath) -> list[str]:
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError as error:
                raise _Invalid(path, f"cannot split the command string: {error}; check its quotes") from error
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise _Invalid(path, f"expected a list of strings or a string; got {self._kind(value)}")

    def json_args(self, value: Any, path: FieldPath) -> str:
        if not isinstance(value, (Mapping, list)):
            expected = f"{self._table} (keyword arguments) or a list (positional arguments)"
            raise _Invalid(path, f"expected {expected}; got {self._kind(value)}")
        return self._json(value, path)

    def json_list(self, value: Any, path: FieldPath) -> str:
        if not isinstance(value, list):
            raise _Invalid(path, f"expected a list; got {self._kind(value)}")
        return self._json(value, path)

    def matrix(self, value: Any, path: FieldPath) -> list[job_pb2.MatrixParameter]:
        if not isinstance(value, Mapping):
            expected = f"{self._table} of lists, e.g. {{ lr = [0.1, 0.01] }}"
            raise _Invalid(path, f"expected {expected}; got {self._kind(value)}")
        parameters = []
        for name, values in value.items():
            if not isinstance(values, list):
                raise _Invalid(path + (name,), f"expected a list of values to sweep; got {self._kind(values)}")
            values_json = self._json(values, path + (name,))
            parameters.append(job_pb2.MatrixParameter(name=name, values_json=values_json))
        return parameters

    def _json(self, value: Any, path: FieldPath) -> str:
        try:
            return json.dumps(value)
        except (TypeError, ValueError) as error:
            raise _Invalid(path, f"expected values JSON can carry (no dates or times): {error}") from error

    def tasks(self, value: Any, path: FieldPath) -> list[job_pb2.TaskSpec]:
        if not isinstance(value, list):
            raise _Invalid(path, f"expected a list of tasks ([[tasks]] tables); got {self._kind(value)}")
        specs = []
        for index, task in enumerate(value):
            task_path = path + (index,)
            if not isinstance(task, Mapping):
                self._report(task_path, f"expected {self._table}; got {self._kind(task)}")
                continue
            fields = self._fields(task, task_path, _TASK_FIELDS, required=("name",))
            self._check_program(task, task_path)
            specs.append(job_pb2.TaskSpec(**fields))
        return specs

    def rules(self, value: Any, path: FieldPath) -> list[job_pb2.ContinuationRule]:
        if not isinstance(value, list):
            raise _Invalid(path, 'expected a list of rules, e.g. [{ kind = "end_of_month", priority = 2 }]; '
                                 f"got {self._kind(value)}")
        rules = []
        for index, rule in enumerate(value):
            rule_path = path + (index,)
            if not isinstance(rule, Mapping):
                self._report(rule_path, f"expected {self._table} with kind and priority; got {self._kind(rule)}")
                continue
            rules.append(job_pb2.ContinuationRule(**self._fields(rule, rule_path, _RULE_FIELDS,
                                                                 required=("kind", "priority"))))
        return rules

    def prerequisites(self, value: Any, path: FieldPath) -> list[struct_pb2.Struct]:
        """Signatures as Structs; only their shape is checked here, their fields by the server."""
        if not isinstance(value, list):
            raise _Invalid(path, f"expected a list of signature tables, e.g. [{_SIGNATURE_EXAMPLE}]; "
                                 f"got {self._kind(value)}")
        signatures = []
        for index, signature in enumerate(value):
            try:
                signatures.append(self._signature(signature, path + (index,)))
            except _Invalid as invalid:
                self._report(invalid.path, invalid.message)
        return signatures

    def _signature(self, value: Any, path: FieldPath) -> struct_pb2.Struct:
        if isinstance(value, struct_pb2.Struct):
            return value  # an SDK caller's, already converted
        if not isinstance(value, Mapping):
            raise _Invalid(path, f"expected {self._table} such as {_SIGNATURE_EXAMPLE}; got {self._kind(value)}")
        if "kind" not in value:
            raise _Invalid(path + ("kind",), 'missing; add kind = "file", "executable", "python_package", ...')
        self.string(value["kind"], path + ("kind",))
        return json_format.ParseDict(json.loads(self._json(value, path)), struct_pb2.Struct())

    def external(self, value: Any, path: FieldPath) -> job_pb2.ExternalSpec:
        if not isinstance(value, Mapping):
            raise _Invalid(path, f'expected {self._table} with submit, poll and cancel commands; got {self._kind(value)}')
        return job_pb2.ExternalSpec(**self._fields(value, path, _EXTERNAL_FIELDS, required=("submit", "poll")))

    def moment(self, value: Any, path: FieldPath) -> timestamp_pb2.Timestamp:
        """A TOML date-time, or an ISO 8601 string; without a zone, this machine's local time."""
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise _Invalid(path, f"expected a time like 2026-12-24T18:00:00+01:00; got {value!r}") from None
        if not isinstance(value, datetime):
            raise _Invalid(path, f"expected a date-time (e.g. 2026-12-24T18:00:00Z); got {self._kind(value)}")
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(int((value if value.tzinfo else value.astimezone()).timestamp() * 1e9))
        return stamp

    def _check_program(self, task: Mapping[str, Any], path: FieldPath) -> None:
        if any(key not in _TASK_FIELDS for key in task):
            return  # a misspelt `comand` is reported as such, not also as a missing command
        given = [key for key in ("command", "python", "external", "slurm") if key in task]
        mismatch = environment_problem(task)
        if mismatch is not None:
            self._report(path + (mismatch[0],), mismatch[1])
        elif len(given) > 1:
            self._report(path + (given[1],),
                         f"set only one of command, python, external and slurm, not {' and '.join(given)}")
        elif not given:
            self._report(path, 'missing command or python; add command = ["..."], python = "module:function", '
                               "external = { submit = [...], poll = [...] } or slurm = { script = \"run.sh\" }")


@dataclass(frozen=True)
class _Field:
    proto_name: str | None  # None: `convert` returns a dict of proto fields
    convert: Callable[[_Converter, Any, FieldPath], Any]


def _named_fields(keys: Mapping[str, tuple[str | None, str]]) -> dict[str, _Field]:
    """Fields given as (proto field, name of a _Converter method), as jobfile_sched gives them."""
    return {key: _Field(proto_name, getattr(_Converter, method)) for key, (proto_name, method) in keys.items()}


_JOB_FIELDS = {
    "name": _Field("name", _Converter.string),
    "priority": _Field("priority", _Converter.integer),
    "labels": _Field("labels", _Converter.string_map),
    "tasks": _Field("tasks", _Converter.tasks),
    "wait_for_providers": _Field("wait_for_providers", _Converter.boolean),
    "continuation_priority": _Field("continuation_priority", _Converter.integer),
    "continuation_rules": _Field("continuation_rules", _Converter.rules),
    "start_by": _Field("lateness.start_by", _Converter.moment),
    "finish_by": _Field("lateness.finish_by", _Converter.moment),
    "max_wait": _Field("lateness.max_wait_seconds", _Converter.seconds),
    "max_runtime": _Field("lateness.max_runtime_seconds", _Converter.seconds),
    **_named_fields(JOB_KEYS),
    **_named_fields(_NOTIFY_JOB_KEYS),
    **_named_fields(_RESOURCE_JOB_KEYS),
}

_EXTERNAL_FIELDS = {
    "submit": _Field("submit", _Converter.command),
    "poll": _Field("poll", _Converter.command),
    "cancel": _Field("cancel", _Converter.command),
    "poll_interval": _Field("poll_interval_seconds", _Converter.seconds),
}

_RULE_FIELDS = {
    "kind": _Field("rule_kind", _Converter.rule_kind),
    "priority": _Field("priority", _Converter.integer),
    "value": _Field("value", _Converter.string),
    "days": _Field("days", _Converter.integer),
}

_TASK_FIELDS = {
    "name": _Field("name", _Converter.string),
    "command": _Field("command", _Converter.command),
    "python": _Field("python", _Converter.string),
    "args": _Field("args_json", _Converter.json_args),
    "env": _Field("env", _Converter.string_map),
    "cwd": _Field("cwd", _Converter.string),
    "timeout": _Field("timeout_seconds", _Converter.seconds),
    "after": _Field("after", _Converter.names),
    "requires": _Field("requires", _Converter.string_map),
    "max_attempts": _Field("max_attempts", _Converter.integer),
    "matrix": _Field("matrix", _Converter.matrix),
    "items": _Field("items_json", _Converter.json_list),
    "chunk_size": _Field("chunk_size", _Converter.integer),
    "expected": _Field("expected_seconds", _Converter.seconds),
    "retry_backoff": _Field("retry_backoff_seconds", _Converter.seconds),
    "retry_on": _Field("retry_failures", _Converter.retry_on),
    "prerequisites": _Field("prerequisites", _Converter.prerequisites),
    "external": _Field("external", _Converter.external),
    "environment": _Field(None, _Converter.environment),
    "slurm": _Field("slurm", _Converter.slurm),
    "start_by": _Field("lateness.start_by", _Converter.moment),
    "finish_by": _Field("lateness.finish_by", _Converter.moment),
    "max_wait": _Field("lateness.max_wait_seconds", _Converter.seconds),
    "max_runtime": _Field("lateness.max_runtime_seconds", _Converter.seconds),
    **_named_fields(_RESOURCE_TASK_KEYS),
}

_SIGNATURE_FILE_FIELDS = {"signatures": _Field("signatures", _Converter.prerequisites)}
_SIGNATURE_EXAMPLE = '{ kind = "file", path = "/data/ref.fa" }'

_REQUIRED_HINT = {
    "name": 'add name = "..."',
    "tasks": "add at least one [[tasks]] table",
    "kind": 'add kind = "end_of_month" (or end_of_quarter, end_of_year, end_of_period, date, cron)',
    "priority": "add priority = N (smaller is more important)",
    "signatures": f"add signatures = [{_SIGNATURE_EXAMPLE}, ...]",
}


# Proto field name -> the file's key (`timeout_seconds` -> `timeout`).
_FILE_NAMES = {
    field.proto_name.split(".")[-1]: key
    for key, field in (_JOB_FIELDS | _TASK_FIELDS | _RULE_FIELDS | _named_fields(TRANSIENT_KEYS)
                       | _named_fields(NOTIFY_KEYS)).items()
    if field.proto_name
} | _SCHEDULING_FILE_NAMES
# Sub-messages whose fields are the file's keys of the table around them (`max_wait`, not
# `lateness.max_wait`): left out of the file's path.
_FLATTENED = {"lateness"} | _RESOURCE_FLATTENED
# Messages one file key gives whole (a server message naming a field inside names that key).
_WHOLE = _SCHEDULING_WHOLE | {"retry_failures": "retry_on"}
# Lists of messages the file writes as a list of words, one word per message.
_WORD_LISTS = {"fact_conditions"}
# Repeated scalars whose element index the message names anyway (`unknown task "x"`).
_SCALAR_LISTS = {"after", "command", "retry_on"}
# Fields whose insides are the file's own keys, carried as Structs: nothing below them is renamed.
_VERBATIM = {"prerequisites"}


def _file_path(proto: FieldPath, document: Mapping[str, Any]) -> tuple[FieldPath, FieldPath]:
    """The file's spelling of a proto field path: (path to show, path to look up the line of)."""
    parts = list(proto[1:] if proto[:1] == ("spec",) else proto)
    shown: list[str | int] = []
    line: list[str | int] = []
    while parts:
        part = parts.pop(0)
        if part == "matrix" and parts and isinstance(parts[0], int):
            part = _matrix_key(document, line, parts.pop(0))
            shown += ["matrix", part] if part else ["matrix"]
            line += ["matrix", part] if part else ["matrix"]
            del parts[:]  # `.values_json` / `.name` of the parameter
            continue
        if part in _VERBATIM:
            shown += [part, *parts]
            line += [part, *parts]
            break
        if part in _FLATTENED:
            continue
        if part in _WORD_LISTS:  # `fact_conditions[1].value` is the file's `conditions[1]`
            shown.append(_FILE_NAMES[part])
            line.append(_FILE_NAMES[part])
            shown += parts[:1]
            line += parts[:1]
            break
        if part in _WHOLE:  # one file key for the whole message: `give_up.time` is `give_up_after`
            shown.append(_WHOLE[part])
            line.append(_WHOLE[part])
            break
        part = _FILE_NAMES.get(part, part) if isinstance(part, str) else part
        line.append(part)
        if not (isinstance(part, int) and shown and shown[-1] in _SCALAR_LISTS):
            shown.append(part)
    return tuple(shown), tuple(line)


def _matrix_key(document: Mapping[str, Any], task_path: list[str | int], index: int) -> str | None:
    """The name of the index-th matrix parameter of the task at `task_path`, in file order."""
    node: Any = document
    for part in task_path + ["matrix"]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    keys = list(node) if isinstance(node, Mapping) else []
    return keys[index] if 0 <= index < len(keys) else None
