"""The agent's state directory: one subdirectory per command attempt, locked to one agent.

`<work-dir>/.jobplane-agent/<name>/` by default. A command attempt's directory holds its pid
and exit status (see commands.py); an external attempt's, the outside scheduler's job id and
what polling it takes (see external_record.py). It is removed once the server has acknowledged
the attempt's result, so what a new agent process finds there after a crash is exactly the
work the old one had not finished reporting. Attempts' output is kept apart, under `logs/`
(logstore.py), until --log-retention.

Making a directory and a file costs more than anything else the keeper does for an attempt on
most file systems, so a reported command attempt's directory is not removed but emptied (its
state file cut to one byte, the rest unlinked) and moved to `spare/`, off the event loop; a new
attempt's start names one (`spare`) for the keeper to rename into place instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from pathlib import Path

from . import logstore
from .commands import Leftover, read_leftover
from .keeper_attempts import STATE_FILE
from .config import AgentConfig
from .errors import AgentError

if TYPE_CHECKING:
    from .external_record import ExternalRecord

log = logging.getLogger(__name__)

AttemptKey = tuple[str, int]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
SPARE = "spare"
# Emptied attempt directories kept for reuse, at most.
_SPARES_KEPT = 64
_ENTRY = re.compile(r"^(?P<task>.+)\.(?P<attempt>\d+)$")


def default_state_dir(work_dir: str, name: str) -> str:
    """Where an agent named `name` keeps its attempts when not told otherwise."""
    return os.path.join(work_dir, ".jobplane-agent", _UNSAFE.sub("_", name))


def state_root(config: AgentConfig) -> str:
    """The agent's state directory: --state-dir, else the default for its work dir and name."""
    return config.state_dir or default_state_dir(config.work_dir, config.name)


class StateLocked(AgentError):
    """Another running agent uses the same state directory."""


class StateDir:
    """Attempt directories under one root, which one agent process holds a lock on."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self._lock_fd: int | None = None
        self._doomed: set[Path] = set()
        self._made: set[AttemptKey] = set()  # attempts given a directory, not yet discarded
        self._sweeper: asyncio.Task[None] | None = None  # the sweep under way, if one is
        self._spares: list[str] = []  # emptied attempt directories under spare/, to reuse
        self._spare_names = itertools.count()

    def lock(self) -> None:
        """Take the directory for this process; raises StateLocked if another agent has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateLocked(f"another agent is running with state directory {self.root}; "
                              "give this one another --name or --state-dir") from None
        self._lock_fd = fd
        # Spares an earlier process left (the keeper may have taken one meanwhile: it then
        # makes the directory instead).
        with contextlib.suppress(FileNotFoundError):
            self._spares = [str(self.root / SPARE / name) for name in os.listdir(self.root / SPARE)]

    def spare(self) -> str:
        """An emptied attempt directory for the keeper to rename into place, or "" if none."""
        return self._spares.pop() if self._spares else ""

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def attempt_dir(self, key: AttemptKey) -> str:
        """The directory of one attempt (created by the command runner)."""
        self._made.add(key)
        return self._path(key)

    def _path(self, key: AttemptKey) -> str:
        task_id, attempt = key
        return f"{self.root}{os.sep}{_UNSAFE.sub('_', task_id)}.{attempt}"

    def log_dir(self, key: AttemptKey) -> Path:
        """Where an attempt's output is kept (logstore.py); it outlives the attempt directory."""
        return logstore.log_dir(self._path(key))

    def log_dir_of(self, key: AttemptKey) -> str:
        """log_dir as a str (for a Python call: no Path made per attempt)."""
        return logstore.log_dir_of(self._path(key))

    def sweep_logs(self, retention: float, held: Iterable[AttemptKey]) -> list[str]:
        """Remove the output of attempts not held and not written for `retention` seconds
        (blocking); the names removed."""
        return logstore.sweep(self.root, retention, {Path(self._path(key)).name for key in held})

    def log_bytes(self) -> int:
        """Bytes of attempts' output kept under `logs/`."""
        return logstore.kept_bytes(self.root)

    def leftovers(self) -> dict[AttemptKey, Leftover | ExternalRecord]:
        """What earlier agent processes left: attempts running or finished but not reported.

        Every external attempt with a readable record is kept, submitted or not (the agent
        decides what to make of it). Directories of commands that never started, whose
        command is gone without an exit status, or that the keeper killed because no agent held
        their lease (`lost`), are removed: the server hands those attempts on when we do not
        claim them.
        """
        found: dict[AttemptKey, Leftover | ExternalRecord] = {}
        for entry in sorted(self.root.iterdir()):
            match = _ENTRY.match(entry.name)
            if not entry.is_dir() or match is None:
                continue
            leftover = _leftover(entry)
            if leftover is not None:
                key = (match["task"], int(match["attempt"]))
                found[key] = leftover
                self._made.add(key)
            else:
                _remove_all([entry])
        return found

    def drop(self, keys: Iterable[AttemptKey]) -> None:
        """Remove these attempts' directories now (blocking): no later agent process may adopt
        or report them."""
        keys = list(keys)
        self._made.difference_update(keys)
        _remove_all(Path(self._path(key)) for key in keys)

    def discard(self, keys: Iterable[AttemptKey]) -> None:
        """Remove these attempts' directories soon, off the event loop, in batches: emptied and
        kept as spares, up to a number, the rest removed."""
        for key in keys:
            if key in self._made:
                self._made.discard(key)
                self._doomed.add(self._path(key))
        if self._doomed and self._sweeper is None:
            # (held here: the loop keeps only a weak reference to a task)
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        try:
            while self._doomed:
                batch, self._doomed = self._doomed, set()
                room = max(0, _SPARES_KEPT - len(self._spares))
                names = [f"{self.root}{os.sep}{SPARE}{os.sep}{os.getpid()}-{next(self._spare_names)}"
                         for _ in range(min(room, len(batch)))]
                self._spares += await asyncio.to_thread(_empty_or_remove, batch, names)
        finally:
            self._sweeper = None


