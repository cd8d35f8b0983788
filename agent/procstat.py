"""CPU time of process groups, read from /proc: how the agent sees that a task is busy."""

from __future__ import annotations

import os


def cpu_ticks_by_group(groups: set[int]) -> dict[int, int]:
    """Clock ticks (user + system) used so far by the live processes of each group.

    Linux only; elsewhere every group reads 0. Blocking: scans /proc, so call it off the loop.
    """
    ticks = dict.fromkeys(groups, 0)
    try:
        entries = os.listdir("/proc")
    except OSError:
        return ticks
    for entry in entries:
        if entry.isdigit():
            _add_process(ticks, entry)
    return ticks


def _add_process(ticks: dict[int, int], pid: str) -> None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name may contain spaces and parentheses: fields start after the last ")".
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return  # the process ended meanwhile
    group = int(fields[2])
    if group in ticks:
        ticks[group] += int(fields[11]) + int(fields[12])
