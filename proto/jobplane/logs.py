"""How jobplane-server and jobplane-agent write their logs: `--log-format text` (the default,
for people) or `json` (one object per line, for log collectors).

A JSON line has `time` (UTC, ISO 8601), `level`, `logger` and `message`, `exception` when one
was logged, and every field passed as `extra=` (`job_id`, `task_id`, `attempt`, `provider_id`,
`event_id`, ...) or set for the whole process (the agent's `provider_id`):

    {"time": "2026-12-04T23:41:07.120Z", "level": "INFO", "logger": "jobplane.server.core",
     "message": "task 12 attempt 1 FAILURE on a: exited with code 2", "job_id": "3",
     "task_id": "12", "attempt": 1, "provider_id": "a", "event_id": 57}

Library code logs ids as fields with `extra=ids(...)`; only the entry points configure logging.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The attributes every LogRecord has; any other is a field the caller passed with extra=.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def ids(*, job_id: Any = None, task_id: Any = None, attempt: int | None = None, provider_id: str | None = None,
        **more: Any) -> dict[str, Any]:
    """The `extra=` of a log call: the ids that are known (None and "" left out); ids as strings,
    as the API shows them."""
    known = {"job_id": job_id, "task_id": task_id, "attempt": attempt, "provider_id": provider_id, **more}
    return {key: (str(value) if key.endswith("_id") and key != "event_id" else value)
            for key, value in known.items() if value is not None and value != "" and value != 0}


def attempt_ids(key: tuple[str, int]) -> dict[str, Any]:
    """`ids` of an attempt known by its (task id, attempt number), as the agent keys them."""
    return ids(task_id=key[0], attempt=key[1])


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; `fields` are added to every record."""

    def __init__(self, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self._fields,
        }
        document.update((key, value) for key, value in vars(record).items() if key not in _STANDARD)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, default=str, separators=(",", ":"))


def configure(level: str | int, log_format: str = "text", *, fields: Mapping[str, Any] | None = None) -> None:
    """Log to stderr at `level` in `log_format` ("text" or "json"); `fields` go on every JSON line."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(fields) if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
