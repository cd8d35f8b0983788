"""JSON encoding of domain specs for the database."""

from __future__ import annotations

import json
from dataclasses import asdict

from ..domain.model import JobSpec, TaskSpec


def dump_task_spec(spec: TaskSpec) -> bytes:
    return json.dumps(asdict(spec), separators=(",", ":")).encode()


def load_task_spec(data: bytes | memoryview | str) -> TaskSpec:
    return _task(json.loads(bytes(data) if not isinstance(data, str) else data))


def dump_job_spec(spec: JobSpec) -> bytes:
    return json.dumps(asdict(spec), separators=(",", ":")).encode()


def load_job_spec(data: bytes | memoryview | str) -> JobSpec:
    d = json.loads(bytes(data) if not isinstance(data, str) else data)
    return JobSpec(d["name"], d["priority"], d["labels"], tuple(_task(t) for t in d["tasks"]),
                   d.get("wait_for_providers", False))


def _task(d: dict) -> TaskSpec:
    d = dict(d)
    d["command"] = tuple(d["command"])
    d["after"] = tuple(d["after"])
    d["matrix"] = tuple(tuple(m) for m in d["matrix"])
    d["retry_on"] = tuple(d.get("retry_on", ()))
    return TaskSpec(**d)
