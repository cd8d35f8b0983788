"""Prerequisite scans: does this machine have what a signature describes?

A signature is a plain dict (``{"kind": "executable", "name": "samtools", "version_args":
["--version"], "version": ">=1.10,<2"}``); its result says whether it is present, what was found,
why not, and when::

    results = await scan(signatures, limits=ScanLimits(timeout=2.0))
    # [{"present": True, "details": {"path": "/usr/bin/samtools", "version": "1.17"},
    #   "reason": "", "scanned_at": 1718000000.0}, ...]

Each signature is checked in a worker thread, at most `ScanLimits.concurrency` at a time, and
within its limits: a search stops at its file budget, a file over the hash limit is not hashed, a
version command is killed with its process group when it hangs. A check stuck in the kernel (a
dead network mount) is abandoned after its timeout: the scan reports it and goes on. Nothing is
run but what a signature names with the arguments it gives; a task's code is never run. A bad
signature is reported absent with the reason, never raised.
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib.metadata
import logging
import os
import platform
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .scan_limits import ScanLimits
from .scan_probes import (DIST_MISSING, Budget, CommandOutput, Stopped, dist_version_command, hash_file,
                          installed_debian_packages, iter_matches, read_meminfo, run_command)
from .versions import Constraint, find_version, parse_constraint

__all__ = ["ScanLimits", "scan", "scan_one"]

log = logging.getLogger(__name__)

# How much longer than its timeout a check may take before the scan abandons its thread.
_ABANDON_GRACE = 0.5
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}


class _BadSignature(ValueError):
    """A signature that cannot be checked as written; the message names the field. Reported as the
    result's reason, never raised out of the scanner."""


async def scan(signatures: list[dict], *, limits: ScanLimits = ScanLimits()) -> list[dict]:
    """Check `signatures` concurrently off the event loop; one result per signature, in order."""
    shared = _Shared(limits)
    gate = asyncio.Semaphore(max(1, limits.concurrency))
    return list(await asyncio.gather(*(_scan_in_thread(sig, shared, gate) for sig in signatures)))


def scan_one(signature: dict, limits: ScanLimits = ScanLimits()) -> dict:
    """Check one signature in the calling thread."""
    return _evaluate(signature, _Shared(limits))


