"""What the agent tells the server about its machine."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import stat
import sys
from pathlib import Path

from jobplane.v1 import provider_pb2

log = logging.getLogger(__name__)

# A fact's name as job runtime conditions spell it, e.g. `load_average<2`.
FACT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")
# A facts file is read on every heartbeat: past this size it is refused, not parsed.
MAX_FACTS_FILE_BYTES = 64 * 1024


def machine_facts() -> provider_pb2.ProviderFacts:
    """The facts of this machine, as sent in the hello."""
    return provider_pb2.ProviderFacts(
        hostname=socket.gethostname(),
        os=os.uname().sysname.lower(),
        arch=os.uname().machine,
        cpu_count=os.cpu_count() or 1,
        memory_bytes=memory_bytes(),
        python_version="%d.%d.%d" % sys.version_info[:3],
    )


def memory_bytes() -> int:
    """Total physical memory in bytes; 0 when the platform does not say."""
    total = _meminfo("MemTotal")
    if total is not None:
        return total
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def load_average() -> float:
    """The one-minute load average; 0.0 where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0


def free_memory_bytes() -> int | None:
    """Memory available to new work without swapping (MemAvailable), in bytes; None if unknown."""
    return _meminfo("MemAvailable")


def _meminfo(field: str) -> int | None:
    """A field of /proc/meminfo in bytes; None where there is no such file or field."""
    prefix = field + ":"
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith(prefix):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def live_facts(facts_file: Path | None, *, reported: set[str] | None = None) -> dict[str, float]:
    """The facts sent with every heartbeat, which job runtime conditions are checked against.

    `load_average` (one minute) and `free_memory_bytes` (when known), then the entries of
    `facts_file` if one is given: a JSON object of name -> number, read afresh on every call
    and overriding the built-in facts of the same name. What is wrong with the file is
    logged and ignored, never raised. `reported` remembers the problems already logged, so
    a caller that keeps it between calls hears of each problem once while it lasts.
    """
    facts: dict[str, float] = {"load_average": load_average()}
    free = free_memory_bytes()
    if free is not None:
        facts["free_memory_bytes"] = float(free)
    if facts_file is not None:
        problems: list[str] = []
        facts.update(_file_facts(facts_file, problems))
        _report(problems, reported if reported is not None else set())
    return facts


def _file_facts(path: Path, problems: list[str]) -> dict[str, float]:
    """The valid entries of a facts file; what is wrong with it is appended to `problems`."""
    document = _read_json(path, problems)
    if document is None:
        return {}
    if not isinstance(document, dict):
        problems.append(f"facts file {path}: expected a JSON object of name -> number, "
                        f"got {type(document).__name__}; ignored")
        return {}
    facts: dict[str, float] = {}
    for name, value in document.items():
        if not FACT_NAME.fullmatch(name):
            problems.append(f"facts file {path}: fact name {name!r} must match "
                            f"{FACT_NAME.pattern}; ignored")
        elif (number := _finite_number(value)) is None:
            problems.append(f"facts file {path}: fact {name!r} must be a finite number, "
                            f"got {json.dumps(value)[:40]}; ignored")
        else:
            facts[name] = number
    return facts


def _read_json(path: Path, problems: list[str]) -> object | None:
    """The parsed file; None (and a problem) if it cannot be read or parsed."""
    try:
        # Non-blocking, so a FIFO put in the file's place cannot stall the event loop.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                problems.append(f"facts file {path}: not a regular file; ignored")
                return None
            data = file.read(MAX_FACTS_FILE_BYTES + 1)
    except FileNotFoundError:
        problems.append(f"facts file {path}: no such file; no extra facts sent until it exists")
        return None
    except OSError as exc:
        problems.append(f"facts file {path}: cannot read it ({exc.strerror}); ignored")
        return None
    if len(data) > MAX_FACTS_FILE_BYTES:
        problems.append(f"facts file {path}: larger than {MAX_FACTS_FILE_BYTES} bytes; ignored")
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        problems.append(f"facts file {path}: not valid JSON ({exc}); ignored")
        return None


def _finite_number(value: object) -> float | None:
    # JSON true/false arrive as bool, a subclass of int: they are not numbers here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond a double
        return None
    return number if math.isfinite(number) else None


def _report(problems: list[str], reported: set[str]) -> None:
    """Log the problems not logged before; forget those that went away, so they are logged
    again if they come back."""
    for problem in problems:
        if problem not in reported:
            log.warning("%s", problem)
    reported.clear()
    reported.update(problems)
