"""The job-file key `notify`: where a job's outcome goes (README: "Notifications").

    notify = [{ on = ["FAILURE", "LATE_TO_START"], webhook = "https://hooks.example.com/jobs" },
              { on = ["SUCCESS"], command = ["/usr/local/bin/page", "--quiet"] }]

Only the shape is checked here (a list of tables, known status names, one of webhook and
command); whether a URL or a program path is usable is the server's to check. A mixin of
jobfile's converter, so its problems are collected and located like every other key's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from jobplane.client.locate import FieldPath
from jobplane.v1 import job_pb2, status_pb2

JOB_KEYS: dict[str, tuple[str | None, str]] = {"notify": ("notify", "notify")}
NOTIFY_KEYS: dict[str, tuple[str | None, str]] = {
    "on": ("on", "notify_on"),
    "webhook": ("webhook", "string"),
    "command": ("command", "command"),
}
STATUSES = tuple(name.removeprefix("NORMALIZED_STATUS_") for name in status_pb2.NormalizedStatus.keys()
                 if name != "NORMALIZED_STATUS_UNSPECIFIED")
_EXAMPLE = '[{ on = ["FAILURE"], webhook = "https://hooks.example.com/jobs" }]'


class NotifyKeys:
    """Converters of `notify`. The converter they are mixed into provides `string`, `strings`,
    `_kind`, `_table`, `_fail` and `_keyed`."""

    def notify(self, value: Any, path: FieldPath) -> list[job_pb2.Notify]:
        if not isinstance(value, list):
            self._fail(path, f"expected a list of destinations, e.g. {_EXAMPLE}; got {self._kind(value)}")
        entries = []
        for index, entry in enumerate(value):
            at = path + (index,)
            if not isinstance(entry, Mapping):
                self._fail(at, f"expected {self._table} with on and webhook or command; got {self._kind(entry)}")
            if "on" not in entry:
                self._fail(at + ("on",), 'missing; name the statuses that trigger it, e.g. on = ["FAILURE"]')
            given = [key for key in ("webhook", "command") if key in entry]
            if len(given) != 1:
                self._fail(at, "set exactly one of webhook (a URL) and command (an argv list)"
                               + (f", not {' and '.join(given)}" if given else ""))
            entries.append(job_pb2.Notify(**self._keyed(entry, at, NOTIFY_KEYS)))
        return entries

    def notify_on(self, value: Any, path: FieldPath) -> list[int]:
        """Normalized status names (any case), as `jobplane jobs list` shows them."""
        names = self.strings(value, path)
        if not names:
            self._fail(path, 'is empty; name the statuses that trigger it, e.g. ["FAILURE", "LATE_TO_START"]')
        statuses = []
        for index, name in enumerate(names):
            word = name.strip().upper()
            if word not in STATUSES:
                self._fail(path + (index,), f"{name!r} is not a normalized status; use one of {', '.join(STATUSES)}")
            statuses.append(status_pb2.NormalizedStatus.Value(f"NORMALIZED_STATUS_{word}"))
        return statuses

    # Provided by the converter this is mixed into (jobfile._Converter).

    _table: str

    def string(self, value: Any, path: FieldPath) -> str:
        raise NotImplementedError

    def strings(self, value: Any, path: FieldPath) -> list[str]:
        raise NotImplementedError

    def _kind(self, value: Any) -> str:
        raise NotImplementedError

    def _fail(self, path: FieldPath, message: str) -> NoReturn:
        raise NotImplementedError

    def _keyed(self, table: Mapping[str, Any], path: FieldPath,
               keys: Mapping[str, tuple[str | None, str]]) -> dict[str, Any]:
        raise NotImplementedError
