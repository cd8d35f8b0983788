"""HTML of the plane's pages: providers and their inventory, continuations and the what-if
plan, conflict rules and held jobs. Everything shown is escaped here."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import quote

from jobplane.client.conflicts import format_selector
from jobplane.client.output import capacity_use, slots_used
from jobplane.v1 import conflict_pb2, continuation_pb2, inventory_pb2, job_pb2, provider_pb2

from .pages import badge, code, job_actions, pairs, when
from .web import may_act_on, operates


def providers(listed: Sequence[provider_pb2.Provider], inventory: Sequence[inventory_pb2.InventoryEntry] | None,
              now: float) -> str:
    """`inventory`: None when the caller's role may not see it."""
    if not listed:
        return '<p class="empty">No provider has connected yet.</p>'
    rows = "".join(_provider_row(p, now) for p in listed)
    table = ('<table class="providers"><thead><tr><th>provider</th><th>state</th><th>slots</th><th>resources used</th>'
             '<th>last signal</th>'
             '<th>labels</th><th>facts</th></tr></thead>'
             f'<tbody>{rows}</tbody></table>')
    if inventory is None:
        return table + '<p class="hint">The inventory is shown to viewers, operators and admins.</p>'
    entries = "".join(
        f'<tr><td>{escape(e.provider_id)}</td><td>{escape(e.signature_id)}</td><td>{escape(e.description)}</td>'
        f'<td>{"present" if e.present else "absent"}</td><td>{pairs(e.details)}</td>'
        f'<td class="reason">{escape(e.reason)}</td><td>{when(e.scan_time)}</td></tr>' for e in inventory)
    listing = ('<table class="inventory"><thead><tr><th>provider</th><th>signature</th><th>description</th>'
               '<th>found</th><th>details</th><th>reason</th><th>scanned</th></tr></thead>'
               f'<tbody>{entries}</tbody></table>' if entries else '<p class="empty">No inventory scanned.</p>')
    return f'{table}<h2>Inventory</h2>{listing}'


def _provider_row(p: provider_pb2.Provider, now: float) -> str:
    state = provider_pb2.ProviderState.Name(p.state).removeprefix("PROVIDER_STATE_")
    drained = ' <span class="flag">drained</span>' if p.drained and state != "DRAINED" else ""
    f = p.facts
    facts = " · ".join(x for x in (escape(f.hostname), escape(f"{f.os}/{f.arch}" if f.os else ""),
                                   f"{f.cpu_count} CPUs" if f.cpu_count else "",
                                   f"{f.memory_bytes / 2**30:.1f} GiB" if f.memory_bytes else "",
                                   escape(f"Python {f.python_version}" if f.python_version else ""),
                                   escape(p.containment)) if x)
    return (f'<tr class="provider" id="provider-{escape(p.id)}"><td>{escape(p.id)}</td>'
            f'<td><span class="pstate p-{state.lower()}">{state}</span>{drained}</td>'
            f'<td>{escape(slots_used(p))}</td><td class="resources">{escape(capacity_use(p))}</td>'
            f'<td>{_age(p.last_seen_time, now)}</td>'
            f'<td>{pairs(p.labels)}</td><td>{facts}</td></tr>')


def _age(ts, now: float) -> str:
    """How long ago; console.js keeps it ticking from data-since (seconds since the epoch)."""
    if not ts.seconds:
        return ""
    seen = ts.seconds + ts.nanos / 1e9
    return f'<span class="age" data-since="{seen:.3f}" title="{when(ts)}">{max(0, now - seen):.0f}s ago</span>'


def plan_form(provider_ids: Sequence[str], chosen: str, at: str, problem: str) -> str:
    options = "".join(f'<option{" selected" if p == chosen else ""}>{escape(p)}</option>' for p in provider_ids)
    error = f'<p class="error">{escape(problem)}</p>' if problem else ""
    return ('<form class="filter plan" method="get" action="/continuations"><label>What if '
            f'<select name="plan">{options}</select> failed</label>'
            f'<input name="at" value="{escape(at)}" placeholder="at: now, or 2026-09-30T12:00+02:00" size="28">'
            f'<button>Plan</button></form>{error}')


def continuations(listed: Sequence[continuation_pb2.Continuation],
                  plan: continuation_pb2.PlanContinuationResponse | None) -> str:
    shown = _plan(plan) if plan is not None else ""
    if not listed:
        return (shown + '<h2>Continuations</h2>'
                '<p class="empty">No provider has failed or been drained with work on it.</p>')
    parts = []
    for c in listed:
        rows = "".join(
            f'<tr><td>{t.position}</td><td><a href="/tasks/{escape(t.task_id)}">{escape(t.task_name or t.task_id)}</a>'
            f'</td><td><a href="/jobs/{escape(t.job_id)}">{escape(t.job_id)}</a></td><td>{_priority(t)}</td>'
            f'<td>{t.from_attempt}</td><td>{escape(t.to_provider_id) or "waiting for a slot"}</td>'
            f'<td>{code(t.checkpoint_json)}</td><td>{f"{t.seconds_to_restart:.1f}s" if t.seconds_to_restart else ""}'
            '</td></tr>' for t in c.tasks)
        parts.append(f'<section class="continuation" id="continuation-{escape(c.id)}"><h3>{escape(c.id)}: '
                     f'{escape(c.provider_id)} at {when(c.failure_time)}</h3><p class="reason">{escape(c.reason)}</p>'
                     '<table class="continued"><thead><tr><th>#</th><th>task</th><th>job</th><th>priority (rule)</th>'
                     '<th>lost attempt</th><th>continued on</th><th>from checkpoint</th><th>running after</th></tr>'
                     f'</thead><tbody>{rows}</tbody></table></section>')
    return shown + "<h2>Continuations</h2>" + "".join(parts)


