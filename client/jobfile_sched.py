"""Job-file keys that say when, and beside what, a job may start: `class`, `run_window`,
`hold_until`, `give_up_after`, `transient`, `conditions`, `on_condition_lost` and `locks` (README:
"Conflicts and holds").

Only their shape is checked here (a window is HH:MM-HH:MM, a lock is read or write); what they
mean together (a give_up_after before hold_until, a condition's fact) is the server's to check.
The checks are a mixin of jobfile's converter, so their problems are collected and located
like every other key's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn

from jobplane.client.locate import FieldPath
from jobplane.v1 import job_pb2

# File key -> (JobSpec field, or None when the converter returns the fields; converter method).
JOB_KEYS: dict[str, tuple[str | None, str]] = {
    "class": ("job_class", "string"),
    "run_window": ("run_window", "run_window"),
    "hold_until": ("hold_until", "moment"),
    "give_up_after": ("give_up", "give_up_after"),
    "transient": ("transient", "transient"),
    "conditions": ("fact_conditions", "conditions"),
    "on_condition_lost": ("on_condition_lost", "condition_lost"),
    "locks": ("resource_locks", "locks"),
}
TRANSIENT_KEYS: dict[str, tuple[str | None, str]] = {
    "exit_codes": ("exit_codes", "exit_codes"),
    "raw_statuses": ("raw_statuses", "strings"),
    "max_reruns": ("max_reruns", "integer"),
    "backoff": ("backoff_seconds", "seconds"),
}
# Proto fields a server message may name whose file key the tables above do not give.
FILE_NAMES = {"give_up_after": "give_up_after", "give_up_after_seconds": "give_up_after"}
# Messages one file key gives whole (a server message naming a field inside names that key).
WHOLE = {"give_up": "give_up_after"}

LOCK_MODES = {"read": job_pb2.LOCK_MODE_READ, "write": job_pb2.LOCK_MODE_WRITE}
CONDITION_LOST = {"continue": job_pb2.CONDITION_LOST_ACTION_CONTINUE, "suspend": job_pb2.CONDITION_LOST_ACTION_SUSPEND,
                  "requeue": job_pb2.CONDITION_LOST_ACTION_REQUEUE}
_RUN_WINDOW = re.compile(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d")
_TRANSIENT_EXAMPLE = '{ exit_codes = [75], raw_statuses = ["DEADLOCK"], max_reruns = 3, backoff = 1.0 }'
_LOCKS_EXAMPLE = '{ orders = "read", ledger = "write" }'


class SchedulingKeys:
    """Converters of the keys above. The converter they are mixed into provides `string`,
    `moment`, `integer`, `_kind`, `_table`, `_fail` (raise a located problem) and `_keyed`
    (the fields of a sub-table described like TRANSIENT_KEYS)."""

    def run_window(self, value: Any, path: FieldPath) -> str:
        text = self.string(value, path).strip()
        if not _RUN_WINDOW.fullmatch(text):
            self._fail(path, f'expected a daily window "HH:MM-HH:MM" on a 24-hour clock, e.g. "22:00-04:00"; '
                             f"got {text!r}")
        if text[:5] == text[6:]:
            self._fail(path, "opens and closes at the same time; leave run_window out to start at any time")
        return text

    def give_up_after(self, value: Any, path: FieldPath) -> job_pb2.Deadline:
        """`give_up`: a time, or a number of seconds after submit."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value) or value < 0:
                self._fail(path, f"expected a number of seconds after submit (>= 0); got {value}")
            return job_pb2.Deadline(after_seconds=float(value))
        if isinstance(value, str) and not _is_iso_time(value):
            self._fail(path, f"expected a time like 2026-12-24T18:00:00Z or a number of seconds after submit "
                             f"like 7200; got {value!r}")
        if not isinstance(value, (str, datetime)):
            self._fail(path, "expected a date-time (e.g. 2026-12-24T18:00:00Z) or a number of seconds after "
                             f"submit; got {self._kind(value)}")
        return job_pb2.Deadline(time=self.moment(value, path))

    def transient(self, value: Any, path: FieldPath) -> job_pb2.TransientFailures:
        if not isinstance(value, Mapping):
            self._fail(path, f"expected {self._table} such as {_TRANSIENT_EXAMPLE}; got {self._kind(value)}")
        return job_pb2.TransientFailures(**self._keyed(value, path, TRANSIENT_KEYS))

    def exit_codes(self, value: Any, path: FieldPath) -> list[int]:
        if not isinstance(value, list):
            self._fail(path, f"expected a list of exit codes, e.g. [75]; got {self._kind(value)}")
        codes = []
        for index, item in enumerate(value):
            code = self.integer(item, path + (index,))
            if not 0 <= code <= 255:
                self._fail(path + (index,), f"{code} is not an exit code; use 0 to 255")
            codes.append(code)
        return codes

    def locks(self, value: Any, path: FieldPath) -> dict[str, int]:
        """resource -> "read" or "write" (any case), sent as its LockMode."""
        if not isinstance(value, Mapping):
            self._fail(path, f"expected {self._table} of resource = mode, e.g. {_LOCKS_EXAMPLE}; "
                             f"got {self._kind(value)}")
        modes = {}
        for resource, mode in value.items():
            if not isinstance(mode, str) or mode.strip().lower() not in LOCK_MODES:
                shown = repr(mode) if isinstance(mode, str) else self._kind(mode)
                self._fail(path + (resource,), f'expected "read" (shared with other readers) or "write" (alone); '
                                               f"got {shown}")
            modes[str(resource)] = LOCK_MODES[mode.strip().lower()]
        return modes

    def condition_lost(self, value: Any, path: FieldPath) -> int:
        """`on_condition_lost`: "continue", "suspend" or "requeue" (any case)."""
        if not isinstance(value, str) or value.strip().lower() not in CONDITION_LOST:
            shown = repr(value) if isinstance(value, str) else self._kind(value)
            self._fail(path, f'expected "continue", "suspend" (pause it in place) or "requeue" (run it again '
                             f"elsewhere from its checkpoint); got {shown}")
        return CONDITION_LOST[value.strip().lower()]

    # Provided by the converter this is mixed into (jobfile._Converter).

    _table: str

    def string(self, value: Any, path: FieldPath) -> str:
        raise NotImplementedError

    def integer(self, value: Any, path: FieldPath) -> int:
        raise NotImplementedError

    def moment(self, value: Any, path: FieldPath) -> Any:
        raise NotImplementedError

    def _kind(self, value: Any) -> str:
        raise NotImplementedError

    def _fail(self, path: FieldPath, message: str) -> NoReturn:
        raise NotImplementedError

    def _keyed(self, table: Mapping[str, Any], path: FieldPath,
               keys: Mapping[str, tuple[str | None, str]]) -> dict[str, Any]:
        raise NotImplementedError


def _is_iso_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
