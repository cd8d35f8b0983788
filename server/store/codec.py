"""JSON encoding of domain specs for the database."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, fields, is_dataclass

from jobplane.resources import Resources

from ..domain.model import ExternalSpec, JobSpec, Lateness, Notify, SlurmSpec, TaskSpec, Transient
from ..domain.signatures import parse_signature
from ..domain.timing import TimingRule
from ..domain.windows import Window


def dump_task_spec(spec: TaskSpec) -> bytes:
    return json.dumps(_task_dict(spec), separators=(",", ":")).encode()


class TaskSpecs:
    """dump_task_spec of the specs one batch stages, each spec object once: a task's row and its
    job's whole spec (job_spec) hold the same bytes, and most tasks are their template itself
    (extract._expand), so a submit serializes each task spec once, not twice."""

    def __init__(self) -> None:
        self._done: dict[int, tuple[TaskSpec, bytes]] = {}

    def __call__(self, spec: TaskSpec) -> bytes:
        done = self._done.get(id(spec))
        if done is None or done[0] is not spec:
            kind = spec.kind  # a renamed copy: its kind's bytes under its own name
            data = dump_task_spec(spec) if kind is spec else _renamed_bytes(self(kind), kind.name, spec.name)
            done = self._done[id(spec)] = (spec, data)
        return done[1]


def _renamed_bytes(data: bytes, old: str, new: str) -> bytes:
    """dump_task_spec's bytes of a spec named `old`, for its copy named `new` (the name comes
    first: _task_dict)."""
    head = b'{"name":' + json.dumps(old).encode()
    if not data.startswith(head):
        raise ValueError(f"not the encoding of a task spec named {old!r}")
    return b'{"name":' + json.dumps(new).encode() + data[len(head):]


def _task_dict(spec: TaskSpec) -> dict:
    """The fields that differ from their defaults, and the name: most tasks set two or
    three of twenty, and a row per task is written at thousands a second."""
    d = {"name": spec.name}
    for name, default in _TASK_DEFAULTS.items():
        value = getattr(spec, name)
        if value is not default and value != default:  # most are the default object itself
            d[name] = _plain(name, value)
    return d


def _plain(name: str, value):
    if name == "prerequisites":
        return [as_plain(s) for s in value]
    return asdict(value) if is_dataclass(value) else value


def as_plain(signature) -> dict:
    """A prerequisite as a plain dict: a Signature's own, or the raw dict not yet validated."""
    return signature.as_dict() if hasattr(signature, "as_dict") else dict(signature)


def load_task_spec(data: bytes | memoryview | str) -> TaskSpec:
    return _task(json.loads(bytes(data) if not isinstance(data, str) else data))


def dump_job_spec(spec: JobSpec) -> bytes:
    """The whole spec, tasks included (job_spec's; the job row keeps dump_job_head's)."""
    return with_tasks(dump_job_head(spec), spec, dump_task_spec)


def dump_job_head(spec: JobSpec) -> bytes:
    """The spec without its tasks (the job row's copy)."""
    d = {f.name: getattr(spec, f.name) for f in fields(JobSpec) if f.name != "tasks"}
    d = {k: asdict(v) if is_dataclass(v) else [asdict(r) for r in v] if k in ("continuation_rules", "notify") else v
         for k, v in d.items()}
    return json.dumps(d, separators=(",", ":")).encode()


def with_tasks(head: bytes, spec: JobSpec, task_bytes: Callable[[TaskSpec], bytes]) -> bytes:
    """The whole spec from its head (dump_job_head) and its tasks' serialized
    specs: the bytes json.dumps makes of the whole, tasks last, without encoding a task again."""
    return head[:-1] + b',"tasks":[' + b",".join(task_bytes(t) for t in spec.tasks) + b"]}"


def load_job_spec(data: bytes | memoryview | str, tasks: bool = True) -> JobSpec:
    """`tasks`: False leaves the tasks out (a listing: decoding them is most of the cost)."""
    d = json.loads(bytes(data) if not isinstance(data, str) else data)
    rules = tuple(TimingRule(**r) for r in d.get("continuation_rules", ()))
    transient = d.get("transient")
    if transient is not None:
        transient = Transient(tuple(transient["exit_codes"]), tuple(transient["raw_statuses"]),
                              transient["max_reruns"], transient["backoff_seconds"])
    return JobSpec(d["name"], d["priority"], d["labels"], _tasks(d.get("tasks", ())) if tasks else (),
                   d.get("wait_for_providers", False), d.get("continuation_priority"), rules,
                   Lateness(**d.get("lateness", {})), d.get("job_class", ""), Window(**d.get("window", {})),
                   transient, tuple(d.get("conditions", ())), d.get("locks", {}), d.get("on_condition_lost", ""),
                   tuple(notify_from_dict(n) for n in d.get("notify", ())),
                   load_resources(d.get("task_resources")) or Resources())


def notify_from_dict(d: dict) -> Notify:
    return Notify(tuple(d["on"]), d.get("webhook", ""), tuple(d.get("command", ())))


def _tasks(dicts: list[dict]) -> tuple[TaskSpec, ...]:
    """A job's task specs. Most tasks of a job differ only by name (copies of one template,
    extract._expand): the first of each kind is decoded, the others are that one renamed."""
    out, kinds = [], {}
    for d in dicts:
        try:
            key = tuple((k, _key(v)) for k, v in d.items() if k != "name")
            first = kinds.get(key)
        except TypeError:  # a nested list or dict among the values (matrix, ...): decoded on its own
            out.append(_task(d))
            continue
        if first is None:
            first = kinds[key] = _task(d)
            out.append(first)
        else:
            out.append(first.renamed(d["name"]))
    return tuple(out)


def _key(value):
    """A decoded JSON value as a hashable key: a list or a flat dict as a tuple (TypeError for
    one that nests them: its task is decoded on its own)."""
    if type(value) is list:
        return tuple(value)
    if type(value) is dict:
        return ("{}", *value.items())
    return value


def _task(d: dict) -> TaskSpec:
    d = dict(d)  # rows written before the compact form name every field; both load alike
    d["command"] = tuple(d.get("command", ()))
    d["after"] = tuple(d.get("after", ()))
    d["matrix"] = tuple(tuple(m) for m in d.get("matrix", ()))
    d["retry_on"] = tuple(d.get("retry_on", ()))
    d["prerequisites"] = tuple(parse_signature("stored", s) for s in d.get("prerequisites", ()))
    external = d.get("external")
    d["external"] = ExternalSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in external.items()}) \
        if external else None
    d["lateness"] = Lateness(**d.get("lateness", {}))
    slurm = d.get("slurm")
    d["slurm"] = SlurmSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in slurm.items()}) if slurm else None
    d["resources"] = load_resources(d.get("resources")) or Resources()
    return TaskSpec(**d)


def dump_resources(r: Resources | None) -> str:
    """A provider's capacity (None: it advertised nothing) as stored."""
    return "null" if r is None else json.dumps(asdict(r), separators=(",", ":"))


def load_resources(d: dict | str | None) -> Resources | None:
    """Resources as dump_resources (or asdict) wrote them; None stays None."""
    if isinstance(d, str):
        d = json.loads(d)
    if d is None:
        return None
    return Resources(d.get("cpus", 0.0), d.get("memory", 0), d.get("gpus", 0),
                     tuple((k, v) for k, v in d.get("custom", ())))


_TASK_DEFAULTS = {f.name: getattr(TaskSpec(name=""), f.name) for f in fields(TaskSpec) if f.name != "name"}
