"""What the server's log says of each committed event: one line, with the event's job, task,
attempt and provider ids as fields (`--log-format json` shows them as such). Jobs, providers,
continuations, policies and tasks that went wrong (failed, restarted, held, late, cancelled)
at INFO; the rest of the task events at DEBUG, so a busy server's INFO log stays readable."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from jobplane.logs import ids

from .domain.model import Event, EventKind, Status

log = logging.getLogger(__name__)

MESSAGE_CHARS = 500  # of an event's message, in its log line
NOTABLE_TASK_STATUSES = frozenset({Status.FAILURE, Status.RESTART, Status.CANCEL, Status.ON_HOLD,
                                   Status.LATE_TO_START, Status.RUNNING_LATE, Status.UNKNOWN})


def log_events(events: Iterable[Event]) -> None:
    """Log committed events (after their commit: the log never tells of what may be undone)."""
    debug = log.isEnabledFor(logging.DEBUG)
    if not (debug or log.isEnabledFor(logging.INFO)):
        return
    for event in events:
        level = logging.INFO if _notable(event) else logging.DEBUG
        if debug or level == logging.INFO:
            log.log(level, "%s", describe(event), extra=ids(job_id=event.job_id, task_id=event.task_id,
                                                            attempt=event.attempt, provider_id=event.provider_id,
                                                            event_id=event.id))


def _notable(event: Event) -> bool:
    return event.kind != EventKind.TASK or event.status in NOTABLE_TASK_STATUSES  # (an int or a Status: same hash)


def describe(event: Event) -> str:
    """`task 12 (build) attempt 1 FAILURE (FAILED) on a: exited with code 2`."""
    kind = EventKind(event.kind)
    if kind == EventKind.JOB:
        subject = f"job {event.job_id}"
    elif kind == EventKind.TASK:
        subject = f"task {event.task_id} ({event.task_name}) attempt {event.attempt}"
    elif kind == EventKind.PROVIDER:
        subject = f"provider {event.provider_id}"
    else:
        subject = kind.name.lower()
    status = Status(event.status).name
    text = f"{subject} {status}" + (f" ({event.raw_status})" if event.raw_status and event.raw_status != status else "")
    if event.provider_id and kind != EventKind.PROVIDER:
        text += f" on {event.provider_id}"
    if not event.message:
        return text
    message = " ".join(event.message.split())  # one line: a message may quote a task's output
    return f"{text}: {message[:MESSAGE_CHARS]}{'...' if len(message) > MESSAGE_CHARS else ''}"
