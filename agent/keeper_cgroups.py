"""The keeper's attempt cgroups: made under the keeper's own (cgroups.keeper_dir), kept once
an attempt has ended and emptied them for the next attempts, and removed as the keeper exits.

Making and removing a cgroup is most of what one costs per attempt, and then opening its files:
the three the hot path uses (the cgroup's directory, which a command is born into by clone3;
cgroup.procs, written to join the cgroup where it cannot be; and cgroup.events, which says
whether anything is left in it as the attempt ends) are opened once per cgroup and used by
every attempt that cgroup holds; a cgroup the keeper killed (cgroup.kill) has its next commands
move in rather than be born there (Pool.kill). Stdlib only: the keeper imports it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from . import cgroups

# Emptied cgroups kept for the next attempts, at most.
SPARES = 64
_PROCS, _EVENTS, _DIR = 0, 1, 2


class Pool:
    """The cgroups of one keeper's attempts: in use, or spare (empty, for the next attempt)."""

    def __init__(self) -> None:
        self._dirs: dict[Path | None, str] = {}  # where the attempts' cgroups go, by base
        self._spares: dict[str, list[str]] = {}  # by the directory they are in
        self._files: dict[str, list[int]] = {}  # cgroup.procs, cgroup.events, the directory (-1: not open)
        # Emptied by cgroup.kill once: a command clone3 makes in one is killed as it is born
        # (agent/_spawn.c), so it joins by cgroup.procs instead.
        self._killed: set[str] = set()

    def take(self, found: cgroups.Containment, name: Callable[[], str], *, new: bool = False) -> str:
        """An empty cgroup for a new attempt: one an attempt that ended left, else (or if `new`)
        a new one named `name()` (raises OSError if it cannot be made)."""
        parent = self._dir(found)
        if new:  # a spare could not be joined: the others may have been swept away with it
            self._let_go_removed(parent)
        spares = self._spares.get(parent)
        cgroup = spares.pop() if spares and not new else cgroups.create(parent, name())
        try:  # its files now: one that cannot be opened refuses the start, not its clean-up
            for which in (_PROCS, _EVENTS, _DIR):
                self._file(cgroup, which)
        except OSError:
            self.remove(cgroup)  # (never left out of the pool, nor reused half open)
            raise
        return cgroup

    def give_back(self, cgroup: str, *, reuse: bool = True, empty: bool = False) -> None:
        """An attempt's cgroup, empty now (`empty`: what the command left was killed as it
        exited; else it is read): kept for the next attempt, up to SPARES, else removed."""
        spares = self._spares.setdefault(cgroup.rpartition("/")[0], [])
        if reuse and len(spares) < SPARES and (empty or not self.populated(cgroup)):
            spares.append(cgroup)
        else:
            self.remove(cgroup)

    def joiner(self, cgroup: str) -> tuple[int, int]:
        """The cgroup's cgroup.procs (writing b"0" moves the writer into the cgroup) and its
        directory (a clone3 into it makes the child there; -1 once it was killed), open."""
        return self._file(cgroup, _PROCS), -1 if cgroup in self._killed else self._file(cgroup, _DIR)

    def kill(self, cgroup: str) -> None:
        """SIGKILL every process in the cgroup (cgroups.kill); its next commands join it by
        cgroup.procs (joiner)."""
        self._killed.add(cgroup)
        cgroups.kill(cgroup)

    def populated(self, cgroup: str) -> bool:
        """Whether a process (not a zombie) is in the cgroup or below it (cgroups.populated)."""
        try:
            return b"populated 1" in os.pread(self._file(cgroup, _EVENTS), 4096, 0)
        except (FileNotFoundError, ProcessLookupError):
            return False  # removed: nothing is in it
        except OSError as exc:
            if exc.errno == errno.ENODEV:  # removed while open
                return False
            return True  # unknown (EMFILE...): never taken for empty, so it is killed and read again

    def remove(self, cgroup: str) -> None:
        self._killed.discard(cgroup)
        for fd in self._files.pop(cgroup, ()):
            if fd >= 0:
                os.close(fd)
        cgroups.remove(cgroup)

    def close(self, bases: list[Path | None]) -> None:
        """Remove the spare cgroups, and the keeper's own under each of these bases."""
        for spares in self._spares.values():
            for cgroup in spares:
                self.remove(cgroup)
        self._spares.clear()
        for base in bases:
            if base is not None:
                cgroups.remove(cgroups.keeper_dir(base))

    def _let_go_removed(self, parent: str) -> None:
        """Forget the spares under `parent` that were removed from outside (their open files
        lead nowhere: a command could not join them)."""
        spares = self._spares.get(parent, [])
        for cgroup in [c for c in spares if not os.path.isdir(c)]:
            spares.remove(cgroup)
            self.remove(cgroup)

    def _file(self, cgroup: str, which: int) -> int:
        files = self._files.setdefault(cgroup, [-1, -1, -1])
        if files[which] < 0:
            if which == _PROCS:
                files[which] = cgroups.joiner(cgroup)
            elif which == _DIR:
                files[which] = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            else:
                files[which] = os.open(os.path.join(cgroup, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
        return files[which]

    def _dir(self, found: cgroups.Containment) -> str:
        """Where this keeper makes its attempts' cgroups (cgroups.create makes it at the first)."""
        if found.base not in self._dirs:
            self._dirs[found.base] = str(cgroups.keeper_dir(found.base))
        return self._dirs[found.base]
