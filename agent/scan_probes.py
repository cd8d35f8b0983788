"""The scanner's probes of the machine, each bounded: a glob walk with a file budget, a hash with a
size cap, a command killed with its whole process group when it overstays or talks too much; and
readers of the dpkg database, /proc/meminfo and another interpreter's installed distributions."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_HASH_CHUNK = 256 * 1024
DIST_MISSING = 3  # how the script below exits when the distribution is not installed
# Run in another interpreter with -I -S: site (and so any .pth file or sitecustomize) never runs;
# the site directories are added by hand, a virtual environment's as 3.11+ would see them.
_DIST_VERSION_SCRIPT = """\
import os, re, site, sys
exe_dir = os.path.dirname(os.path.abspath(sys.executable))
prefixes, user = [sys.prefix], True
for cfg in (os.path.join(exe_dir, "pyvenv.cfg"), os.path.join(os.path.dirname(exe_dir), "pyvenv.cfg")):
    if os.path.isfile(cfg):
        text = open(cfg, encoding="utf-8").read()
        user = bool(re.search(r"(?mi)^include-system-site-packages\\s*=\\s*true", text))
        prefixes = [os.path.dirname(exe_dir)] + ([sys.base_prefix] if user else [])
        break
sys.path += site.getsitepackages(prefixes) + ([site.getusersitepackages()] if user else [])
from importlib.metadata import version, PackageNotFoundError
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    sys.exit(%d)
""" % DIST_MISSING
_MAGIC = frozenset("*?[")


class Stopped(Exception):
    """A walk, hash or check stopped at one of its limits; the message says which."""


@dataclass
class Budget:
    """How many directory entries a walk may look at, and until when (time.monotonic())."""

    max_visits: int
    deadline: float
    timeout: float
    visits: int = 0

    def visit(self) -> None:
        self.visits += 1
        if self.visits > self.max_visits:
            raise Stopped(f"search stopped at the file budget: {self.max_visits} entries visited "
                          "(max_files_visited) before an acceptable file was found")
        if self.visits % 256 == 0:
            self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise Stopped(f"timed out after {self.timeout:g} s (per-signature limit)")


def iter_matches(pattern: str, roots: Sequence[str], budget: Budget) -> Iterator[str]:
    """Regular files matching `pattern` (absolute, or relative to each root), ``**`` matching any
    number of directories. As in a shell, wildcards skip names starting with a dot, and ``**``
    does not follow symbolic links to directories. Raises Stopped when the budget runs out."""
    bases = ["/"] if os.path.isabs(pattern) else list(roots)
    parts = [part for part in pattern.split("/") if part not in ("", ".")]
    parts = [part for i, part in enumerate(parts) if not (part == "**" and parts[i - 1:i] == ["**"])]
    if not parts:
        return
    if parts[-1] == "**":
        parts.append("*")
    for base in bases:
        yield from _walk(base, parts, budget)


def _walk(base: str, parts: list[str], budget: Budget) -> Iterator[str]:
    part, rest = parts[0], parts[1:]
    if part == "**":
        yield from _walk_any_depth(base, parts, budget)
    elif not _MAGIC.intersection(part):
        budget.visit()
        yield from _leaf_or_descend(os.path.join(base, part), rest, budget)
    else:
        for entry in _entries(base, budget):
            if _name_matches(entry.name, part):
                yield from _leaf_or_descend(entry.path, rest, budget)


def _walk_any_depth(base: str, parts: list[str], budget: Budget) -> Iterator[str]:
    """``**`` then `rest`: each directory under `base` is listed once, for both matching and descending."""
    rest = parts[1:]
    literal = not _MAGIC.intersection(rest[0])
    if literal:
        yield from _walk(base, rest, budget)
    for entry in _entries(base, budget):
        if not literal and _name_matches(entry.name, rest[0]):
            yield from _leaf_or_descend(entry.path, rest[1:], budget)
        if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
            yield from _walk_any_depth(entry.path, parts, budget)


def _leaf_or_descend(path: str, rest: list[str], budget: Budget) -> Iterator[str]:
    if not rest:
        if os.path.isfile(path):
            yield path
    elif os.path.isdir(path):
        yield from _walk(path, rest, budget)


def _entries(base: str, budget: Budget) -> Iterator[os.DirEntry]:
    try:
        listing = os.scandir(base)
    except OSError:  # missing, not a directory, or not ours to read: nothing matches there
        return
    with listing:
        while True:
            try:
                entry = next(listing)
            except (StopIteration, OSError):  # OSError: unreadable mid-way, as some of /proc is
                return
            budget.visit()
            yield entry


def _name_matches(name: str, pattern: str) -> bool:
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


def hash_file(path: str, max_bytes: int, budget: Budget) -> str | None:
    """The file's sha256 in hex; None if it is (or grows) larger than `max_bytes`."""
    digest = hashlib.sha256()
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    total = 0
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size > max_bytes:
            return None
        while count := file.readinto(buffer):
            total += count
            if total > max_bytes:
                return None
            digest.update(view[:count])
            budget.check_time()
    return digest.hexdigest()


