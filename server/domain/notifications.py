"""Notifications, what the engine records: when a job's normalized status becomes one its
`notify` entries name, a Delivery (an outbox row) joins the same batch as the status change,
so it is committed with it and a crash between the change and the delivery loses nothing.
Delivering is server/notify.py's (off the event loop); its outcome comes back through
`settle`, a write in a batch like any other, recorded as an event of the job.

A component of Engine: it keeps each unfinished job's last status, to tell a change from the
same status shown anew and to say what the status was before."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import InvalidArgument
from .limits import MAX_TEXT, check_arg, check_entries, shown
from .model import JOB_DONE, Event, EventKind, Notify, Status

if TYPE_CHECKING:
    from .engine import Engine
    from .state import JobRt

MAX_NOTIFY = 8  # notify entries of one job
MAX_NOTIFY_ARGS = 64  # arguments of a notify command
PENDING, DELIVERED, GAVE_UP = 0, 1, 2
# raw_status of the events that say how a delivery went (they change no status themselves)
DELIVERED_RAW, GAVE_UP_RAW = "NOTIFIED", "NOTIFY_GAVE_UP"
STATUS_NAMES = tuple(s.name for s in Status)


@dataclass(frozen=True)
class Delivery:
    """One notification to deliver (PENDING) or delivered (DELIVERED) or given up (GAVE_UP).
    Its id is "EVENT.INDEX": the status change's event id and the notify entry's index, or
    "EVENT.aRULE" for an alert rule's (alerts.py)."""

    id: str
    job_id: int
    notify: Notify
    status: str  # the status it tells of
    body: str  # the JSON document delivered, exactly as signed
    time: float
    state: int = PENDING
    attempts: int = 0
    error: str = ""
    end_time: float | None = None


def check_notify(entries: tuple[Notify, ...], path: str = "spec.notify") -> None:
    """Refuse entries that could never be delivered, naming the field and the fix."""
    check_entries(path, entries, MAX_NOTIFY)
    for i, n in enumerate(entries):
        at = f"{path}[{i}]"
        if not n.on:
            raise InvalidArgument(f"{at}.on", "is empty; name the statuses that trigger it, e.g. "
                                              "[FAILURE, LATE_TO_START]")
        check_destination(at, n)


def check_destination(path: str, n: Notify) -> None:
    """Refuse a notify entry (a job's, or an alert rule's) whose statuses or destination are bad."""
    _check_on(f"{path}.on", n.on)
    if bool(n.webhook) == bool(n.command):
        raise InvalidArgument(path, "set exactly one of webhook (a URL) and command (an argv list)")
    if n.webhook:
        _check_url(f"{path}.webhook", n.webhook)
    else:
        _check_command(f"{path}.command", n.command)


def _check_on(path: str, on: tuple[str, ...]) -> None:
    check_entries(path, on, len(STATUS_NAMES))
    for j, name in enumerate(on):
        if name not in STATUS_NAMES:
            raise InvalidArgument(f"{path}[{j}]", f"{shown(name)} is not a normalized status; use one of "
                                                  + ", ".join(STATUS_NAMES))


def _check_url(path: str, url: str) -> None:
    if len(url) > MAX_TEXT:
        raise InvalidArgument(path, f"is {len(url)} characters; a webhook URL may have at most {MAX_TEXT}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidArgument(path, f"{shown(url)} is not a URL ({exc}); use http://HOST[:PORT]/PATH") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(path, f"{shown(url)} is not an http or https URL; use http://HOST[:PORT]/PATH "
                                    "or https://HOST[:PORT]/PATH")
    if any(c.isspace() for c in url):
        raise InvalidArgument(path, f"{shown(url)} has white space; percent-encode it (%20)")


