"""Each command attempt's whole stdout and stderr, kept on disk, bounded and rotated.

The keeper (keeper_attempts.py) pumps the command's output from a pipe into segments of one size,
`out.0`, `out.1`, … (and `err.N`): byte `b` of the stream is in segment `b // size`. When a new
segment begins, the one `SEGMENTS` back is removed, so a stream keeps at most its cap on disk
(the newest bytes; what went before is "rotated away"). The segment size is in `segment`
(none for the default size); a Python task's output is marked complete by `done`, a command's by
the exit status in its attempt's state file (keeper_attempts.py), which the keeper writes once
the command and everything it started are gone.

An attempt's output lives in `<state dir>/logs/<attempt dir's name>/`, beside its attempt
directory, so that it outlives the attempt's report (the attempt directory is removed once the
server has it); the agent removes logs older than its `--log-retention`. Stdlib only: the
keeper imports it.

A command attempt's log directory is made at its first output (`lazy` writers): most commands
write nothing, and making a directory costs more than anything else the keeper does for an
attempt. One that ended without output has a line (`NAME TIME`) in `logs/.empty/` instead, in
a file per EMPTY_SPAN seconds of ends, which the retention removes whole once all of it is
older than the retention (its lines live on up to EMPTY_SPAN longer than a directory would).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

STREAMS = ("out", "err")
# Segments kept per stream: the cap is split into this many.
SEGMENTS = 4
# Bytes kept per stream of an attempt unless the agent says otherwise (--log-max-bytes).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MIN_MAX_BYTES = 4 * SEGMENTS * 1024
SEGMENT_FILE = "segment"
DONE_FILE = "done"
LOGS = "logs"
# Under logs/: which attempts ended without output (no directory was made for them).
EMPTY = ".empty"
EMPTY_SPAN = 600
_SEGMENT = re.compile(r"^(out|err)\.(\d+)$")
_READ_BYTES = 64 * 1024


class Rotated(Exception):
    """The bytes asked for were rotated away (the stream's cap) or never kept."""


def log_dir(attempt_dir: str | Path) -> Path:
    """Where an attempt directory's output is kept: beside it, under `logs/`."""
    return Path(log_dir_of(str(attempt_dir)))


def log_dir_of(attempt_dir: str) -> str:
    """log_dir as a str (for the keeper's hot path)."""
    parent, name = os.path.split(attempt_dir)
    return join(parent, LOGS, name) if parent else os.path.join(parent, LOGS, name)


def join(*parts: str) -> str:
    """os.path.join of str parts, the first not empty and none but the first absolute (what
    the keeper's hot path joins): without os.path.join's checks."""
    head = parts[0]
    return (head if head.endswith("/") else head + "/") + "/".join(parts[1:])


class SegmentWriter:
    """Appends one stream to its segments, rotating at the segment size."""

    def __init__(self, directory: str | Path, stream: str, max_bytes: int, *,
                 lazy: bool = False) -> None:
        self.stream = stream
        self._dir, self._max_bytes, self._lazy = directory, max_bytes, lazy
        self.wrote = False  # some output came (with `lazy`, its directory is made then)
        self._prefix = join(os.fspath(directory), stream) if directory else stream
        self.size = segment_size(max_bytes)
        self.index, self.fill = 0, 0
        self.failed: OSError | None = None  # a write refused (disk full): the rest is dropped
        self._fd: int | None = None  # the first segment is made by the first write

    def _open(self, index: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            return os.open(f"{self._prefix}.{index}", flags, 0o644)
        except FileNotFoundError:
            if not self._lazy or index:
                raise
        make_dir(self._dir, self._max_bytes)  # the attempt's first output
        return os.open(f"{self._prefix}.{index}", flags, 0o644)

    def write(self, data: bytes) -> None:
        """Append `data`; after a failed write, drop the rest (the command must never block)."""
        view = memoryview(data)
        self.wrote = self.wrote or bool(view)
        while view and self.failed is None:
            try:
                if self._fd is None:
                    self._fd = self._open(0)
                elif self.fill == self.size:
                    self._next()
                written = os.write(self._fd, view[:self.size - self.fill])
            except OSError as exc:
                self.failed = exc
                return
            self.fill += written
            view = view[written:]

    def _next(self) -> None:
        os.close(self._fd)  # type: ignore[arg-type]
        self.index, self.fill = self.index + 1, 0
        self._fd = self._open(self.index)
        try:
            os.unlink(f"{self._prefix}.{self.index - SEGMENTS}")
        except FileNotFoundError:
            pass

    def end(self) -> int:
        """Bytes of the stream written so far (Span.end)."""
        return self.index * self.size + self.fill

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


def segment_size(max_bytes: int) -> int:
    return max(MIN_MAX_BYTES, max_bytes or DEFAULT_MAX_BYTES) // SEGMENTS


def begin(directory: str | Path, max_bytes: int) -> None:
    """Make an attempt's (empty) log directory and record its segment size, unless it is the
    default one (a log directory without `segment` has segments of the default size)."""
    try:
        os.mkdir(directory)
    except FileExistsError:  # an attempt directory's name again: its old output goes
        _remove_tree(directory)
        os.makedirs(directory, exist_ok=True)
    except FileNotFoundError:  # the first attempt: logs/ is made
        os.makedirs(directory, exist_ok=True)
    size = segment_size(max_bytes)
    if size != segment_size(0):
        _write(os.path.join(directory, SEGMENT_FILE), f"{size}\n".encode())


def prepare(directory: str) -> None:
    """Before a command attempt whose writers are `lazy` (its directory made at its first
    output): what an earlier attempt of the same name left goes."""
    if os.path.lexists(directory):
        _remove_tree(directory)


def make_dir(directory: str | Path, max_bytes: int) -> None:
    """Make an attempt's log directory at its first output, with its segment size when it is
    not the default (made aside and renamed into place: no reader sees it without)."""
    size = segment_size(max_bytes)
    if size == segment_size(0):
        os.makedirs(directory, exist_ok=True)
        return
    parent, name = os.path.split(directory)
    aside = os.path.join(parent, f".new-{name}")
    os.makedirs(aside, exist_ok=True)
    _write(os.path.join(aside, SEGMENT_FILE), f"{size}\n".encode())
    try:
        os.rename(aside, directory)
    except OSError:  # there already
        _remove_tree(aside)


_empty_file: tuple[str, int] | None = None  # the EMPTY file appended to last, open


def note_empty(directory: str | Path) -> None:
    """Record that the attempt of this log directory ended without output (none was made):
    one line appended to the file of EMPTY for this period (kept open for the next)."""
    global _empty_file
    now = time.time()
    parent, name = os.path.split(os.fspath(directory))
    period = str(int(now // EMPTY_SPAN))
    path = join(parent, EMPTY, period) if parent else os.path.join(EMPTY, period)
    if _empty_file is None or _empty_file[0] != path:
        if _empty_file is not None:
            os.close(_empty_file[1])
            _empty_file = None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, flags, 0o644)
        _empty_file = (path, fd)
    os.write(_empty_file[1], f"{name} {now:.0f}\n".encode())


def _listed_empty(directory: str | Path) -> bool:
    """Whether the attempt of this log directory (which is not there) ended without output."""
    parent, name = os.path.split(os.path.normpath(directory))
    found = f"\n{name} ".encode()
    try:
        files = sorted(os.listdir(os.path.join(parent, EMPTY)), reverse=True)
    except FileNotFoundError:
        return False
    for file in files:
        try:
            with open(os.path.join(parent, EMPTY, file), "rb") as f:
                if found in b"\n" + f.read():
                    return True
        except FileNotFoundError:
            continue
    return False


def complete(directory: str | Path) -> None:
    """Say an attempt's output is complete: `done` in its log directory, or, when it wrote
    nothing (its directory was never made: writers are lazy), a line in the list of EMPTY."""
    if os.path.isdir(directory):
        finish(directory)
    else:
        note_empty(directory)


def finish(directory: str | Path) -> None:
    """Mark the output complete (a Python task's; a command's is complete once its exit status
    is in its attempt's state file, which the keeper writes last)."""
    _write(os.path.join(directory, DONE_FILE), b"")


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def is_done(directory: str | Path) -> bool:
    """Whether the output is complete: marked `done` (finish), or the command of the attempt
    directory it belongs to (log_dir) has its exit status written."""
    if os.path.exists(os.path.join(directory, DONE_FILE)):
        return True
    from .keeper_attempts import read_state  # (it imports this module)

    parent, name = os.path.split(os.path.normpath(directory))
    started, status = read_state(os.path.join(os.path.dirname(parent), name))
    if status is not None:
        return True
    if started:  # a command that runs: its exit status comes once its output is complete
        return False  # (not looked up in the EMPTY listing, which a busy agent makes long)
    return not os.path.isdir(directory) and _listed_empty(directory)  # a Python call that printed nothing


@dataclass(frozen=True)
class Span:
    """What a stream holds: bytes [start, end) of its output, in segments of `size`."""

    start: int
    end: int
    size: int


def span(directory: str | Path, stream: str) -> Span | None:
    """The bytes a stream keeps now; None if the attempt has no output kept here."""
    try:
        size = int(Path(directory, SEGMENT_FILE).read_text())
    except FileNotFoundError:
        if not os.path.isdir(directory):  # it wrote nothing (then listed as such), or is gone
            return Span(0, 0, segment_size(0)) if _listed_empty(directory) else None
        size = segment_size(0)  # begin writes only a size other than the default
    except (OSError, ValueError):
        return None
    indexes = _indexes(directory, stream)
    if not indexes:
        return Span(0, 0, size)
    last = indexes[-1]
    return Span(indexes[0] * size, last * size + _size(Path(directory, f"{stream}.{last}")), size)


def span_of(end: int, size: int) -> Span:
    """The span of a stream that wrote `end` bytes in segments of `size` (as SegmentWriter
    keeps them: the last SEGMENTS segments), without reading its directory."""
    if end <= 0:
        return Span(0, 0, size)
    return Span(max(0, (end - 1) // size - SEGMENTS + 1) * size, end, size)


def written(directory: str | Path) -> int:
    """Bytes of output (both streams) the attempt has written so far."""
    spans = (span(directory, stream) for stream in STREAMS)
    return sum(s.end for s in spans if s is not None)


def read(directory: str | Path, stream: str, offset: int, limit: int = _READ_BYTES) -> bytes:
    """Up to `limit` bytes of the stream from `offset` (b"" at its end for now); raises Rotated
    if they are no longer kept."""
    found = span(directory, stream)
    if found is None:
        raise Rotated("no output of this attempt is kept on its agent")
    if offset < found.start:
        raise Rotated(f"bytes {offset}-{found.start} were rotated away (the agent keeps the last "
                      f"{found.size * SEGMENTS} bytes of each stream: --log-max-bytes)")
    index, within = divmod(offset, found.size)
    try:
        with open(Path(directory, f"{stream}.{index}"), "rb") as f:
            f.seek(within)
            return f.read(min(limit, found.size - within))
    except FileNotFoundError:
        if offset >= found.end:
            return b""
        raise Rotated(f"bytes from {offset} were rotated away while being read (--log-max-bytes)") from None


def tail(directory: str | Path, stream: str, limit: int, found: Span | None = None) -> str:
    """The last `limit` bytes of the stream (whose span is `found` if given), decoded (a
    character cut at the front becomes U+FFFD)."""
    found = found or span(directory, stream)
    if found is None:
        return ""
    offset, data = max(found.start, found.end - limit), b""
    try:
        while offset + len(data) < found.end:
            chunk = read(directory, stream, offset + len(data), limit - len(data))
            if not chunk:
                break
            data += chunk
    except Rotated:
        pass
    return data.decode("utf-8", errors="replace")


def sweep(root: str | Path, older_than: float, keep: set[str]) -> list[str]:
    """Remove the logs under `root/logs` not written for `older_than` seconds, but those named in
    `keep` (attempts still held); the names removed."""
    base, removed = Path(root, LOGS), []
    cutoff = time.time() - older_than
    try:
        entries = list(base.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name in keep or entry.name == EMPTY or not entry.is_dir():
            continue
        if _newest(entry) < cutoff:
            _remove_tree(entry)
            removed.append(entry.name)
    return removed + _sweep_empty(base / EMPTY, cutoff, keep)


def _sweep_empty(directory: Path, cutoff: float, keep: Iterable[str]) -> list[str]:
    """Remove the files of EMPTY whose every line is older than `cutoff` (none of them held);
    the names they listed."""
    removed: list[str] = []
    try:
        files = [name for name in os.listdir(directory) if name.isdigit()]
    except FileNotFoundError:
        return removed
    for file in files:
        if (int(file) + 1) * EMPTY_SPAN >= cutoff:
            continue
        path = directory / file
        try:
            names = [line.rsplit(" ", 1)[0] for line in path.read_text().splitlines()]
        except OSError:
            continue
        if keep and not set(names).isdisjoint(keep):
            continue
        path.unlink(missing_ok=True)
        removed += names
    try:
        directory.rmdir()
    except OSError:
        pass  # some are kept (or one was just made)
    return removed


def kept_bytes(root: str | Path) -> int:
    """Bytes of output kept on disk under `root/logs`, every attempt's (for /metrics)."""
    total = 0
    for directory, _, files in os.walk(Path(root, LOGS)):
        total += sum(_size(Path(directory, name)) for name in files)
    return total


def _remove_tree(path: str | Path) -> None:
    import shutil  # rarely needed: it loads bz2 and lzma, which the agent and keeper do without

    shutil.rmtree(path, ignore_errors=True)


def _newest(directory: Path) -> float:
    times = [directory.stat().st_mtime]
    for child in directory.iterdir():
        try:
            times.append(child.stat().st_mtime)
        except FileNotFoundError:
            pass
    return max(times)


def _indexes(directory: str | Path, stream: str) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m[2]) for m in map(_SEGMENT.match, names) if m is not None and m[1] == stream)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