@dataclass(frozen=True)
class CommandOutput:
    """What a bounded command printed (stdout and stderr together, capped) and how it ended."""

    output: str
    exit_code: int | None
    hung: bool
    timeout: float


def run_command(argv: list[str], *, timeout: float, max_output: int) -> CommandOutput:
    """Run `argv` (no shell, stdin from /dev/null, in a session of its own) for at most `timeout`
    seconds and `max_output` bytes of output; past either, its process group is killed."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd="/",
                            env=_tool_environment())
    deadline = time.monotonic() + timeout
    with proc.stdout:
        data, eof = _read_bounded(proc.stdout.fileno(), deadline, max_output)
    hung = not eof and len(data) < max_output
    if not eof:  # the leader is not reaped yet, so its pid still names our group
        _kill_group(proc)
    else:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            hung = True
    exit_code = proc.wait()
    return CommandOutput(data.decode(errors="replace"), None if hung else exit_code, hung, timeout)


def _read_bounded(fd: int, deadline: float, max_output: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while size < max_output:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return b"".join(chunks), False
            chunk = os.read(fd, min(65536, max_output - size))
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks), False


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tool_environment() -> dict[str, str]:
    """A version command sees PATH and HOME but none of the agent's other variables (which may hold
    secrets), and the C locale, so that its output is the one regexes are written against."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C", "LANG": "C"}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env


def installed_debian_packages(status_path: str) -> dict[str, str]:
    """name (and name:arch) -> version of each package dpkg's status file says is installed."""
    installed: dict[str, str] = {}
    fields: dict[str, str] = {}
    with open(status_path, encoding="utf-8", errors="replace") as status:
        for line in status:
            if line.strip() and not line[0].isspace():
                key, _, value = line.partition(":")
                fields[key] = value.strip()
            elif not line.strip():
                _add_installed(installed, fields)
                fields = {}
    _add_installed(installed, fields)
    return installed


def _add_installed(installed: dict[str, str], fields: dict[str, str]) -> None:
    if fields.get("Status", "").split()[-1:] == ["installed"] and "Package" in fields:
        version = fields.get("Version", "")
        installed[fields["Package"]] = version
        if "Architecture" in fields:
            installed[f"{fields['Package']}:{fields['Architecture']}"] = version


def read_meminfo(meminfo: str) -> tuple[int, int]:
    """(available, total) bytes from /proc/meminfo."""
    values: dict[str, int] = {}
    with open(meminfo, encoding="ascii", errors="replace") as file:
        for line in file:
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable", "MemFree"):
                values[key] = int(rest.split()[0]) * 1024
    return values.get("MemAvailable", values.get("MemFree", 0)), values["MemTotal"]


def dist_version_command(interpreter: str, name: str) -> list[str]:
    """The command that prints the version of distribution `name` installed for `interpreter`."""
    return [interpreter, "-I", "-S", "-c", _DIST_VERSION_SCRIPT, name]
