"""The console's HTML: plain server-rendered pages (escaped here, in one place), which
static/console.js refreshes when the event stream says something changed."""

from __future__ import annotations

import time
from html import escape
from collections.abc import Sequence
from urllib.parse import quote, urlencode

from jobplane.v1 import job_pb2, task_pb2, view_pb2

from ..domain.model import Status

ATTENTION = ("FAILURE", "LATE_TO_START", "RUNNING_LATE", "ON_HOLD")
BAR = ("success", "running", "waiting", "failure", "cancel")  # TaskCounts fields, in bar order


def status_name(value: int) -> str:
    return Status(value).name if value in Status._value2member_map_ and value else "UNSPECIFIED"


def badge(value: int) -> str:
    name = status_name(value)
    return f'<span class="status s-{name.lower()}">{name}</span>'


def when(ts) -> str:
    if not ts.seconds and not ts.nanos:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts.seconds)) + "Z"


def pairs(values) -> str:
    """A map as `k=v k=v`, sorted, escaped."""
    return escape(" ".join(f"{k}={v}" for k, v in sorted(values.items())))


def code(text: str) -> str:
    return f"<code>{escape(text)}</code>" if text else ""


def layout(title: str, main: str, *, who: str = "", live: dict[str, str] | None = None, extra: str = "",
           after: str = "") -> str:
    """A whole page. `live`: data attributes console.js reads (events=URL of the event stream,
    or poll=seconds); `extra` goes before <main>, `after` after it: neither is refreshed (a form
    being typed into, the live event log)."""
    attrs = "".join(f' data-{k}="{escape(v)}"' for k, v in (live or {}).items())
    nav = ""
    if who:
        # Continuations are refused to submitters (the API's rule): no link for them (web.who names the role).
        continuations = "" if who.endswith("(submitter)") else '<a href="/continuations">Continuations</a> '
        nav = (f'<nav><a href="/">Dashboard</a> <a href="/jobs">Jobs</a> <a href="/providers">Providers</a> '
               f'{continuations}<a href="/conflicts">Conflicts</a>'
               f'<span class="who">{escape(who)}</span>'
               '<form method="post" action="/logout"><button>Sign out</button></form></nav>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · jobplane</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script>'
            f'</head><body{attrs}><header><a class="brand" href="/">jobplane</a>{nav}</header>'
            f'<h1>{escape(title)}</h1>{extra}<main id="main">{main}</main>{after}</body></html>')


def login(error: str = "", next_path: str = "/") -> str:
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    form = (f'{problem}<form class="login" method="post" action="/login">'
            f'<input type="hidden" name="next" value="{escape(next_path)}">'
            '<label>API token <input type="password" name="token" autocomplete="current-password" required '
            'autofocus></label><button>Sign in</button></form>'
            '<p class="hint">An API token from <code>jobplane tokens create</code> (the first admin token is '
            '<code>DATA_DIR/admin.token</code>). It is kept in an HTTP-only cookie until you sign out.</p>')
    return layout("Sign in", form)


def error_page(status: int, message: str, who: str = "") -> str:
    return layout(f"{status}", f'<p class="error">{escape(message)}</p>', who=who)


def dashboard(summary: job_pb2.SummarizeJobsResponse, attention: list[job_pb2.Job], more: bool = False) -> str:
    """`more`: there are more jobs needing attention than `attention` holds."""
    tiles = "".join(
        f'<a class="tile s-{status_name(c.status).lower()}" href="/jobs?{urlencode({"filter": "status=" + status_name(c.status)})}">'
        f'<span class="count">{c.count}</span><span class="label">{status_name(c.status)}</span></a>'
        for c in summary.counts)
    tiles = tiles or '<p class="empty">No jobs yet.</p>'
    rows = "".join(_attention_row(j) for j in attention)
    table = (f'<table class="jobs"><thead><tr><th>job</th><th>name</th><th>owner</th><th>status</th><th>reason</th>'
             f'</tr></thead><tbody>{rows}</tbody></table>' if rows else '<p class="empty">Nothing needs attention.</p>')
    if more:
        link = "/jobs?" + urlencode({"filter": "status=" + ",".join(ATTENTION)})
        table += f'<p><a class="more" href="{escape(link)}">All jobs that need attention</a></p>'
    return (f'<section class="tiles" id="counts"><span class="total">{summary.total} jobs</span>{tiles}</section>'
            f'<h2>Needs attention</h2><p class="hint">{", ".join(ATTENTION)}</p>{table}')