def _plan(plan: continuation_pb2.PlanContinuationResponse) -> str:
    title = f'<h2>If {escape(plan.provider_id)} failed at {when(plan.at) or "now"}</h2>'
    if not plan.tasks:
        return (title + '<p class="empty" id="plan">Nothing would continue: '
                f'{escape(plan.provider_id)} runs no tasks.</p>')
    rows = "".join(
        f'<tr><td>{t.position}</td><td><a href="/tasks/{escape(t.task_id)}">{escape(t.task_name or t.task_id)}</a>'
        f'</td><td><a href="/jobs/{escape(t.job_id)}">{escape(t.job_id)}</a></td><td>{_priority(t)}</td>'
        f'<td>{escape(t.to_provider_id) or "would wait"}</td><td>{code(t.checkpoint_json)}</td>'
        f'<td>{"" if t.from_provider else "already waiting"}</td></tr>' for t in plan.tasks)
    return (f'{title}<table class="plan" id="plan"><thead><tr><th>#</th><th>task</th><th>job</th>'
            '<th>priority (rule)</th><th>would go to</th><th>from checkpoint</th><th></th></tr></thead>'
            f'<tbody>{rows}</tbody></table>')


def _priority(t) -> str:
    """The continuation priority in force, and the calendar rule that set it (if one did)."""
    if not t.rule:
        return str(t.effective_priority)
    return f'{t.effective_priority} <span class="rule">({escape(t.rule)})</span>'


def rule_form() -> str:
    return ('<form class="filter rule" method="post" action="/conflicts/rules">'
            '<input name="name" placeholder="rule name" size="14" required>'
            '<select name="kind"><option value="exclusive">exclusive</option>'
            '<option value="lock">lock</option></select>'
            '<input name="jobs" placeholder="jobs: class=etl name=load-* label.team=etl" size="30" required>'
            '<input name="other" placeholder="other (exclusive)" size="18">'
            '<input name="resource" placeholder="resource (lock)" size="14">'
            '<select name="mode"><option value="">mode</option><option>read</option><option>write</option></select>'
            '<select name="apply_to_running" title="jobs already running that conflict">'
            '<option value="">leave running jobs</option><option value="suspend">suspend the later</option>'
            '<option value="requeue">requeue the later</option></select>'
            '<button class="add-rule">Add rule</button></form>')


def conflicts(rules: Sequence[conflict_pb2.ConflictRule], held: Sequence[job_pb2.Job], me) -> str:
    remove = operates(me)
    rows = "".join(
        f'<tr class="rule"><td>{escape(r.name)}</td><td>{_kind(r)}</td><td>{escape(format_selector(r.jobs))}</td>'
        f'<td>{escape(format_selector(r.other))}</td><td>{escape(r.created_by)}</td><td>{when(r.create_time)}</td>'
        f'<td>{_remove(r.name) if remove else ""}</td></tr>' for r in rules)
    table = ('<table class="rules"><thead><tr><th>rule</th><th>kind</th><th>jobs</th><th>other</th><th>by</th>'
             f'<th>added</th><th></th></tr></thead><tbody>{rows}</tbody></table>'
             if rows else '<p class="empty">No conflict rules.</p>')
    jobs = "".join(
        f'<tr class="held"><td><a href="/jobs/{escape(j.id)}">{escape(j.id)}</a></td><td>{escape(j.spec.name)}</td>'
        f'<td>{escape(j.owner)}</td><td>{badge(j.status)}</td><td class="reason">{escape(j.hold or j.reason)}</td>'
        f'<td>{job_actions(j, (), back="/conflicts") if may_act_on(me, j.owner) else ""}</td></tr>' for j in held)
    listing = ('<table class="jobs held"><thead><tr><th>job</th><th>name</th><th>owner</th><th>status</th>'
               f'<th>why</th><th></th></tr></thead><tbody>{jobs}</tbody></table>'
               if jobs else '<p class="empty">No job is on hold.</p>')
    return f'<h2>Rules</h2>{table}<h2>Jobs on hold</h2>{listing}'


def _kind(r: conflict_pb2.ConflictRule) -> str:
    if r.kind == conflict_pb2.CONFLICT_KIND_LOCK:
        mode = job_pb2.LockMode.Name(r.mode).removeprefix("LOCK_MODE_").lower()
        return f"lock {escape(r.resource)} ({mode})"
    return "exclusive"


def _remove(name: str) -> str:
    return (f'<form method="post" action="/conflicts/rules/{escape(quote(name))}/delete">'
            f'<button class="remove-rule" title="remove the rule {escape(name)}">Remove</button></form>')

