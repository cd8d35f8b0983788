"""Validate a job spec and extract its concrete tasks: explicit tasks, parameter
sweeps (`matrix`) and chunked inputs (`items_json` + `chunk_size`), with `after`
dependencies checked for unknown names and cycles."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace

from ..errors import InvalidArgument
from . import limits
from .limits import MAX_NAME, MAX_TASK_NAME, check_arg, check_entries, check_json, check_map, check_seconds, check_text, shown
from .model import JobSpec, TaskDraft, TaskSpec
from .signatures import parse_signatures
from .slurm import check_slurm, expand_array
from .timing import check_rule
from .windows import check_window

PRIORITY_MAX = 1_000_000
RULES_MAX = 50
PYTHON_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RETRY_EXIT = re.compile(r"^exit_code:-?\d{1,10}$")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def extract_tasks(spec: JobSpec, *, max_tasks: int, default_max_attempts: int) -> list[TaskDraft]:
    """The job's concrete tasks, in submit order; raises InvalidArgument naming the field.
    Every field is checked, and the number of tasks counted, before anything is expanded."""
    _check_job(spec, max_tasks)
    groups = _check_groups(spec.tasks)
    templates, checked = [], set()
    for i, template in enumerate(spec.tasks):
        path = f"spec.tasks[{i}]"
        if id(template.kind) not in checked or template.after:  # a checked kind's copy passes as it did
            _check_task(path, template, groups)
            checked.add(id(template))
        if template.slurm:
            template = check_slurm(path, template)
        if template.prerequisites:
            template = replace(template, prerequisites=parse_signatures(f"{path}.prerequisites",
                                                                        template.prerequisites))
        if template.slurm or template.external:
            _check_outside_resources(path, template)
        elif spec.task_resources:  # the job's defaults, for each resource the task leaves unset
            template = replace(template, resources=template.resources.over(spec.task_resources))
        templates.append(template)
    _check_count(templates, max_tasks)
    drafts: list[TaskDraft] = []
    for i, template in enumerate(templates):
        attempts = template.max_attempts or default_max_attempts
        filled = bool(template.command and (template.matrix or template.items_json))
        for name, expanded in _expand(f"spec.tasks[{i}]", template):
            if filled:
                _check_expanded(f"spec.tasks[{i}]", name, expanded)
            drafts.append(TaskDraft(name, template.name, expanded, template.after, attempts, i))
        if len(drafts) > max_tasks:  # the counts above are exact for valid JSON; this is a backstop
            raise InvalidArgument("spec.tasks", f"the job expands to more than {max_tasks} tasks; split it into several jobs")
    _check_unique([d.name for d in drafts])
    _check_acyclic(spec.tasks)
    return drafts


def _check_outside_resources(path: str, template: TaskSpec) -> None:
    """An outside scheduler's task takes a slot at its agent but none of its capacity: what it
    needs is asked of that scheduler. (The job's defaults pass it by.)"""
    if template.resources:
        how = ("with slurm.cpus and slurm.mem" if template.slurm else "in the external submit command")
        raise InvalidArgument(f"{path}.resources", f"a {template.environment} task runs outside its agent, so "
                              f"the agent's cpus, memory, gpus and resources are not its to take; ask the "
                              f"scheduler {how} and leave these unset")


def _check_job(spec: JobSpec, max_tasks: int) -> None:
    _check_name("spec.name", spec.name)
    check_map("spec.labels", spec.labels)
    _check_continuation(spec)
    _check_lateness("spec.lateness", spec.lateness)
    _check_scheduling(spec)
    if not spec.tasks:
        raise InvalidArgument("spec.tasks", "a job needs at least one task; add a [[tasks]] entry")
    if len(spec.tasks) > max_tasks:
        raise InvalidArgument("spec.tasks", f"has {len(spec.tasks)} entries; a job may have at most {max_tasks} "
                                            "tasks (--max-tasks-per-job); split it into several jobs")


def _count(path: str, task: TaskSpec) -> int:
    """How many tasks a template expands to, from the lengths of its JSON arrays (not expanded)."""
    if task.matrix and task.items_json:
        raise InvalidArgument(f"{path}.items_json", "a task is either a sweep (matrix) or chunked (items), not both")
    if task.chunk_size and not task.items_json:
        raise InvalidArgument(f"{path}.chunk_size", "chunk_size needs items to split")
    if task.matrix:
        check_entries(f"{path}.matrix", task.matrix, limits.MAX_MATRIX_PARAMETERS)
        count = 1
        for k, (_, values_json) in enumerate(task.matrix):
            count *= _array_length(f"{path}.matrix[{k}].values_json", values_json, limits.MAX_JSON_BYTES)
        return count
    if task.items_json:
        items = _array_length(f"{path}.items_json", task.items_json, limits.MAX_SPEC_BYTES)
        if task.chunk_size < 1:
            raise InvalidArgument(f"{path}.chunk_size", "must be >= 1 when items are given")
        return -(-items // task.chunk_size)
    return 1


def _array_length(path: str, text: str, limit: int) -> int:
    entries = check_json(path, text, limit)
    if not entries:  # an empty array, or no array at all: json.loads says which below
        _json_list(path, text)
    return max(entries, 1)


def _check_count(templates: list[TaskSpec], max_tasks: int) -> None:
    """Refuse a job that would expand to more than `max_tasks`, before it is expanded."""
    counts = [_count(f"spec.tasks[{i}]", t) for i, t in enumerate(templates)]
    total = sum(counts)
    if total <= max_tasks:
        return
    limit = (f"more than the {max_tasks} a job may have (--max-tasks-per-job); split the work over several jobs"
             " or use bigger chunks")
    i = max(range(len(counts)), key=counts.__getitem__)
    if counts[i] > max_tasks:
        field = "matrix" if templates[i].matrix else "items_json"
        raise InvalidArgument(f"spec.tasks[{i}].{field}", f"expands to {counts[i]} tasks, {limit}")
    raise InvalidArgument("spec.tasks", f"the job expands to {total} tasks, {limit}")


def _check_continuation(spec: JobSpec) -> None:
    for i, rule in enumerate(spec.continuation_rules):
        check_text(f"spec.continuation_rules[{i}].value", rule.value, limits.MAX_RULE_VALUE)
    values = [spec.continuation_priority] if spec.continuation_priority is not None else []
    values += [rule.priority for rule in spec.continuation_rules]
    if any(abs(v) > PRIORITY_MAX for v in values):
        raise InvalidArgument("spec.continuation_priority",
                              f"continuation priorities must be between -{PRIORITY_MAX} and {PRIORITY_MAX}")
    if len(spec.continuation_rules) > RULES_MAX:
        raise InvalidArgument("spec.continuation_rules", f"at most {RULES_MAX} rules; merge some")
    for i, rule in enumerate(spec.continuation_rules):
        check_rule(f"spec.continuation_rules[{i}]", rule)


def _check_condition_lost(spec: JobSpec) -> None:
    action = spec.on_condition_lost
    if action in ("suspend", "requeue") and not spec.conditions:
        raise InvalidArgument("spec.on_condition_lost", f"{action} applies when the job's conditions stop holding, "
                                                        "and it has none; add conditions or leave it unset")
    for i, task in enumerate(spec.tasks):
        if action == "suspend" and task.environment != "process":
            raise InvalidArgument("spec.on_condition_lost", f"suspend pauses command tasks only, and spec.tasks[{i}] "
                                                            f"is a {task.environment} task; use requeue")


def _check_scheduling(spec: JobSpec) -> None:
    """Class, window, runtime conditions, locks and transient failures (conflicts and holds)."""
    if len(spec.job_class) > MAX_NAME:
        raise InvalidArgument("spec.job_class", f"is {len(spec.job_class)} characters; use at most {MAX_NAME}")
    check_window("spec", spec.window)
    for i, text in enumerate(spec.conditions[:limits.MAX_ENTRIES]):
        check_text(f"spec.conditions[{i}]", text, MAX_NAME)
    spec.parsed_conditions  # noqa: B018 - parsing raises InvalidArgument naming the condition
    check_entries("spec.resource_locks", spec.locks)
    spec.lock_modes  # noqa: B018
    _check_condition_lost(spec)
    t = spec.transient
    if t is None:
        return
    if not 0 <= t.max_reruns <= 100:
        raise InvalidArgument("spec.transient.max_reruns", "must be between 0 and 100 (0 = 3)")
    check_seconds("spec.transient.backoff_seconds", t.backoff_seconds, "1")
    check_entries("spec.transient.exit_codes", t.exit_codes, 256)
    check_entries("spec.transient.raw_statuses", t.raw_statuses, 100)
    for i, code in enumerate(t.exit_codes):
        if not 0 <= code <= 255:
            raise InvalidArgument(f"spec.transient.exit_codes[{i}]", f"{code} is not an exit code (0 to 255)")
    for i, value in enumerate(t.raw_statuses):
        if not value.strip() or len(value) > MAX_NAME:
            raise InvalidArgument(f"spec.transient.raw_statuses[{i}]", "must be a raw value of 1 to 200 characters")


def _check_external(path: str, external) -> None:
    for name in ("submit", "poll"):
        argv = getattr(external, name)
        if not argv or not argv[0]:
            raise InvalidArgument(f"{path}.{name}", f"the {name} command (argv) is required, e.g. [\"./{name}.sh\"]")
    for name in ("submit", "poll", "cancel"):
        _check_argv(f"{path}.{name}", getattr(external, name), {})
    check_seconds(f"{path}.poll_interval_seconds", external.poll_interval_seconds, "1 second")


def _check_argv(path: str, argv: tuple[str, ...], env: dict[str, str], env_path: str = "") -> None:
    """What the agent passes to execve: each string and all of them together within the kernel's limits."""
    check_entries(path, argv)
    check_entries(env_path, env)
    total = sum(check_arg(f"{path}[{i}]", arg) for i, arg in enumerate(argv))
    for key, value in env.items():
        where = f"{env_path}[{shown(key)}]"
        if not key or "=" in key:
            raise InvalidArgument(where, "is not an environment variable name; use letters, digits and _ (no '=')")
        total += check_arg(where, f"{key}={value}")
    if total > limits.MAX_EXEC_BYTES:
        raise InvalidArgument(path, f"the command and its environment add up to {total} bytes; at most "
                                    f"{limits.MAX_EXEC_BYTES} are passed to a program: pass large data in a file")


def _check_expanded(path: str, name: str, task: TaskSpec) -> None:
    """A swept or chunked command with its values filled in must still fit execve."""
    try:
        _check_argv(f"{path}.command", task.command, task.env, f"{path}.env")
    except InvalidArgument as exc:
        raise InvalidArgument(exc.field, f"in task {name}: {exc.problem}; use smaller values, or chunks "
                                         "(chunk_size)") from None


def _check_lateness(path: str, lateness) -> None:
    for name in ("max_wait_seconds", "max_runtime_seconds"):
        check_seconds(f"{path}.{name}", getattr(lateness, name), "no limit")
    if lateness.start_by and lateness.finish_by and lateness.finish_by < lateness.start_by:
        raise InvalidArgument(f"{path}.finish_by", "is before start_by; a job cannot finish before it starts")


def _check_name(path: str, name: str) -> None:
    if len(name) > MAX_NAME:
        raise InvalidArgument(path, f"is {len(name)} characters; use at most {MAX_NAME}")
    if not name.strip():
        raise InvalidArgument(path, "must not be empty; give it a name")


def _check_groups(tasks: tuple[TaskSpec, ...]) -> set[str]:
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        _check_name(f"spec.tasks[{i}].name", task.name)
        if task.name in seen:
            raise InvalidArgument(f"spec.tasks[{i}].name", f"duplicate task name {task.name!r}; task names must be unique in a job")
        seen.add(task.name)
    return seen


def _check_task(path: str, task: TaskSpec, groups: set[str]) -> None:
    if sum(map(bool, (task.command, task.python, task.external, task.slurm))) != 1:
        raise InvalidArgument(f"{path}.command", "set exactly one of command (argv), python (module:function), "
                                                 "external (submit/poll/cancel commands) and slurm (a batch job)")
    if task.external:
        _check_external(f"{path}.external", task.external)
    _check_lateness(f"{path}.lateness", task.lateness)
    if task.command and not task.command[0]:
        raise InvalidArgument(f"{path}.command[0]", "the program name must not be empty")
    _check_argv(f"{path}.command", task.command, task.env, f"{path}.env")
    check_text(f"{path}.cwd", task.cwd)
    check_text(f"{path}.python", task.python, MAX_NAME)
    if task.python and not PYTHON_TARGET.match(task.python):
        raise InvalidArgument(f"{path}.python", f"{task.python!r} is not module:function, e.g. 'mypkg.jobs:run'")
    if task.args_json:
        _check_args(path, task)
    check_seconds(f"{path}.timeout_seconds", task.timeout_seconds, "no limit")
    check_seconds(f"{path}.expected_seconds", task.expected_seconds, "none")
    check_seconds(f"{path}.retry_backoff_seconds", task.retry_backoff_seconds, "the server's --retry-backoff")
    check_entries(f"{path}.retry_on", task.retry_on, 100)
    for j, rule in enumerate(task.retry_on):
        if rule not in ("error", "timeout") and not RETRY_EXIT.match(rule):
            raise InvalidArgument(f"{path}.retry_on[{j}]", f"unknown {shown(rule)}; use error, timeout or exit_code:N")
    if not 0 <= task.max_attempts <= 100:
        raise InvalidArgument(f"{path}.max_attempts", "must be between 1 and 100 (0 = server default)")
    check_map(f"{path}.requires", task.requires)
    check_entries(f"{path}.after", task.after)
    for j, dep in enumerate(task.after):
        if dep == task.name:
            raise InvalidArgument(f"{path}.after[{j}]", "a task cannot run after itself; remove it")
        if dep not in groups:
            raise InvalidArgument(f"{path}.after[{j}]", f"unknown task {shown(dep)}; name a task of this job")
    for key in task.requires:
        if not key:
            raise InvalidArgument(f"{path}.requires", "label names must not be empty")


def _check_args(path: str, task: TaskSpec) -> None:
    if task.command:
        raise InvalidArgument(f"{path}.args_json", "args are for python tasks; put command arguments in command")
    check_json(f"{path}.args_json", task.args_json)
    args = _json(f"{path}.args_json", task.args_json)
    if not isinstance(args, (dict, list)):
        raise InvalidArgument(f"{path}.args_json", "must be a JSON object (keyword args) or array (positional args)")


def _expand(path: str, task: TaskSpec) -> list[tuple[str, TaskSpec]]:
    """The template's tasks; `_count` checked the template's shape and size before."""
    if not (task.matrix or task.items_json or task.chunk_size or task.after or task.slurm):
        return [(task.name, task)]  # one task as it is (most): no copy per task
    base = replace(task, matrix=(), items_json="", chunk_size=0, after=())
    if task.slurm and task.slurm.array:
        return expand_array(path, task, base)
    if task.matrix:
        return _expand_matrix(path, task, base)
    if task.items_json:
        return _expand_chunks(path, task, base)
    return [(task.name, base)]


def _json(path: str, text: str) -> object:
    """Parse JSON whose size and depth were checked (check_json); RecursionError is a backstop."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(path, f"not valid JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise InvalidArgument(path, "nests arrays and objects too deeply") from None


def _json_list(path: str, text: str) -> list:
    value = _json(path, text)
    if not isinstance(value, list) or not value:
        raise InvalidArgument(path, "must be a non-empty JSON array")
    return value


def _expand_matrix(path: str, task: TaskSpec, base: TaskSpec) -> list[tuple[str, TaskSpec]]:
    names, axes = [], []
    for k, (name, values_json) in enumerate(task.matrix):
        if len(name) > MAX_NAME or not PARAM_NAME.match(name):
            raise InvalidArgument(f"{path}.matrix[{k}].name", f"{shown(name)} is not an identifier (letters, digits, _)")
        if name in names:
            raise InvalidArgument(f"{path}.matrix[{k}].name", f"duplicate parameter {name!r}")
        values = _json_list(f"{path}.matrix[{k}].values_json", values_json)
        if any(isinstance(v, (dict, list)) for v in values):
            raise InvalidArgument(f"{path}.matrix[{k}].values_json", "values must be strings, numbers or booleans")
        names.append(name)
        axes.append(values)
    _check_name_length(path, task.name, names, axes)
    _require_object_args(path, task)
    out = []
    for combo in itertools.product(*axes):
        params = dict(zip(names, combo))
        label = ",".join(f"{k}={_text(v)}" for k, v in params.items())
        out.append((f"{task.name}[{label}]", _substitute(base, params, extra_kwargs=params)))
    return out


def _check_name_length(path: str, group: str, names: list[str], axes: list[list]) -> None:
    """The longest task name the sweep makes (`group[a=..,b=..]`, from each parameter's longest
    value) must fit what a task name may be."""
    longest = [max((_text(v) for v in values), key=len) for values in axes]
    size = len(group) + 2 + sum(len(n) + 1 + len(v) for n, v in zip(names, longest)) + len(names) - 1
    if size > MAX_TASK_NAME:
        k = max(range(len(names)), key=lambda i: len(longest[i]))
        raise InvalidArgument(f"{path}.matrix[{k}].values_json", f"the value {shown(longest[k])} makes task names of "
                              f"{size} characters (group[param=value,...]); at most {MAX_TASK_NAME}: use shorter values")


def _expand_chunks(path: str, task: TaskSpec, base: TaskSpec) -> list[tuple[str, TaskSpec]]:
    items = _json_list(f"{path}.items_json", task.items_json)
    _require_object_args(path, task)
    out = []
    for n, start in enumerate(range(0, len(items), task.chunk_size)):
        chunk = items[start:start + task.chunk_size]
        spec = _substitute(base, {"chunk": n}, extra_kwargs={"items": chunk}, items=chunk)
        out.append((f"{task.name}[{n}]", spec))
    return out


def _require_object_args(path: str, task: TaskSpec) -> None:
    if task.python and task.args_json and not isinstance(json.loads(task.args_json), dict):
        raise InvalidArgument(f"{path}.args_json", "sweeps and chunks pass keyword arguments; use a JSON object")


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(text: str, params: dict[str, object]) -> str:
    return PLACEHOLDER.sub(lambda m: _text(params[m.group(1)]) if m.group(1) in params else m.group(0), text)


def _substitute(base: TaskSpec, params: dict, *, extra_kwargs: dict, items: list | None = None) -> TaskSpec:
    """Fill `{param}` placeholders; python tasks also get the values as keyword args."""
    command: list[str] = []
    for arg in base.command:
        if items is not None and arg == "{items}":
            command.extend(_text(v) for v in items)
        else:
            command.append(_fill(arg, params))
    env = {k: _fill(v, params) for k, v in base.env.items()}
    if items is not None and base.command:
        env["JOBPLANE_ITEMS"] = json.dumps(items)
    args_json = base.args_json
    if base.python:
        kwargs = json.loads(base.args_json) if base.args_json else {}
        kwargs = {k: _fill(v, params) if isinstance(v, str) else v for k, v in kwargs.items()}
        kwargs.update(extra_kwargs)
        args_json = json.dumps(kwargs)
    return replace(base, command=tuple(command), env=env, cwd=_fill(base.cwd, params), args_json=args_json)


def _check_unique(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidArgument("spec.tasks", f"two tasks expand to the name {name!r}; rename one of them")
        seen.add(name)


def _check_acyclic(tasks: tuple[TaskSpec, ...]) -> None:
    after = {t.name: t.after for t in tasks}
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in after[name]:
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [name, dep]
                raise InvalidArgument("spec.tasks", f"dependency cycle {' -> '.join(cycle)}; remove one of these after entries")
            if dep not in state:
                visit(dep, path + [dep])
        state[name] = 2

    try:
        for task in tasks:
            if task.name not in state:
                visit(task.name, [task.name])
    finally:
        del visit  # a recursive closure is a reference cycle: freed now, not by a later full gc pass
