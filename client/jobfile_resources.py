"""The job-file keys of resource requests, on a task and (as defaults for its tasks) on the job:

    cpus = 4                       # CPUs, fractions allowed (0.5)
    memory = "8GiB"                # bytes, or a size: "512MiB", "8GiB", "2G"
    gpus = 1
    resources = { license_x = 2 }  # custom countable resources an agent advertises (--resource)

A task's own keys win over the job's, resource by resource. The client checks each value as far
as it can (a size's unit, a negative count); the server checks them again. A mixin of jobfile's
converter, so its problems are collected and located like every other key's."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jobplane.client.locate import FieldPath
from jobplane.resources import check_custom_name, parse_memory

TASK_KEYS: dict[str, tuple[str | None, str]] = {
    "cpus": ("resources.cpus", "cpu_count"),
    "memory": ("resources.memory", "memory_size"),
    "gpus": ("resources.gpus", "gpu_count"),
    "resources": ("resources.custom", "resource_counts"),
}
JOB_KEYS: dict[str, tuple[str | None, str]] = {
    key: ("task_" + proto, method) for key, (proto, method) in TASK_KEYS.items()}
# Sub-messages whose fields are the keys of the table around them (`cpus`, not `resources.cpus`).
FLATTENED = {"resources", "task_resources"}


class ResourceKeys:
    """Converters of the resource keys. The converter they are mixed into provides `integer`,
    `_kind`, `_table` and `_fail`."""

    def cpu_count(self, value: Any, path: FieldPath) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self._fail(path, f"expected a number of CPUs such as 0.5, 1 or 4; got {self._kind(value)}")
        if value < 0:
            self._fail(path, f"{value:g} is negative; ask for a number of CPUs such as 0.5, 1 or 4 (or leave it out)")
        return float(value)

    def memory_size(self, value: Any, path: FieldPath) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self._fail(path, f'expected a size such as "8GiB" or a number of bytes; got {self._kind(value)}')
        try:
            parse_memory(value)
        except ValueError as exc:
            self._fail(path, str(exc))
        return str(value) if isinstance(value, str) else str(int(value))

    def gpu_count(self, value: Any, path: FieldPath) -> int:
        count = self.integer(value, path)
        if count < 0:
            self._fail(path, f"{count} is negative; ask for a whole number of GPUs such as 1 (or leave it out)")
        return count

    def resource_counts(self, value: Any, path: FieldPath) -> dict[str, int]:
        if not isinstance(value, Mapping):
            self._fail(path, f"expected {self._table} of counts, e.g. {{ license_x = 2 }}; got {self._kind(value)}")
        counts = {}
        for name, count in value.items():
            why = check_custom_name(str(name))
            if why:
                self._fail(path + (name,), why)
            counts[str(name)] = self.integer(count, path + (name,))
            if counts[str(name)] < 1:
                self._fail(path + (name,), f"{count} is not a count; ask for at least 1 (or leave {name} out)")
        return counts
