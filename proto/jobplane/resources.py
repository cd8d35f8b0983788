"""Resource amounts: what a task asks for (cpus, memory, gpus and custom countable resources
such as `license_x`) and what a provider offers; and packing one into the other.

This module sits in the root package because every part uses it: the client and the agent
parse "8GiB" with it, the server's domain packs requests into capacity with it (the server
never imports the agent or the client, nor they the server). Standard library only.

A provider whose agent advertised no capacity (an agent from before resources existed) has
no limit on cpus, memory and gpus and none of any custom resource: old agents take the work
they took before, and a task that needs a license goes only where one is advertised.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

DEFAULT_NAMES = ("cpus", "memory", "gpus")
# A custom resource's name as a job file and `--resource NAME=N` spell it.
CUSTOM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
MAX_CUSTOM = 32  # custom resources per request or per provider
MAX_AMOUNT = 2**53  # beyond this a float no longer counts units exactly

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20,
          "gi": 2**30, "gib": 2**30, "ti": 2**40, "tib": 2**40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")
MEMORY_HINT = 'write bytes or a size such as "512MiB", "8GiB" or "2G" (units B, K, M, G, T, Ki, Mi, Gi, Ti)'


@dataclass(frozen=True)
class Resources:
    """Amounts of each resource; 0 (or absent from `custom`) asks for, or offers, none.
    `custom` is sorted by name, so equal requests are equal (they group in the ready queue)."""

    cpus: float = 0.0
    memory: int = 0  # bytes
    gpus: int = 0
    custom: tuple[tuple[str, int], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.cpus or self.memory or self.gpus or self.custom)

    def amounts(self) -> dict[str, float]:
        """Each resource asked for (or offered) by name, zeros left out."""
        out = {name: getattr(self, name) for name in DEFAULT_NAMES if getattr(self, name)}
        return {**out, **dict(self.custom)}

    def plus(self, other: Resources) -> Resources:
        return from_amounts(_add(self.amounts(), other.amounts(), 1))

    def over(self, defaults: Resources) -> Resources:
        """These amounts, and for each resource these leave unset, the defaults' (a task's
        requests over its job's defaults)."""
        return from_amounts({**defaults.amounts(), **self.amounts()})


def from_amounts(amounts: dict[str, float]) -> Resources:
    """Resources from a name -> amount mapping (cpus, memory, gpus, else a custom resource)."""
    custom = tuple(sorted((k, int(v)) for k, v in amounts.items() if k not in DEFAULT_NAMES and v))
    return Resources(float(amounts.get("cpus", 0.0)), int(amounts.get("memory", 0)), int(amounts.get("gpus", 0)),
                     custom)


def _add(a: dict[str, float], b: dict[str, float], sign: int) -> dict[str, float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + sign * v
    return out


def total(requests) -> Resources:
    """The sum of some requests (what the tasks out at a provider hold)."""
    amounts: dict[str, float] = {}
    for r in requests:
        if r:
            amounts = _add(amounts, r.amounts(), 1)
    return from_amounts(amounts)


def free(capacity: Resources | None, used: Resources) -> dict[str, float]:
    """What is left of `capacity` with `used` taken (never below 0); default resources of a
    provider that advertised nothing are left out: they have no limit."""
    if capacity is None:
        return {}
    left = _add(_offered(capacity), used.amounts(), -1)
    return {k: max(0.0, v) for k, v in left.items()}


def _offered(capacity: Resources) -> dict[str, float]:
    """Every default resource (zeros included: an advertised 0 is a real 0) and each custom one."""
    return {"cpus": capacity.cpus, "memory": capacity.memory, "gpus": capacity.gpus, **dict(capacity.custom)}


def shortfall(request: Resources, capacity: Resources | None, used: Resources = Resources()) -> str:
    """The first resource the request needs more of than `capacity` has left after `used`
    (its name), or "" when it fits. `capacity` None: an agent that advertised nothing."""
    if not request:
        return ""
    if capacity is None:
        return request.custom[0][0] if request.custom else ""
    left = free(capacity, used)
    for name, amount in request.amounts().items():
        if amount > left.get(name, 0) + 1e-9:
            return name
    return ""


def amount_of(resources: Resources | None, name: str) -> float | None:
    """How much of `name` there is; None for a default resource of a provider that advertised
    nothing (no limit)."""
    if resources is None:
        return None if name in DEFAULT_NAMES else 0
    return _offered(resources).get(name, 0)


def show_amount(name: str, amount: float) -> str:
    """`4 cpus`, `8 GiB memory`, `1 gpu`, `2 license_x`."""
    if name == "memory":
        return f"{format_memory(int(amount))} memory"
    if name == "cpus":
        return f"{amount:g} cpu" + ("" if amount == 1 else "s")
    if name == "gpus":
        return f"{amount:g} gpu" + ("" if amount == 1 else "s")
    return f"{amount:g} {name}"


def describe(resources: Resources | None) -> str:
    """`4 cpus, 8 GiB memory, 2 license_x`; `-` when there is nothing."""
    if resources is None:
        return "-"
    return ", ".join(show_amount(k, v) for k, v in resources.amounts().items()) or "-"


def parse_memory(value: str | int | float) -> int:
    """Bytes from a plain number of bytes or a size such as "512MiB", "8GiB", "2G"; raises
    ValueError saying what is wrong (the caller names the field)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size; got {value!r}; {MEMORY_HINT}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = _SIZE.fullmatch(value)
        if match is None:
            raise ValueError(f"{value!r} is not a size; {MEMORY_HINT}")
        number, unit = float(match.group(1)), match.group(2)
        if unit.lower() not in _UNITS:
            raise ValueError(f"unknown unit {unit!r} in {value!r}; {MEMORY_HINT}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"must not be negative; got {value!r}; {MEMORY_HINT}")
    size = number * _UNITS[unit.lower()]
    if size > MAX_AMOUNT:
        raise ValueError(f"{value!r} is more than any machine has; {MEMORY_HINT}")
    return int(size)


def format_memory(n: int) -> str:
    """A byte count as people write it: `512 MiB`, `8 GiB`, `1.5 GiB`, `100 B`."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"


def check_custom_name(name: str) -> str:
    """"" when `name` may name a custom resource, else why not (the caller names the field)."""
    if name in DEFAULT_NAMES:
        return f"{name!r} is a built-in resource, not a custom one; give it as {name} itself"
    if not CUSTOM_NAME.fullmatch(name):
        return (f"{name!r} is not a resource name; use letters, digits, _ . - (starting with a letter "
                "or _), at most 64 characters, e.g. license_x")
    return ""


__all__ = ["DEFAULT_NAMES", "MEMORY_HINT", "Resources", "amount_of", "check_custom_name", "describe",
           "format_memory", "free", "from_amounts", "parse_memory", "shortfall", "show_amount", "total"]
