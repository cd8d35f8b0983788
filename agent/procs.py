"""Processes as Linux shows them: start times and trees from /proc, and prctl(2) settings.

Stdlib only: the keeper and its guard import it, and they must not import gRPC.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36
# Between two rounds of a kill loop: long enough for SIGKILLed processes to exit.
_KILL_ROUND = 0.002


def _prctl(option: int, value: int | bytes) -> None:
    import ctypes  # only the keeper, its guard and Python workers call prctl: not the agent

    if ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"prctl({option}): {os.strerror(number)}")


def become_subreaper() -> None:
    """Orphans among this process's descendants become its children, not init's."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(signum: int) -> None:
    """Have the kernel send `signum` to this process when the thread that made it exits."""
    _prctl(_PR_SET_PDEATHSIG, signum)


def set_name(name: str) -> None:
    """The name `ps` and /proc/PID/comm show (15 bytes at most); best effort."""
    try:
        _prctl(_PR_SET_NAME, name.encode()[:15])
    except OSError:
        pass


def _stat(pid: int | str) -> list[bytes] | None:
    """/proc/PID/stat from field 3 (state) on; None if there is no such process."""
    try:
        # One read (the whole line is well under 4 KiB), without a file object: the keeper
        # reads each command's as it starts it.
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        # The command name may contain spaces and parentheses: fields start after the last ")".
        return data.rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks after boot): with its pid, it names one process
    for good, as pids are reused. None if there is no such process."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


# Clock ticks per second of /proc's start times (USER_HZ), and whether a start time can be told
# from CLOCK_BOOTTIME: the kernel counts it as nanoseconds of that clock, floored to a tick.
_TICKS = os.sysconf("SC_CLK_TCK")
_TOLD = 1_000_000_000 % _TICKS == 0
# How many starts started_between checks against /proc before it trusts the clock (a kernel
# that counts otherwise turns the clock off for good, with a warning).
_CHECKS = 8
_checked = 0