def _attention_row(j: job_pb2.Job) -> str:
    reason = j.hold or j.reason
    return (f'<tr><td><a href="/jobs/{escape(j.id)}">{escape(j.id)}</a></td><td>{escape(j.spec.name)}</td>'
            f'<td>{escape(j.owner)}</td><td>{badge(j.status)}</td><td class="reason">{escape(reason)}</td></tr>')


def filter_form(text: str, order_by: str, view: str, error: str, views: Sequence[view_pb2.View] = ()) -> str:
    """The job list's filter, the user's saved views (each a link and a delete button), and a form
    that saves the filter and order shown as a view."""
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    form = (f'<form class="filter" method="get" action="/jobs">'
            f'<input name="filter" value="{escape(text)}" placeholder="status=FAILURE,RUNNING label.team=etl submitted>=-1d" size="50">'
            f'<input name="order_by" value="{escape(order_by)}" placeholder="order: -submitted" size="16">'
            f'<input name="view" value="{escape(view)}" placeholder="saved view" size="12">'
            f'<button>Filter</button></form>{problem}')
    saved = "".join(
        f'<li class="view"><a href="/jobs?{escape(urlencode({"view": v.name}))}" title="{escape(v.filter)} '
        f'{escape(v.order_by)}">{escape(v.name)}</a><form method="post" action="/views/{escape(quote(v.name))}/delete">'
        f'<button class="delete-view" title="delete the view {escape(v.name)}">×</button></form></li>' for v in views)
    save = ('<form class="save-view" method="post" action="/views">'
            f'<input type="hidden" name="filter" value="{escape(text)}">'
            f'<input type="hidden" name="order_by" value="{escape(order_by)}">'
            '<input name="name" placeholder="view name" size="14" required pattern="[A-Za-z0-9._-]{1,64}">'
            '<button class="save-view">Save as view</button></form>')
    return f'{form}<section class="views"><ul id="views">{saved}</ul>{save}</section>'


def job_list(jobs: list[job_pb2.Job], next_link: str) -> str:
    if not jobs:
        return '<p class="empty">No jobs match.</p>'
    rows = "".join(
        f'<tr><td><a href="/jobs/{escape(j.id)}">{escape(j.id)}</a></td><td>{escape(j.spec.name)}</td>'
        f'<td>{escape(j.owner)}</td><td>{badge(j.status)}</td><td>{progress(j.counts)}</td>'
        f'<td>{when(j.submit_time)}</td><td class="reason">{escape(j.hold or j.reason)}</td></tr>' for j in jobs)
    more = f'<p><a class="more" href="{escape(next_link)}">Next page</a></p>' if next_link else ""
    return (f'<table class="jobs"><thead><tr><th>job</th><th>name</th><th>owner</th><th>status</th><th>tasks</th>'
            f'<th>submitted</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>{more}')


def progress(counts: job_pb2.TaskCounts) -> str:
    """A bar of the job's tasks by status (an SVG: no inline styles, so the CSP can forbid them)."""
    total = counts.total or 1
    x = 0.0
    rects = []
    for name in BAR:
        n = getattr(counts, name)
        if n:
            width = 100.0 * n / total
            rects.append(f'<rect class="b-{name}" x="{x:.3f}" width="{width:.3f}" height="10"><title>{n} {name}</title></rect>')
            x += width
    label = " · ".join(f"{getattr(counts, n)} {n}" for n in BAR if getattr(counts, n))
    return (f'<span class="progress"><svg viewBox="0 0 100 10" preserveAspectRatio="none" role="img" '
            f'aria-label="{escape(label)}">{"".join(rects)}</svg><span class="legend">'
            f'{escape(label or "no tasks")} of {counts.total}</span></span>')


