"""Following one job on a terminal: one live line of task counts per normalized status, with a
progress bar, elapsed time and ETA, redrawn in place; only the notable events (failures,
retries, continuations, holds, lateness, the job's end) are printed above it. Elsewhere (a
pipe, a file, `-o json`) every event is a line, as `watch` prints them.

A few lines of ANSI (carriage return, erase line, hide/show the cursor) rather than a terminal
library: the display is one line, and a dependency would not earn its place for that."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO

from jobplane.client import output
from jobplane.client.events import TERMINAL_JOB_STATUSES
from jobplane.v1 import event_pb2, job_pb2, task_pb2

# The order statuses appear in on the live line (those with no task are left out).
ORDER = ("RUNNING", "WAITING", "ON_HOLD", "LATE_TO_START", "RUNNING_LATE", "RESTART", "SUCCESS", "FAILURE",
         "CANCEL", "INACTIVE", "UNKNOWN")
OVER = ("SUCCESS", "FAILURE", "CANCEL")  # a task in one of these is done (until a rerun)
NOTABLE = frozenset({"FAILURE", "RESTART", "CANCEL", "ON_HOLD", "LATE_TO_START", "RUNNING_LATE", "UNKNOWN"})
CLEAR = "\r\x1b[2K"  # back to the start of the line, and erase it
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
REDRAW_EVERY = 0.1  # seconds: at most this often for events; the clock ticks once a second
BAR = 20

Show = Callable[[event_pb2.Event], None]


def is_terminal(out: TextIO) -> bool:
    """Whether `out` is a terminal that takes the live line."""
    return out.isatty() and os.environ.get("TERM", "") != "dumb"


@contextmanager
def event_lines(line: Callable[[event_pb2.Event], str], out: TextIO) -> Iterator[Show]:
    """Every event as a line (a pipe, a file, -o json, a watch of every job)."""
    def show(event: event_pb2.Event) -> None:
        print(line(event), file=out, flush=True)
    yield show


@contextmanager
def live_progress(job: job_pb2.Job, tasks: Iterable[task_pb2.Task], lines: output.EventLines,
                  out: TextIO) -> Iterator[Show]:
    """The live line for `job` on the terminal `out`, starting from its `tasks` as they stand,
    notable events above it. On leaving, the last state of the line stays on screen."""
    display = Progress(job, lines, out, tasks=tasks)
    display.start()
    try:
        yield display.show
    finally:
        display.stop()


class Progress:
    """The state behind the live line: each task's latest normalized status, from its events."""

    def __init__(self, job: job_pb2.Job, lines: output.EventLines, out: TextIO, *,
                 tasks: Iterable[task_pb2.Task] = (), clock: Callable[[], float] = time.time) -> None:
        self._total = job.counts.total
        self._since = job.submit_time.ToNanoseconds() / 1e9 if job.HasField("submit_time") else clock()
        self._ended: float | None = None
        # Each task's latest status: as listed, then as its events say (a watch --from a later
        # event still counts every task).
        self._statuses = {task.id: output.status(task.status) for task in tasks if task.status}
        self._retries: set[tuple[str, int]] = set()  # (task, attempt) whose start was shown
        self._fill = ("█", "░") if "utf" in (getattr(out, "encoding", "") or "").lower() else ("#", "-")
        self._lines = lines
        self._out = out
        self._clock = clock
        self._lock = threading.RLock()  # the ticker thread draws too
        self._drawn = 0.0
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def start(self) -> None:
        self._write(HIDE_CURSOR + self.line())
        self._ticker.start()

    def stop(self) -> None:
        self._stopped.set()
        self._ticker.join()
        self._write(CLEAR + self.line() + "\n" + SHOW_CURSOR)

    def show(self, event: event_pb2.Event) -> None:
        with self._lock:
            if event.kind == event_pb2.EVENT_KIND_TASK and event.task_id and event.status:
                self._statuses[event.task_id] = output.event_status(event)
            if event.kind == event_pb2.EVENT_KIND_JOB and event.raw_status in TERMINAL_JOB_STATUSES:
                self._ended = event.time.ToNanoseconds() / 1e9
            if is_notable(event) and not self._shown_retry(event):
                self._write(CLEAR + self._lines(event) + "\n" + self.line())
            elif self._clock() - self._drawn >= REDRAW_EVERY:
                self._write(CLEAR + self.line())

    def _shown_retry(self, event: event_pb2.Event) -> bool:
        """Whether `event` is a later RUNNING of a retry already shown (each is shown once)."""
        if event.kind != event_pb2.EVENT_KIND_TASK or output.event_status(event) != "RUNNING":
            return False
        key = (event.task_id, event.attempt)
        seen = key in self._retries
        self._retries.add(key)
        return seen

    def counts(self) -> Counter[str]:
        """Tasks per normalized status; a task with no event yet is WAITING."""
        counts = Counter(self._statuses.values())
        counts["WAITING"] += max(0, self._total - len(self._statuses))
        return counts

    def line(self) -> str:
        """`████████░░░░░░░░░░░░ 8/20  RUNNING 4  WAITING 8  SUCCESS 7  FAILURE 1  12s elapsed, ETA 18s`,
        cut to the terminal's width."""
        counts = self.counts()
        total = max(self._total, sum(counts.values()))
        done = sum(counts[status] for status in OVER)
        filled = BAR * done // total if total else 0
        full, empty = self._fill
        parts = [f"{full * filled}{empty * (BAR - filled)} {done}/{total}"]
        parts += [f"{status} {counts[status]}" for status in ORDER if counts[status]]
        parts.append(self._timing(done, total))
        width = shutil.get_terminal_size().columns - 1
        return "  ".join(parts)[:width]

    def _timing(self, done: int, total: int) -> str:
        now = self._ended if self._ended is not None else self._clock()
        elapsed = max(0.0, now - self._since)
        text = f"{output.duration(elapsed)} elapsed"
        if self._ended is None and 0 < done < total:
            text += f", ETA {output.duration(elapsed / done * (total - done))}"
        return text

    def _tick(self) -> None:
        while not self._stopped.wait(1.0):
            with self._lock:
                self._write(CLEAR + self.line())

    def _write(self, text: str) -> None:
        with self._lock:
            self._out.write(text)
            self._out.flush()
            self._drawn = self._clock()


def is_notable(event: event_pb2.Event) -> bool:
    """Worth a line above the live one: a task that went wrong or started again (a retry or a
    continuation), a continuation, and the job's own changes (held, late, ended)."""
    shown = output.event_status(event)
    if event.kind == event_pb2.EVENT_KIND_TASK:
        return shown in NOTABLE or (shown == "RUNNING" and event.attempt > 1)
    if event.kind == event_pb2.EVENT_KIND_JOB:
        return shown in NOTABLE or event.raw_status in TERMINAL_JOB_STATUSES
    return event.kind == event_pb2.EVENT_KIND_CONTINUATION
