"""Job-file keys that make a job recurring: `schedule` (a cron expression), `time_zone`,
`overlap` and `catch_up`. A file with `schedule` describes a schedule whose runs are the job
the rest of the file describes; `jobplane submit` creates the schedule.

Only their shape is checked here; the cron expression and the zone are the server's to check
(their problems come back naming `schedule.cron` or `schedule.time_zone` and are located at the
key's line here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobplane.client.errors import FileProblem
from jobplane.client.locate import FieldPath, LineIndex, server_field
from jobplane.v1 import schedule_pb2

KEYS = ("schedule", "time_zone", "overlap", "catch_up")
OVERLAPS = {"skip": schedule_pb2.OVERLAP_SKIP, "queue": schedule_pb2.OVERLAP_QUEUE,
            "allow": schedule_pb2.OVERLAP_ALLOW}
# Server field -> the file key it came from.
_FILE_KEYS = {"schedule.cron": "schedule", "schedule.time_zone": "time_zone", "schedule.overlap": "overlap",
              "schedule.catch_up": "catch_up"}


def split_recurring(document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the job's keys, the recurring keys) of a document."""
    job = {k: v for k, v in document.items() if k not in KEYS}
    return job, {k: v for k, v in document.items() if k in KEYS}


def recurring_problems(keys: Mapping[str, Any], lines: LineIndex, name: str | None) -> list[FileProblem]:
    """What is wrong with the shape of the recurring keys (nothing: [])."""
    problems = []

    def problem(key: str, message: str) -> None:
        problems.append(FileProblem(name, lines.line_of((key,)) or 1, key, message))

    if keys and "schedule" not in keys:
        key = sorted(keys)[0]
        problem(key, "only means something with `schedule`; add schedule = \"0 2 * * *\" (02:00 daily) "
                     "or remove it")
    if "schedule" in keys and not isinstance(keys["schedule"], str):
        problem("schedule", "expected a cron expression as a string, e.g. \"0 2 * * *\"")
    if "time_zone" in keys and not isinstance(keys["time_zone"], str):
        problem("time_zone", "expected an IANA time zone name as a string, e.g. \"Europe/Berlin\"")
    if "overlap" in keys and keys["overlap"] not in OVERLAPS:
        problem("overlap", f"expected one of \"skip\", \"queue\", \"allow\"; got {keys['overlap']!r}")
    if "catch_up" in keys and not isinstance(keys["catch_up"], bool):
        problem("catch_up", "expected true or false")
    return problems


def schedule_message(keys: Mapping[str, Any], job) -> schedule_pb2.Schedule | None:
    """The Schedule a file's recurring keys make (None: the file has none), with its job spec."""
    if "schedule" not in keys:
        return None
    return schedule_pb2.Schedule(cron=keys["schedule"], time_zone=keys.get("time_zone", ""),
                                 overlap=OVERLAPS.get(keys.get("overlap", "skip")),
                                 catch_up=keys.get("catch_up", False), job=job)


def locate_recurring(message: str, lines: LineIndex, name: str | None) -> FileProblem | None:
    """A server message about a recurring key, at that key's line; None for any other message."""
    found = server_field(message)
    if found is None:
        return None
    path: FieldPath = found[0]
    dotted = ".".join(str(p) for p in path[:2])
    key = _FILE_KEYS.get(dotted)
    if key is None:
        return None
    return FileProblem(name, lines.line_of((key,)) or 1, key, found[1])


__all__ = ["KEYS", "locate_recurring", "recurring_problems", "schedule_message", "split_recurring"]