async def _scan_in_thread(signature: Any, shared: _Shared, gate: asyncio.Semaphore) -> dict:
    loop = asyncio.get_running_loop()
    async with gate:
        started = time.time()
        done = loop.create_future()
        # A daemon thread, not a pool's: a check stuck in the kernel must not hold up the
        # agent's exit, nor take a worker from the checks after it.
        thread = threading.Thread(target=_deliver, args=(signature, shared, loop, done),
                                  name="jobplane-scan", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # can't start new thread
            return _stamp(_absent(f"scan failed: {exc}"), started)
        try:
            return await asyncio.wait_for(done, shared.limits.timeout + _ABANDON_GRACE)
        except TimeoutError:
            return _stamp(_absent(f"timed out after {shared.limits.timeout:g} s: the check is stuck "
                                  "(an unresponsive filesystem?) and was abandoned"), started)


def _deliver(signature: Any, shared: _Shared, loop: asyncio.AbstractEventLoop,
             done: asyncio.Future) -> None:
    result = _evaluate(signature, shared)
    try:
        loop.call_soon_threadsafe(_settle, done, result)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def _settle(done: asyncio.Future, result: dict) -> None:
    if not done.done():
        done.set_result(result)


class _Shared:
    """One scan's limits and what its signatures share: a version command's output, the dpkg
    database. Each is computed once, by the first signature that needs it."""

    def __init__(self, limits: ScanLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._cells: dict[tuple, _Once] = {}

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        with self._lock:
            cell = self._cells.setdefault(key, _Once())
        return cell.get(compute)


class _Once:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._value: Any = None

    def get(self, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if not self._done:
                self._value = compute()
                self._done = True
            return self._value


@dataclass(frozen=True)
class _Check:
    """One signature being checked: the signature, what the scan shares, and the deadline."""

    sig: dict
    shared: _Shared
    deadline: float  # time.monotonic()

    @property
    def limits(self) -> ScanLimits:
        return self.shared.limits

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def budget(self) -> Budget:
        return Budget(self.limits.max_files_visited, self.deadline, self.limits.timeout)


def _evaluate(signature: Any, shared: _Shared) -> dict:
    started = time.time()
    try:
        if not isinstance(signature, dict):
            raise _BadSignature(f"expected a mapping, got {type(signature).__name__}")
        kind = _field(signature, "kind", str, required=True)
        if kind not in _CHECKS:
            raise _BadSignature(f"unknown kind {kind!r}: use one of {', '.join(sorted(_CHECKS))}")
        result = _CHECKS[kind](_Check(signature, shared, time.monotonic() + shared.limits.timeout))
    except _BadSignature as exc:
        result = _absent(f"bad signature: {exc}")
    except Stopped as exc:
        result = _absent(str(exc))
    except Exception as exc:  # one odd machine or signature must not end the scan
        log.warning("scan of %r failed", signature, exc_info=True)
        result = _absent(f"scan failed: {type(exc).__name__}: {exc}")
    return _stamp(result, started)


def _present(**details: Any) -> dict:
    return {"present": True, "details": _details(details), "reason": ""}


def _absent(reason: str, **details: Any) -> dict:
    return {"present": False, "details": _details(details), "reason": reason}


def _details(details: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in details.items() if value is not None}


def _stamp(result: dict, started: float) -> dict:
    result["scanned_at"] = started
    return result


_MISSING = object()


def _field(sig: dict, key: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
    value = sig.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise _BadSignature(f"{key!r} is required")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
        raise _BadSignature(f"{key!r} must be {_type_names(kind)}, got {type(value).__name__}")
    return value


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in _types(kind))


def _strings(sig: dict, key: str) -> list[str] | None:
    value = _field(sig, key, list)
    if value is not None and not all(isinstance(item, str) for item in value):
        raise _BadSignature(f"{key!r} must be a list of strings")
    return value


def _count(sig: dict, key: str, *, required: bool = False) -> int | None:
    value = _field(sig, key, int, required=required)
    if value is not None and value < 0:
        raise _BadSignature(f"{key!r} must not be negative")
    return value


def _constraint(sig: dict, *, required: bool = False) -> Constraint | None:
    text = _field(sig, "version", str, required=required)
    if text is None:
        return None
    try:
        return parse_constraint(text)
    except ValueError as exc:
        raise _BadSignature(f"'version': {exc}") from None


def _version_verdict(name: str, version: str, constraint: Constraint | None, **details: Any) -> dict:
    if constraint is not None and not constraint.allows(version):
        return _absent(f"{name} {version} does not satisfy {constraint}", version=version, **details)
    return _present(version=version, **details)


# --- files -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _FileWant:
    size: int | None
    sha256: str | None
    min_mtime: float | None


def _check_file(check: _Check) -> dict:
    pattern = _field(check.sig, "path", str, required=True)
    roots = [_expand_root(r) for r in _strings(check.sig, "roots") or []]
    if not os.path.isabs(pattern) and not roots:
        raise _BadSignature(f"'path' {pattern!r} is relative: give it 'roots' to search")
    want = _file_want(check.sig)
    rejected: list[tuple[str, str]] = []
    budget = check.budget()
    try:
        for path in iter_matches(pattern, roots, budget):
            why, details = _file_verdict(path, want, check.limits.max_hash_bytes, budget)
            if why is None:
                return _present(**details)
            rejected.append((path, why))
    except Stopped as exc:
        return _absent("; ".join(filter(None, [_rejections(rejected), str(exc)])))
    where = f" under {', '.join(roots)}" if not os.path.isabs(pattern) else ""
    return _absent(_rejections(rejected) or f"no file matches {pattern}{where}")


def _expand_root(root: str) -> str:
    """`$DATA/refs` -> this agent's value of DATA; a variable the agent lacks leaves a root
    that matches nothing (the reason names it)."""
    expanded = os.path.expandvars(root)
    return expanded if os.path.isabs(expanded) else f"/nonexistent/unset {root}"


def _file_want(sig: dict) -> _FileWant:
    sha256 = _field(sig, "sha256", str)
    if sha256 is not None and (len(sha256) != 64 or not all(c in "0123456789abcdefABCDEF" for c in sha256)):
        raise _BadSignature("'sha256' must be 64 hexadecimal digits")
    return _FileWant(_count(sig, "size"), sha256 and sha256.lower(),
                     _field(sig, "min_mtime", (int, float)))


def _file_verdict(path: str, want: _FileWant, max_hash_bytes: int,
                  budget: Budget) -> tuple[str | None, dict]:
    """(None, details) if the file is acceptable, else (why not, details)."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        return f"cannot stat: {exc.strerror}", {"path": path}
    details: dict[str, Any] = {"path": path, "size": stat.st_size, "mtime": stat.st_mtime}
    if want.size is not None and stat.st_size != want.size:
        return f"size is {stat.st_size} bytes, not {want.size}", details
    if want.min_mtime is not None and stat.st_mtime < want.min_mtime:
        return f"modified at {stat.st_mtime:.0f}, before min_mtime {want.min_mtime:.0f}", details
    if want.sha256 is None:
        return None, details
    digest = hash_file(path, max_hash_bytes, budget)
    if digest is None:
        return f"not hashed: larger than the limit ({stat.st_size} > {max_hash_bytes} bytes)", details
    details["sha256"] = digest
    return (None if digest == want.sha256 else "sha256 differs"), details


def _rejections(rejected: list[tuple[str, str]]) -> str:
    """Why the files that matched were not acceptable; "" if none matched."""
    if not rejected:
        return ""
    path, why = rejected[0]
    if len(rejected) == 1:
        return f"{path}: {why}"
    return f"{len(rejected)} files match, none acceptable (e.g. {path}: {why})"


# --- executables and packages ----------------------------------------------------------------

def _check_executable(check: _Check) -> dict:
    name = _field(check.sig, "name", str, required=True)
    dirs = _strings(check.sig, "dirs")
    args = _strings(check.sig, "version_args")
    regex = _field(check.sig, "version_regex", str)
    constraint = _constraint(check.sig)
    if args is None and constraint is not None:
        raise _BadSignature("a 'version' constraint needs 'version_args' to run the executable with")
    if os.sep in name and not os.path.isabs(name):
        raise _BadSignature(f"'name' {name!r} must be a command name or an absolute path")
    search = os.pathsep.join(dirs) if dirs is not None else os.environ.get("PATH", os.defpath)
    path = shutil.which(name, path=search) if search else None
    if path is None:
        where = "in " + ", ".join(dirs) if dirs is not None else "on the agent's PATH"
        return _absent(f"{name} not found {where}")
    if args is None:
        return _present(path=path)
    command = [path, *args]
    try:
        run = check.shared.get(("run", tuple(command)), lambda: _run(check, command))
    except OSError as exc:
        return _absent(f"cannot run {path}: {exc.strerror or exc}", path=path)
    if run.hung:
        return _absent(f"version command {' '.join(command)} hung: killed after {run.timeout:g} s",
                       path=path)
    try:
        version = find_version(run.output, regex)
    except Exception as exc:  # re.error
        raise _BadSignature(f"'version_regex': {exc}") from None
    if version is None:
        return _absent(f"no version in the output of {' '.join(command)}"
                       + (f" matching {regex!r}" if regex else ""), path=path)
    return _version_verdict(name, version, constraint, path=path)


def _run(check: _Check, argv: list[str]) -> CommandOutput:
    timeout = min(check.limits.version_timeout, check.remaining())
    return run_command(argv, timeout=timeout, max_output=check.limits.max_version_output)


def _check_python_package(check: _Check) -> dict:
    name = _field(check.sig, "name", str, required=True)
    interpreter = _field(check.sig, "interpreter", str)
    constraint = _constraint(check.sig)
    if interpreter is None or os.path.abspath(interpreter) == os.path.abspath(sys.executable):
        interpreter = sys.executable
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = None
    else:
        try:
            version = _foreign_dist_version(check, interpreter, name)
        except _Unanswered as exc:
            return _absent(str(exc), interpreter=interpreter)
    if version is None:
        return _absent(f"{name} is not installed for {interpreter}", interpreter=interpreter)
    return _version_verdict(name, version, constraint, interpreter=interpreter)


class _Unanswered(Exception):
    """Another interpreter could not say whether a distribution is installed; the message says why."""


def _foreign_dist_version(check: _Check, interpreter: str, name: str) -> str | None:
    """The version of `name` installed for another interpreter, None if it is not installed."""
    command = dist_version_command(interpreter, name)
    try:
        run = check.shared.get(("run", tuple(command)), lambda: _run(check, command))
    except OSError as exc:
        raise _Unanswered(f"cannot run {interpreter}: {exc.strerror or exc}") from None
    if run.hung:
        raise _Unanswered(f"{interpreter} hung: killed after {run.timeout:g} s")
    if run.exit_code == DIST_MISSING:
        return None
    if run.exit_code != 0 or not run.output.strip():
        tail = run.output.strip().splitlines()[-1:] or ["no output"]
        raise _Unanswered(f"{interpreter} cannot list its packages (exit {run.exit_code}): {tail[0]}")
    return run.output.strip()


def _check_debian_package(check: _Check) -> dict:
    name = _field(check.sig, "name", str, required=True)
    constraint = _constraint(check.sig)
    status = check.limits.dpkg_status
    try:
        installed = check.shared.get(("dpkg", status), lambda: installed_debian_packages(status))
    except OSError as exc:
        return _absent(f"cannot read the dpkg database {status}: {exc.strerror}")
    version = installed.get(name)
    if version is None:
        return _absent(f"{name} is not installed (dpkg)")
    return _version_verdict(name, version, constraint)


# --- the machine -----------------------------------------------------------------------------

def _check_env(check: _Check) -> dict:
    name = _field(check.sig, "name", str, required=True)
    pattern = _field(check.sig, "pattern", str)
    value = os.environ.get(name)
    if value is None:
        return _absent(f"{name} is not set in the agent's environment")
    if pattern is not None and not fnmatch.fnmatchcase(value, pattern):
        return _absent(f"{name} is set but does not match {pattern!r}", name=name)
    return _present(name=name)  # not the value: environments hold secrets


def _check_port(check: _Check) -> dict:
    port = _count(check.sig, "port", required=True)
    host = _field(check.sig, "host", str) or "127.0.0.1"
    if not 0 < port < 65536:
        raise _BadSignature(f"'port' {port} is not a TCP port")
    try:
        with socket.create_connection((host, port), timeout=max(0.01, check.remaining())):
            pass
    except OSError as exc:
        return _absent(f"nothing accepts connections on {host}:{port}: {exc.strerror or exc}")
    return _present(host=host, port=port)


def _check_disk(check: _Check) -> dict:
    path = _field(check.sig, "path", str, required=True)
    want = _count(check.sig, "free_bytes", required=True)
    try:
        stat = os.statvfs(path)
    except OSError as exc:
        return _absent(f"cannot read the filesystem at {path}: {exc.strerror}")
    free = stat.f_bavail * stat.f_frsize
    if free < want:
        return _absent(f"{free} bytes free at {path}, not {want}", path=path, free_bytes=free)
    return _present(path=path, free_bytes=free)


def _check_memory(check: _Check) -> dict:
    want_free = _count(check.sig, "free_bytes")
    want_total = _count(check.sig, "total_bytes")
    try:
        free, total = check.shared.get(("meminfo",), lambda: read_meminfo(check.limits.meminfo))
    except (OSError, KeyError, ValueError) as exc:
        return _absent(f"cannot read {check.limits.meminfo}: {exc}")
    details = {"free_bytes": free, "total_bytes": total}
    if want_free is not None and free < want_free:
        return _absent(f"{free} bytes of memory available, not {want_free}", **details)
    if want_total is not None and total < want_total:
        return _absent(f"{total} bytes of memory in all, not {want_total}", **details)
    return _present(**details)


def _check_os(check: _Check) -> dict:
    want = _field(check.sig, "value", str, required=True)
    have = platform.system().lower()
    if have != want.lower():
        return _absent(f"the agent runs {have}, not {want}", os=have)
    return _present(os=have)


def _check_arch(check: _Check) -> dict:
    want = _field(check.sig, "value", str, required=True)
    have = platform.machine()
    if _ARCH_ALIASES.get(have.lower(), have.lower()) != _ARCH_ALIASES.get(want.lower(), want.lower()):
        return _absent(f"the agent's machine is {have}, not {want}", arch=have)
    return _present(arch=have)


def _check_kernel(check: _Check) -> dict:
    constraint = _constraint(check.sig, required=True)
    return _version_verdict("kernel", platform.release(), constraint)


_CHECKS: dict[str, Callable[[_Check], dict]] = {
    "file": _check_file, "executable": _check_executable, "python_package": _check_python_package,
    "debian_package": _check_debian_package, "env": _check_env, "port": _check_port,
    "disk": _check_disk, "memory": _check_memory, "os": _check_os, "arch": _check_arch,
    "kernel": _check_kernel,
}