def _check_command(path: str, command: tuple[str, ...]) -> None:
    check_entries(path, command, MAX_NOTIFY_ARGS)
    for j, arg in enumerate(command):
        check_arg(f"{path}[{j}]", arg)
    if not command[0].startswith("/"):
        raise InvalidArgument(f"{path}[0]", f"{shown(command[0])} is not an absolute path; notify commands run "
                                            "on the server without a shell or PATH search: give e.g. /usr/local/bin/page")


class Notifications:
    """Records deliveries when a job's status changes to one its notify entries name."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.last: dict[int, Status] = {}  # unfinished job id -> the status its last event showed

    def restore(self, jobs: list[JobRt]) -> None:
        self.last = {job.id: job.status for job in jobs}

    def seen(self, event: Event) -> None:
        """A job event was recorded: a delivery for each notify entry its new status triggers."""
        if event.raw_status in (DELIVERED_RAW, GAVE_UP_RAW):
            return
        job = self.engine.jobs.get(event.job_id)
        if job is None:
            return
        previous = self.last.get(job.id)
        if job.state in JOB_DONE:
            self.last.pop(job.id, None)
        else:
            self.last[job.id] = event.status
        if event.status == previous:
            return
        outbox = self.engine.changes.notifications
        for i, notify in enumerate(job.spec.notify):
            if event.status.name in notify.on:
                outbox.append(Delivery(f"{event.id}.{i}", job.id, notify, event.status.name,
                                       _body(job, event, previous), event.time))
        for rule in self.engine.alerts.matching(job, event.status):  # server-wide rules (alerts.py)
            body = _body(job, event, previous, {"id": str(rule.id), "name": rule.label})
            outbox.append(Delivery(f"{event.id}.a{rule.id}", job.id, rule.notify, event.status.name, body,
                                   event.time))

    def settle(self, delivery: Delivery, delivered: bool, attempts: int, error: str = "") -> None:
        """How a delivery ended (delivered, or given up after its last attempt): its row and an event."""
        e = self.engine
        done = replace(delivery, state=DELIVERED if delivered else GAVE_UP, attempts=attempts, error=error,
                       end_time=e.now)
        e.changes.notifications.append(done)
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        message = (f"notified {delivery.notify.target} of {delivery.status} ({tries})" if delivered else
                   f"gave up notifying {delivery.notify.target} of {delivery.status} after {tries}: {error}")
        e.event(EventKind.JOB, job_id=delivery.job_id, raw_status=DELIVERED_RAW if delivered else GAVE_UP_RAW,
                status=Status[delivery.status], message=message, environment="jobplane",
                raw={"delivery": delivery.id, "target": delivery.notify.target, "attempts": str(attempts),
                     **_alert_of(delivery)})


def _alert_of(delivery: Delivery) -> dict[str, str]:
    """{"alert": RULE_ID} for an alert rule's delivery (its id is "EVENT.aRULE"), else {}."""
    which = delivery.id.partition(".")[2]
    return {"alert": which[1:]} if which.startswith("a") else {}


def _body(job: JobRt, event: Event, previous: Status | None, alert: dict[str, str] | None = None) -> str:
    """The document a destination receives (compact JSON, keys sorted: what is signed); an
    alert rule's also says which rule (`alert`: its id and name)."""
    counts = {k: v for k, v in job.counts.items() if k != "not_ok"}
    extra = {"alert": alert} if alert else {}
    return json.dumps({**extra,
        "event_id": event.id, "job_id": str(job.id), "name": job.name, "owner": job.owner,
        "status": event.status.name, "previous_status": previous.name if previous is not None else "",
        "time": datetime.fromtimestamp(event.time, timezone.utc).isoformat().replace("+00:00", "Z"),
        "counts": counts, "reason": job.reason, "labels": dict(job.spec.labels), "message": event.message,
    }, sort_keys=True, separators=(",", ":"))


__all__ = ["DELIVERED", "DELIVERED_RAW", "Delivery", "GAVE_UP", "GAVE_UP_RAW", "MAX_NOTIFY", "Notifications",
           "Notify", "PENDING", "check_notify"]