def job_detail(job: job_pb2.Job, tasks: list[task_pb2.Task], next_link: str, *, actions: bool = False) -> str:
    """`actions`: the caller's role may cancel, hold and release (the API still decides)."""
    facts = [("status", badge(job.status)), ("state", job_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")),
             ("owner", escape(job.owner)), ("priority", str(job.spec.priority)),
             ("submitted", when(job.submit_time)), ("started", when(job.start_time)), ("ended", when(job.end_time))]
    if job.hold:
        facts.append(("held", escape(job.hold)))
    if job.reason:
        facts.append(("reason", escape(job.reason)))
    if job.spec.labels:
        facts.append(("labels", escape(" ".join(f"{k}={v}" for k, v in sorted(job.spec.labels.items())))))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    rows = "".join(_task_row(t) for t in tasks)
    more = f'<p><a class="more" href="{escape(next_link)}">More tasks</a></p>' if next_link else ""
    return (f'<dl class="facts">{dl}</dl>{job_actions(job, tasks) if actions else ""}'
            f'<section class="bar">{progress(job.counts)}</section>'
            f'<h2>Tasks</h2><table class="tasks"><thead><tr><th>task</th><th>name</th><th>status</th><th>raw</th>'
            f'<th>attempt</th><th>provider</th><th>exit</th><th>reason</th><th></th></tr></thead><tbody>{rows}</tbody>'
            '</table>'
            f'{more}')


def _task_row(t: task_pb2.Task) -> str:
    raw = task_pb2.TaskState.Name(t.state).removeprefix("TASK_STATE_")
    exit_code = str(t.exit_code) if t.HasField("exit_code") else ""
    return (f'<tr><td>{escape(t.id)}</td><td>{escape(t.name)}</td><td>{badge(t.status)}</td><td>{raw}</td>'
            f'<td>{t.attempt or ""}</td><td>{escape(t.provider_id)}</td><td>{exit_code}</td>'
            f'<td class="reason">{escape(t.reason or t.error)}</td>'
            f'<td><a class="task" href="/tasks/{escape(t.id)}">details</a> {_output_link(t)}</td></tr>')


def _output_link(t: task_pb2.Task) -> str:
    """A link to the task's output, once it has an attempt (its agent keeps the output)."""
    return f'<a class="output" href="/tasks/{escape(t.id)}/output">output</a>' if t.attempt else ""


RUNS = (task_pb2.TASK_STATE_ASSIGNED, task_pb2.TASK_STATE_RUNNING)
ENDED = (task_pb2.TASK_STATE_SUCCEEDED, task_pb2.TASK_STATE_FAILED, task_pb2.TASK_STATE_CANCELLED)


def job_actions(job: job_pb2.Job, tasks: Sequence[task_pb2.Task], back: str = "") -> str:
    """The buttons for a job that has not ended: cancel; release (resume, when tasks are paused
    in place) for a held job; else suspend and requeue while tasks run, and a plain hold while
    some unfinished task does not run (the API refuses a plain hold that would hold nothing).
    `back`: where to return after acting (default: the job's page)."""
    if job.state not in (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING):
        return ""
    base = f"/jobs/{escape(job.id)}"
    nxt = f'<input type="hidden" name="next" value="{escape(back)}">' if back else ""
    running = any(t.state in RUNS for t in tasks)
    if job.hold:
        label = "Resume" if running else "Release"
        hold = f'<form method="post" action="{base}/release">{nxt}<button class="release">{label}</button></form>'
    else:
        modes = (('<button class="suspend" name="mode" value="suspend" title="pause running tasks in place">Suspend'
                  '</button><button class="requeue" name="mode" value="requeue" title="stop running tasks and '
                  'queue them again, from their checkpoint">Requeue</button>') if running else "")
        if any(t.state not in RUNS and t.state not in ENDED for t in tasks) or not tasks:
            modes += '<button class="hold" name="mode" value="">Hold</button>'
        hold = (f'<form method="post" action="{base}/hold">{nxt}<input name="reason" placeholder="why hold" size="16">'
                f'{modes}</form>') if modes else ""
    return (f'<section class="actions"><form method="post" action="{base}/cancel">{nxt}'
            '<input name="reason" placeholder="why cancel" size="16"><button class="cancel">Cancel job</button>'
            f'</form>{hold}</section>')
