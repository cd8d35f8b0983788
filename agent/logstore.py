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
"""

from __future__ import annotations

import os
import re
import time
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
    return os.path.join(parent, LOGS, name)


class SegmentWriter:
    """Appends one stream to its segments, rotating at the segment size."""

    def __init__(self, directory: str | Path, stream: str, max_bytes: int) -> None:
        self.stream = stream
        self._prefix = os.path.join(directory, stream)
        self.size = segment_size(max_bytes)
        self.index, self.fill = 0, 0
        self.failed: OSError | None = None  # a write refused (disk full): the rest is dropped
        self._fd: int | None = None  # the first segment is made by the first write

    def _open(self, index: int) -> int:
        return os.open(f"{self._prefix}.{index}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    def write(self, data: bytes) -> None:
        """Append `data`; after a failed write, drop the rest (the command must never block)."""
        view = memoryview(data)
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
    return read_state(os.path.join(os.path.dirname(parent), name))[1] is not None


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
        if not os.path.isdir(directory):
            return None
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
        if entry.name in keep or not entry.is_dir():
            continue
        if _newest(entry) < cutoff:
            _remove_tree(entry)
            removed.append(entry.name)
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