def boot_ns() -> int:
    """CLOCK_BOOTTIME, in nanoseconds: the clock the kernel stamps a process's start with."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def started_between(pid: int, before: int, after: int) -> int | None:
    """start_time(pid) of a child this process made between two boot_ns() readings: the clock
    tick both fall in, without reading /proc/PID/stat, which waits while the child is still in
    its exec (traced under load: half of the keeper's reads, ~0.3 ms each); read when a tick
    ends between them."""
    global _TOLD, _checked
    tick = before * _TICKS // 1_000_000_000
    if not _TOLD or tick != after * _TICKS // 1_000_000_000:
        return start_time(pid)
    if _checked < _CHECKS:
        _checked += 1
        read = start_time(pid)
        if read != tick:
            _TOLD = False
            logging.getLogger(__name__).warning(
                "process start times do not follow CLOCK_BOOTTIME here (%s read, %s from the clock): "
                "read from /proc from now on", read, tick)
            return read
    return tick


def parents(*, living: bool = False) -> dict[int, int]:
    """The parent of every process by pid; zombies too unless `living`."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(entry)
            if fields is not None and not (living and fields[0] == b"Z"):
                table[int(entry)] = int(fields[1])
    return table


def has_children() -> bool:
    """Whether this process has a child (running or not yet reaped); a cheap syscall."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def descendants(roots: Iterable[int], table: dict[int, int], skip: Iterable[int] = ()) -> list[int]:
    """Every process below `roots` (not the roots themselves), leaving out the subtrees of `skip`."""
    children: dict[int, list[int]] = {}
    for pid, parent in table.items():
        children.setdefault(parent, []).append(pid)
    skipped = set(skip)
    found: list[int] = []
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in skipped:
                found.append(child)
                todo.append(child)
    return found


def send(pids: Iterable[int], signum: int) -> None:
    """Signal each process; one that is gone already is no error."""
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def reap_children() -> dict[int, int]:
    """Reap every child that has ended; their wait statuses by pid."""
    ended = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended[pid] = status


def kill_until_gone(targets: Callable[[], list[int]], reap: Callable[[], None],
                    deadline: float) -> bool:
    """SIGKILL what `targets()` lists, reaping between rounds, until it lists nothing: processes
    a dying one forks meanwhile are in the next round. False if some outlived the deadline
    (a process in uninterruptible sleep)."""
    while True:
        pids = targets()
        if not pids:
            return True
        send(pids, signal.SIGKILL)
        reap()
        if time.monotonic() > deadline:
            return False
        time.sleep(_KILL_ROUND)


def kill_tree(root: int, deadline: float, *, reap: Callable[[], None] = lambda: None) -> bool:
    """SIGKILL everything below `root` (a subreaper), then `root` unless it is this process.
    `root` is stopped meanwhile, so what it holds cannot fall to init as it dies. False if
    some process outlived the deadline."""
    own = root == os.getpid()
    if not own:
        send([root], signal.SIGSTOP)
    gone = kill_until_gone(lambda: descendants([root], parents(living=True)), reap, deadline)
    if not own:
        send([root], signal.SIGKILL)
    return gone


def stop_all(targets: Callable[[], list[int]], deadline: float) -> list[int]:
    """SIGSTOP what `targets()` lists, round after round until no new process shows up (a fork
    racing the first round is caught by the next); returns what was stopped, for SIGCONT."""
    stopped: list[int] = []
    while time.monotonic() < deadline:
        fresh = [pid for pid in targets() if pid not in stopped]
        if not fresh:
            break
        send(fresh, signal.SIGSTOP)
        stopped += fresh
    return stopped


def unstopped(pids: Iterable[int], deadline: float) -> list[int]:
    """Wait until each of these processes shows stopped (T) in /proc or is gone, sending
    SIGSTOP again each round to those that do not; the ones still running at the deadline.

    A process in vfork (a shell starting a command: uninterruptible, D, until its child has
    exec'd) cannot stop while that child is stopped before its exec: such a child is continued,
    so that it execs and lets its parent stop, and stopped again the round after. (A stopped
    child whose parent is in D for another reason, waiting on a disk, runs a round too.)"""
    pids = list(pids)
    left = pids
    while True:
        rows = {pid: fields for pid in left if (fields := _stat(pid)) is not None}
        left = [pid for pid, fields in rows.items() if fields[0] not in (b"T", b"Z")]
        if not left or time.monotonic() > deadline:
            send(left, signal.SIGSTOP)  # (one continued in the last round stops again)
            return left
        in_vfork = {pid for pid in left if rows[pid][0] == b"D"}
        held = _stopped_children(pids, in_vfork) if in_vfork else []
        time.sleep(_KILL_ROUND)
        send(held, signal.SIGCONT)
        send(left, signal.SIGSTOP)
        left += held  # watched again, to be stopped once they have exec'd


def _stopped_children(pids: list[int], parents: set[int]) -> list[int]:
    """Those of `pids` that are stopped (T) children of `parents`."""
    return [pid for pid in pids if (fields := _stat(pid)) is not None
            and fields[0] == b"T" and int(fields[1]) in parents]


class Row(NamedTuple):
    """A living process as /proc/PID/stat shows it."""

    ppid: int
    pgid: int
    sid: int
    start: int


def _row(pid: int | str) -> Row | None:
    fields = _stat(pid)
    if fields is None or fields[0] == b"Z":
        return None
    return Row(int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))


def table() -> dict[int, Row]:
    """Every living process (not zombies): parent, group, session and start time, by pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (row := _row(entry)) is not None:
            found[int(entry)] = row
    return found


class Table:
    """The process table as `table()` gives it, read again only where it may have changed:
    the processes below `root` (a subreaper: what joins its tree is born in it or falls to
    it), and the pids allocated since the last read (ns_last_pid). A process outside the tree
    stays outside (orphans fall to a subreaper above them, or init), so its row is kept until
    its pid is allocated again. The whole table is read again at least every `period` (a pid
    space cycled through between two reads would go unseen otherwise)."""

    def __init__(self, root: int, period: float | None = None) -> None:
        self.root = root
        self.rows: dict[int, Row] = {}
        self.mark: int | None = None
        self.period = _PID_CYCLE_SECONDS * _pid_max() / 32768 if period is None else period
        self.whole_at = 0.0

    def read(self) -> dict[int, Row]:
        mark, now = _last_pid(), time.monotonic()
        entries = [int(e) for e in os.listdir("/proc") if e.isdigit()]
        last = _last_pid()
        whole = self.mark is None or mark is None or last is None or now - self.whole_at > self.period
        if whole:
            self.whole_at = now
            ours: set[int] = set()
        else:
            ours = set(descendants([self.root], {p: r.ppid for p, r in self.rows.items()}))
        rows = {}
        for pid in entries:
            row = self.rows.get(pid)
            if whole or row is None or pid in ours or _since(pid, self.mark, last):
                row = _row(pid)
            if row is not None:
                rows[pid] = row
        self.rows, self.mark = rows, mark
        return rows


# How long at least it takes to cycle through 32768 pids (a fork rate no machine sustains).
_PID_CYCLE_SECONDS = 0.5


def _since(pid: int, mark: int | None, last: int) -> bool:
    """Whether `pid` was allocated after `mark`, up to `last` (pids wrap around)."""
    if mark is None:
        return True
    return mark < pid <= last if mark <= last else (pid > mark or pid <= last)


def _last_pid() -> int | None:
    try:
        with open("/proc/sys/kernel/ns_last_pid", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


@functools.cache
def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 4 * 1024 * 1024


def environ_value(pid: int, name: str) -> str | None:
    """The value of `name` in the environment the process was started with; None if it has
    none (or is gone, or is not ours to read)."""
    prefix = name.encode() + b"="
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            entries = f.read().split(b"\0")
    except OSError:
        return None
    for entry in entries:
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None


def wait_status(pidfd: int, *, reap: bool) -> int | None:
    """The exit status (as exit_status gives it) of the child behind `pidfd`, None while it
    runs; reaped only if `reap` (a zombie keeps its pid, and so its session, from reuse)."""
    flags = os.WEXITED | os.WNOHANG | (0 if reap else os.WNOWAIT)
    try:
        found = os.waitid(os.P_PIDFD, pidfd, flags)
    except ChildProcessError:
        return None
    if found is None or found.si_pid == 0:
        return None
    if found.si_code == os.CLD_EXITED:
        return found.si_status
    return -found.si_status


def exit_status(wait_status: int) -> int:
    """A wait status as the exit file keeps it: the exit code, or -N for signal N."""
    return os.waitstatus_to_exitcode(wait_status)
