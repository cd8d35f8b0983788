"""How attempts are contained: a cgroup v2 per attempt where the machine allows it, else the
keeper's guard as the subreaper of every process the attempt starts (keeper_guard.py).

A cgroup is a container no process leaves by forking, double-forking or starting a session of
its own, and `cgroup.kill` empties it in one step. It needs a writable cgroup2 hierarchy and
Linux 5.14 or later (for cgroup.kill). Attempts' cgroups go under `jobplane/keeper-PID/` at the
root of the cgroup2 mount (/sys/fs/cgroup on most machines, /sys/fs/cgroup/unified on hybrid
ones). Stdlib only: the keeper imports it.
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP, SUBREAPER, AUTO = "cgroup", "subreaper", "auto"
CHOICES = (AUTO, CGROUP, SUBREAPER)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Containment:
    """The mechanism in force, why, and (for cgroups) where attempts' cgroups go."""

    kind: str
    why: str
    base: Path | None = None

    def describe(self) -> str:
        return f"{self.kind} ({self.why})"


def detect(wanted: str = AUTO) -> Containment:
    """The containment `wanted` (auto, cgroup or subreaper) comes to on this machine."""
    if wanted == SUBREAPER:
        return Containment(SUBREAPER, "chosen with --containment subreaper")
    mount = cgroup2_mount()
    if mount is None:
        return Containment(SUBREAPER, "no cgroup2 file system is mounted")
    base = mount / "jobplane"
    try:
        base.mkdir(exist_ok=True)
    except OSError as exc:
        return Containment(SUBREAPER, f"cannot create {base}: {exc.strerror}")
    if not (base / "cgroup.kill").exists():
        return Containment(SUBREAPER, "this kernel has no cgroup.kill (it needs Linux 5.14)")
    if not os.access(base / "cgroup.procs", os.W_OK) or not os.access(base, os.W_OK):
        return Containment(SUBREAPER, f"{base} is not writable")
    try:
        _try_a_move(base)
    except OSError as exc:
        return Containment(SUBREAPER, f"cannot move processes into {base}: {exc.strerror}")
    return Containment(CGROUP, f"a cgroup v2 per attempt under {base}", base)


def _try_a_move(base: Path) -> None:
    """Move this process into a new cgroup under `base` and back, as the keeper does for each
    command it spawns; raises OSError if the machine does not allow it."""
    probe = base / f"probe-{os.getpid()}"
    home = current()
    probe.mkdir(exist_ok=True)
    try:
        join(probe)
        join(home)
    finally:
        remove(probe)


def cgroup2_mount() -> Path | None:
    """Where the cgroup2 hierarchy is mounted, from /proc/self/mountinfo; None if nowhere."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        # ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            return Path(before.split()[4].replace("\\040", " "))
    return None


def keeper_dir(base: Path, pid: int = 0) -> Path:
    """The cgroup under which a keeper process (this one by default) puts its attempts' cgroups."""
    return base / f"keeper-{pid or os.getpid()}"


def create(parent: Path | str, name: str) -> str:
    """A new cgroup for one attempt under `parent` (created too if need be)."""
    path = os.path.join(parent, _UNSAFE.sub("_", name)[:120])
    try:
        os.mkdir(path)
    except FileNotFoundError:  # the keeper's first attempt (or its cgroup was swept away)
        os.makedirs(parent, exist_ok=True)
        os.mkdir(path)
    return path


def join(cgroup: Path | str) -> None:
    """Move the calling process into the cgroup; its children are born there."""
    _write(os.path.join(cgroup, "cgroup.procs"), b"0")


def joiner(cgroup: Path | str) -> int:
    """A descriptor of the cgroup's cgroup.procs: writing b"0" to it moves the calling process
    there (what `join` does, without opening the file each time)."""
    return os.open(os.path.join(cgroup, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)


def current() -> Path:
    """The cgroup v2 this process is in (an absolute path under the mount)."""
    mount = cgroup2_mount()
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::") and mount is not None:
            return Path(f"{mount}{line[3:]}")
    raise OSError(errno.ENOENT, "this process is in no cgroup v2")


def populated(cgroup: Path | str) -> bool:
    """Whether a process (not a zombie) is in the cgroup or below it."""
    try:
        return b"populated 1" in _read(os.path.join(cgroup, "cgroup.events"))
    except OSError:
        return False


def members(cgroup: Path | str) -> list[int]:
    """Processes in the cgroup (not zombies); none if it is gone."""
    try:
        return [int(pid) for pid in _read(os.path.join(cgroup, "cgroup.procs")).split()]
    except OSError:
        return []


def kill(cgroup: Path | str) -> None:
    """SIGKILL every process in the cgroup, those it forks meanwhile included."""
    try:
        _write(os.path.join(cgroup, "cgroup.kill"), b"1")
    except OSError:
        pass  # removed already: nothing is left in it


def freeze(cgroup: Path | str, frozen: bool) -> None:
    """Freeze (or thaw) every process in the cgroup, those it forks meanwhile included."""
    try:
        _write(os.path.join(cgroup, "cgroup.freeze"), b"1" if frozen else b"0")
    except OSError:
        pass  # removed already: nothing is left in it


def wait_frozen(cgroup: Path | str, deadline: float) -> bool:
    """Until every process in the cgroup is frozen (or the deadline, monotonic); whether it is."""
    while True:
        try:
            if b"frozen 1" in _read(os.path.join(cgroup, "cgroup.events")):
                return True
        except OSError:
            return True  # removed: nothing is left in it
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)


def remove(cgroup: Path | str) -> None:
    """Remove an empty cgroup; one still in use (or gone) is left as it is."""
    try:
        os.rmdir(cgroup)
    except OSError:
        pass


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def sweep(base: Path) -> None:
    """Remove the empty cgroups of keepers that have ended (a keeper killed with SIGKILL)."""
    try:
        entries = list(base.glob("keeper-*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name.removeprefix("keeper-")
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            for child in entry.iterdir() if entry.is_dir() else ():
                if child.is_dir():
                    remove(child)
            remove(entry)
