"""JSON encoding of domain specs for the database."""

from __future__ import annotations

import json
from dataclasses import asdict

from ..domain.model import JobSpec, TaskSpec
from ..domain.timing import TimingRule


def dump_task_spec(spec: TaskSpec) -> bytes:
    return json.dumps(asdict(spec), separators=(",", ":")).encode()


def load_task_spec(data: bytes | memoryview | str) -> TaskSpec:
    return _task(json.loads(bytes(data) if not isinstance(data, str) else data))


def dump_job_spec(spec: JobSpec) -> bytes:
    return json.dumps(asdict(spec), separators=(",", ":")).encode()


def load_job_spec(data: bytes | memoryview | str) -> JobSpec:
    d = json.loads(bytes(data) if not isinstance(data, str) else data)
    rules = tuple(TimingRule(**r) for r in d.get("continuation_rules", ()))
    return JobSpec(d["name"], d["priority"], d["labels"], tuple(_task(t) for t in d["tasks"]),
                   d.get("wait_for_providers", False), d.get("continuation_priority"), rules)


def _task(d: dict) -> TaskSpec:
    d = dict(d)
    d["command"] = tuple(d["command"])
    d["after"] = tuple(d["after"])
    d["matrix"] = tuple(tuple(m) for m in d["matrix"])
    d["retry_on"] = tuple(d.get("retry_on", ()))
    return TaskSpec(**d)
