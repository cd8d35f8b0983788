"""Job-file keys of Slurm tasks: `environment = "slurm"` and the `slurm` table.

    [[tasks]]
    name = "simulate"
    environment = "slurm"
    slurm = { partition = "debug", time_limit = "00:10:00", cpus = 2, mem = "1G", script = "run.sh", array = "1-8" }

Only the shape is checked here (types, known keys, a script or a command line); the values
(a time limit Slurm reads, array syntax, options jobplane sets itself) are the server's to
check. A mixin of jobfile's converter, so its problems are collected and located like every
other key's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobplane.client.locate import FieldPath
from jobplane.v1 import job_pb2

# `slurm` table key -> (SlurmSpec field, converter method); the file and the contract use one name.
SLURM_KEYS: dict[str, tuple[str | None, str]] = {
    "script": ("script", "string"),
    "args": ("args", "command"),
    "wrap": ("wrap", "string"),
    "partition": ("partition", "string"),
    "time_limit": ("time_limit", "slurm_text"),
    "cpus": ("cpus", "integer"),
    "mem": ("mem", "slurm_text"),
    "array": ("array", "slurm_array"),
    "account": ("account", "string"),
    "qos": ("qos", "string"),
    "extra_args": ("extra_args", "command"),
}
# environment -> the task key that says how it runs.
ENVIRONMENTS = {"process": "command", "python": "python", "external": "external", "slurm": "slurm"}
_EXAMPLE = '{ script = "run.sh", partition = "debug", time_limit = "00:10:00" }'


class SlurmKeys:
    """Converters of the keys above. The converter they are mixed into provides `string`,
    `integer`, `command`, `_kind`, `_table`, `_fail`, `_report` and `_keyed`."""

    def slurm(self, value: Any, path: FieldPath) -> job_pb2.SlurmSpec:
        if not isinstance(value, Mapping):
            self._fail(path, f"expected {self._table} such as {_EXAMPLE}; got {self._kind(value)}")
        fields = self._keyed(value, path, SLURM_KEYS)
        given = [key for key in ("script", "wrap") if key in value]
        if len(given) != 1:
            what = "set only one of script and wrap" if given else "missing script or wrap"
            self._fail(path, f'{what}; add script = "run.sh" (a batch script) or wrap = "python sim.py" '
                             "(a command line)")
        return job_pb2.SlurmSpec(**fields)

    def slurm_text(self, value: Any, path: FieldPath) -> str:
        """A string; a whole number (minutes of a time limit, megabytes of memory) as its text."""
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.string(value, path)

    def slurm_array(self, value: Any, path: FieldPath) -> str:
        """Array indexes: Slurm's syntax ("1-8", "1,3,5", "0-15:4") or a list of whole numbers."""
        if isinstance(value, list):
            if not value or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
                self._fail(path, f"expected a list of whole numbers or a string such as \"1-8\"; got "
                                 f"{self._kind(value)} of other values")
            return ",".join(str(i) for i in value)
        return self.slurm_text(value, path)

    def environment(self, value: Any, path: FieldPath) -> dict[str, Any]:
        """Checked against the task's other keys by jobplane's converter; nothing to send."""
        text = self.string(value, path)
        if text not in ENVIRONMENTS:
            self._fail(path, f"unknown environment {text!r}; expected one of {', '.join(ENVIRONMENTS)}")
        return {}


def environment_problem(task: Mapping[str, Any]) -> tuple[str, str] | None:
    """(key, message) if the task's `environment` disagrees with how it says it runs."""
    environment = task.get("environment")
    key = ENVIRONMENTS.get(environment) if isinstance(environment, str) else None
    if key is None or key in task:
        return None
    if key == "slurm":
        return "slurm", f'missing; environment = "slurm" needs slurm = {_EXAMPLE}'
    return "environment", f'is "{environment}", but the task sets no {key}'
