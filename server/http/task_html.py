"""A task's page in the console: what it is and asks for, its status (raw and normalized, through
the caller's policy), its checkpoint, and each attempt with provider, times, exit code, reason,
raw and normalized statuses and checkpoints; links to each attempt's output."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from jobplane.v1 import task_pb2

from .pages import badge, code, pairs, when


def task_page(task: task_pb2.Task) -> str:
    raw_state = task_pb2.TaskState.Name(task.state).removeprefix("TASK_STATE_")
    facts = [("job", f'<a href="/jobs/{escape(task.job_id)}">{escape(task.job_id)}</a>'),
             ("status", badge(task.status)), ("state", raw_state), ("environment", escape(task.environment)),
             ("raw", pairs(task.raw)), ("attempt", str(task.attempt or "")), ("provider", escape(task.provider_id)),
             ("exit code", str(task.exit_code) if task.HasField("exit_code") else ""),
             ("reason", escape(task.reason or task.error)), ("reruns", str(task.reruns or "")),
             ("checkpoint", code(task.checkpoint_json)), ("result", code(task.result_json))]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts if v)
    output = (f'<p><a class="output" href="/tasks/{escape(task.id)}/output">Live output</a></p>'
              if task.attempt else "")
    return (f'<dl class="facts">{dl}</dl>{output}<h2>Spec</h2>{spec_summary(task.spec)}'
            f'<h2>Attempts</h2>{attempts(task)}')


def spec_summary(spec: task_pb2.TaskSpec) -> str:
    """What the task runs and asks for, the fields that are set."""
    ran = " ".join(spec.command) or spec.python or ("external" if spec.HasField("external") else "")
    facts = [("runs", code(ran)), ("requires", pairs(spec.requires)), ("after", escape(", ".join(spec.after))),
             ("timeout", f"{spec.timeout_seconds:g}s" if spec.timeout_seconds else ""),
             ("expected", f"{spec.expected_seconds:g}s" if spec.expected_seconds else ""),
             ("max attempts", str(spec.max_attempts or "")),
             ("retry backoff", f"{spec.retry_backoff_seconds:g}s" if spec.retry_backoff_seconds else ""),
             ("cwd", escape(spec.cwd)), ("env", escape(", ".join(sorted(spec.env))))]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts if v)
    return f'<dl class="facts spec">{dl}</dl>' if dl else '<p class="empty">Nothing set.</p>'


def attempts(task: task_pb2.Task) -> str:
    if not task.attempts:
        return '<p class="empty">Not started yet.</p>'
    rows = "".join(_attempt_row(task.id, a) for a in task.attempts)
    return ('<table class="attempts"><thead><tr><th>#</th><th>provider</th><th>assigned</th><th>started</th>'
            '<th>ended</th><th>exit</th><th>status</th><th>raw</th><th>reason</th><th>checkpoint</th><th></th>'
            f'</tr></thead><tbody>{rows}</tbody></table>')


def _attempt_row(task_id: str, a: task_pb2.Attempt) -> str:
    exit_code = str(a.exit_code) if a.HasField("exit_code") else ""
    raw = " ".join(x for x in (escape(a.environment), pairs(a.raw)) if x)
    checkpoint = code(a.checkpoint_json)
    if a.resumed_from_json:
        checkpoint = f'from {code(a.resumed_from_json)}' + (f' · last {checkpoint}' if checkpoint else "")
    link = f"/tasks/{task_id}/output?" + urlencode({"attempt": a.number})
    return (f'<tr class="attempt"><td>{a.number}</td><td>{escape(a.provider_id)}</td><td>{when(a.assign_time)}</td>'
            f'<td>{when(a.start_time)}</td><td>{when(a.end_time)}</td><td>{exit_code}</td><td>{badge(a.status)}</td>'
            f'<td>{raw}</td><td class="reason">{escape(a.reason)}</td><td>{checkpoint}</td>'
            f'<td><a class="output" href="{escape(link)}">output</a></td></tr>')