def _leftover(attempt_dir: Path) -> Leftover | ExternalRecord | None:
    """What an attempt's directory holds worth adopting; None if nothing."""
    from .external_record import has_record, read_record  # not loaded by an agent that has none

    if has_record(attempt_dir):
        record = read_record(attempt_dir)
        if record is None:
            log.warning("dropping %s: its external record cannot be read", attempt_dir)
        return record
    leftover = read_leftover(attempt_dir)
    if leftover.lost:
        log.info("dropping %s: the keeper killed it while no agent held it", attempt_dir)
        return None
    if leftover.exit_status is not None or leftover.alive():
        return leftover
    return None


def _empty_or_remove(paths: Iterable[str], spares: list[str]) -> list[str]:
    """Empty attempt directories and move them to the `spares` names (as many as there are
    names); remove the rest. The spares made."""
    made: list[str] = []
    for path in paths:
        if len(made) < len(spares) and _empty(path, spares[len(made)]):
            made.append(spares[len(made)])
        else:
            _remove_all([path])
    return made


def _empty(path: str, spare: str) -> bool:
    """Truncate the state file, unlink the rest, move the directory to `spare`; False (and
    nothing moved) if it holds a directory, or cannot be emptied."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name == STATE_FILE and entry.is_file(follow_symlinks=False):
                    # Cut to its first byte: no complete line, so no pid, until the keeper
                    # writes the next over it (not to nothing: ext4 then writes the file out
                    # as the keeper closes it, and allocates and frees its block each time).
                    os.truncate(entry.path, 1)
                elif entry.is_dir(follow_symlinks=False):
                    return False
                else:
                    os.unlink(entry.path)
        try:
            os.rename(path, spare)
        except FileNotFoundError:  # the first spare: spare/ is made
            os.makedirs(os.path.dirname(spare), exist_ok=True)
            os.rename(path, spare)
        return True
    except OSError:
        return False


def _remove_all(paths: Iterable[Path | str]) -> None:
    """Remove attempt directories: a few files each (its state file, a checkpoint), unlinked
    directly; one that holds more (a directory a task made there) goes through shutil."""
    for path in paths:
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    os.unlink(entry.path)
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            import shutil  # rarely needed: it loads bz2 and lzma

            shutil.rmtree(path, ignore_errors=True)
