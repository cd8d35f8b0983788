"""How the CLI shows things: tables, key/value blocks, JSON, times, statuses and event lines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

from jobplane.client import results
from jobplane.resources import Resources, describe, format_memory, parse_memory
from jobplane.v1 import event_pb2, job_pb2, provider_pb2, status_pb2, task_pb2

NONE = "-"


def message_dict(message: Message) -> dict[str, Any]:
    """The JSON form of a message as people read it: the .proto field names; enums by their
    short names, as the tables show them (`SUCCESS`, not `NORMALIZED_STATUS_SUCCESS`; unset:
    null); fields holding JSON text as that JSON, named without `_json` (`checkpoint_json:
    "{\"i\": 5}"` shows as `checkpoint: {"i": 5}`); every field present, zero or not, but in a
    spec only the fields that were set; deprecated fields left out (the server no longer fills
    them in)."""
    return _readable(message, _proto_json(message, every_field=True))


def _proto_json(message: Message, *, every_field: bool) -> dict[str, Any]:
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=every_field,
        unquote_int64_if_possible=True,
    )


def _readable(message: Message, document: dict[str, Any]) -> dict[str, Any]:
    renamed: dict[str, str] = {}
    for field in message.DESCRIPTOR.fields:
        name = field.name
        if name not in document:
            continue
        if field.GetOptions().deprecated:
            del document[name]
        elif field.enum_type is not None:
            value = getattr(message, name)
            enum = field.enum_type
            document[name] = [_enum_name(enum, v) for v in value] if field.is_repeated else _enum_name(enum, value)
        elif name.endswith("_json") and field.type == field.TYPE_STRING and not field.is_repeated:
            renamed[name] = _unsuffixed(message, name)
            document[name] = _parsed(document[name])
        elif _is_ours(field):
            _readable_field(message, field, document)
    # In place, in the order of the .proto (json_format puts the fields that were set first).
    items = [(renamed.get(field.name, field.name), document[field.name])
             for field in message.DESCRIPTOR.fields if field.name in document]
    document.clear()
    document.update(items)
    return document


def _readable_field(message: Message, field: Any, document: dict[str, Any]) -> None:
    value = getattr(message, field.name)
    if field.message_type.name.endswith("Spec") and not field.is_repeated:
        # A spec shows what its author wrote: only the fields that were set.
        document[field.name] = _proto_json(value, every_field=False)
    items = zip(value, document[field.name]) if field.is_repeated else [(value, document[field.name])]
    for item, sub in items:
        _readable(item, sub)


def _is_ours(field: Any) -> bool:
    """A field holding jobplane.v1 messages (not a map, not a well-known type's JSON form)."""
    kind = field.message_type
    return kind is not None and not kind.GetOptions().map_entry and kind.full_name.startswith("jobplane.")


def _enum_name(enum: Any, value: int) -> str | None:
    return results.short_name(enum, value) or None


def _unsuffixed(message: Message, name: str) -> str:
    """`checkpoint_json` -> `checkpoint`, unless the message has a field of that name too."""
    short = name.removesuffix("_json")
    return name if short in message.DESCRIPTOR.fields_by_name else short


def _parsed(text: str) -> Any:
    """JSON text as the value it holds; "" (nothing) as null; text that is not JSON as it is."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def json_document(value: Message | Sequence[Message]) -> str:
    """One JSON document: an object for a message, an array for a list of them."""
    if isinstance(value, Message):
        return json.dumps(message_dict(value), indent=2)
    return json.dumps([message_dict(item) for item in value], indent=2)


def json_line(message: Message) -> str:
    """One line of a JSON-lines stream."""
    return json.dumps(message_dict(message), separators=(",", ":"))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces, headers in capitals."""
    cells = [[str(cell) for cell in headers]] + [[_cell(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """A key/value block, as `jobs get` and friends print it."""
    pairs = list(pairs)
    width = max(len(key) for key, _ in pairs)
    return "\n".join(f"{key.ljust(width)}  {_cell(value)}" for key, value in pairs)


def _cell(value: Any) -> str:
    return NONE if value is None or value == "" else str(value).replace("\n", " ")


# Enums: users see short names (RUNNING, not NORMALIZED_STATUS_RUNNING).


def short_name(enum: Any, value: int) -> str:
    """`short_name(job_pb2.JobState, 2)` -> "RUNNING"; the zero value shows as "-"."""
    return results.short_name(enum, value) or NONE


def status(value: int) -> str:
    return short_name(status_pb2.NormalizedStatus, value)


def job_state(value: int) -> str:
    return short_name(job_pb2.JobState, value)


def task_state(value: int) -> str:
    return short_name(task_pb2.TaskState, value)


def provider_state(value: int) -> str:
    return short_name(provider_pb2.ProviderState, value)


# Times: absolute ones in local time, recent ones as ages.


def _is_set(stamp: timestamp_pb2.Timestamp) -> bool:
    return stamp.seconds != 0 or stamp.nanos != 0


def _local(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=timezone.utc).astimezone()


def clock(stamp: timestamp_pb2.Timestamp) -> str:
    """HH:MM:SS in local time, for event lines."""
    return _local(stamp).strftime("%H:%M:%S") if _is_set(stamp) else NONE


def moment(stamp: timestamp_pb2.Timestamp, *, now: float | None = None) -> str:
    """`2026-11-21 09:17:05 (3s ago)` in local time (`(in 9d)` if still ahead), or "-" when unset."""
    if not _is_set(stamp):
        return NONE
    return f"{_local(stamp):%Y-%m-%d %H:%M:%S} ({until(stamp, now=now)})"


def age(stamp: timestamp_pb2.Timestamp, *, now: float | None = None) -> str:
    """How long ago: `4s ago`, `3m ago`, `2h ago`, `5d ago`; "-" when unset."""
    if not _is_set(stamp):
        return NONE
    seconds = max(0.0, (time.time() if now is None else now) - stamp.ToNanoseconds() / 1e9)
    return f"{duration(seconds)} ago"


def until(stamp: timestamp_pb2.Timestamp, *, now: float | None = None) -> str:
    """How long from now: `in 59m`, or as `age` once past; "-" when unset."""
    if not _is_set(stamp):
        return NONE
    seconds = stamp.ToNanoseconds() / 1e9 - (time.time() if now is None else now)
    return f"in {duration(round(seconds))}" if seconds > 0 else age(stamp, now=now)


def duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:.1f}s" if seconds < 10 else f"{int(seconds)}s"


def span(start: timestamp_pb2.Timestamp, end: timestamp_pb2.Timestamp) -> str:
    """How long from start to end (or until now while running)."""
    if not _is_set(start):
        return NONE
    stop = end.ToNanoseconds() / 1e9 if _is_set(end) else time.time()
    return duration(max(0.0, stop - start.ToNanoseconds() / 1e9))


def size(number: float) -> str:
    """A byte count in binary units: `512 B`, `1.5 GiB`."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if number < 1024:
            return f"{number:.0f} B" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return f"{number:.1f} TiB"


def count(number: int, noun: str) -> str:
    """`1 task`, `4 tasks`."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def labels(values: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(values.items())) or NONE


def exit_code(message: Message) -> str:
    """The optional exit_code of a Task or Attempt, "-" when it has none."""
    return str(message.exit_code) if message.HasField("exit_code") else NONE


# Event lines: `#42  12:00:01  task build[0]  RUNNING  on local-1  exited with code 2`; the
# event id first, for `watch --from 42` to go on after it.


class EventLines:
    """Formats a stream of events as aligned lines; the id and subject columns widen when they must."""

    def __init__(self, *, with_job: bool = True, width: int = 20) -> None:
        self._with_job = with_job  # name the job on task lines (watching all jobs)
        self._width = width
        self._id_width = 4

    def __call__(self, event: event_pb2.Event) -> str:
        subject, details = _event_subject(event, self._with_job)
        self._width = max(self._width, len(subject))
        number = f"#{event.id}"
        self._id_width = max(self._id_width, len(number))
        return "  ".join([number.ljust(self._id_width), clock(event.time), subject.ljust(self._width),
                          event_status(event).ljust(8), *details]).rstrip()


def event_status(event: event_pb2.Event) -> str:
    """The normalized status an event reports (its raw one when it has none)."""
    return status(event.status) if event.status else event.raw_status or NONE


def _event_subject(event: event_pb2.Event, with_job: bool) -> tuple[str, list[str]]:
    message = [event.message] if event.message else []
    kind = event.kind
    if kind == event_pb2.EVENT_KIND_JOB:
        return f"job {event.job_id}", message
    if kind == event_pb2.EVENT_KIND_TASK:
        name = event.task_name or f"#{event.task_id}"
        details = [f"on {event.provider_id}"] if event.provider_id else []
        if event.attempt > 1:
            details.append(f"attempt {event.attempt}")
        return (f"job {event.job_id} task {name}" if with_job else f"task {name}"), details + message
    if kind == event_pb2.EVENT_KIND_PROVIDER:
        return f"provider {event.provider_id}", message
    if kind == event_pb2.EVENT_KIND_CONTINUATION:
        return "continuation", ([f"from {event.provider_id}"] if event.provider_id else []) + message
    if kind == event_pb2.EVENT_KIND_POLICY:
        return "policy", message
    if kind == event_pb2.EVENT_KIND_SCHEDULE:
        return f"schedule {event.raw.get('schedule_id', '')}".rstrip(), message
    return "event", message


def resource_request(r: job_pb2.ResourceRequest) -> str | None:
    """A task's requests, e.g. `4 cpus, 8 GiB memory, 2 license_x`; None when it asks for none."""
    memory = parse_memory(r.memory) if r.memory.strip() else 0
    text = describe(Resources(r.cpus, memory, r.gpus, tuple(sorted(r.custom.items()))))
    return None if text == "-" else text


def slots_used(provider: provider_pb2.Provider) -> str:
    """Its slots in use, e.g. `8/8`, and the quick tasks queued at it beyond them: `8/8 +12 ahead`."""
    used = f"{provider.slots_in_use}/{provider.slots}"
    return f"{used} +{provider.queued_ahead} ahead" if provider.queued_ahead else used


def capacity_use(provider: provider_pb2.Provider) -> str:
    """What of its capacity is in use, per resource: `cpus 4/8, memory 2 GiB/16 GiB, license_x 1/2`;
    for an agent that advertised none, says so (cpus, memory and gpus unlimited, no custom ones)."""
    if not provider.HasField("capacity"):
        return "not advertised (cpus, memory, gpus unlimited)"
    c, u = provider.capacity, provider.in_use
    parts = [f"cpus {u.cpus:g}/{c.cpus:g}", f"memory {format_memory(u.memory_bytes)}/{format_memory(c.memory_bytes)}",
             f"gpus {u.gpus}/{c.gpus}"]
    parts += [f"{name} {u.custom.get(name, 0)}/{count}" for name, count in sorted(c.custom.items())]
    return ", ".join(parts)
