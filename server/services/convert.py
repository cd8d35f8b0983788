"""Conversions between jobplane.v1 messages and domain values or the store's read views."""

from __future__ import annotations

import math

from google.protobuf import json_format, struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from jobplane.resources import Resources
from jobplane.v1 import continuation_pb2, event_pb2, inventory_pb2, job_pb2, provider_pb2, task_pb2

from ..domain.model import (
    Event, ExternalSpec, Hello, JobSpec, Lateness, Outcome, Report, ReportKind, SlurmSpec, TaskSpec, Transient)
from ..domain.policies import DEFAULT_POLICY, Policy, normalize, priority_class
from ..domain.continuation import PlannedTask
from ..domain.inventory import ScanResult
from ..domain.limits import TIME_MAX, TIME_MIN, check_time, shown
from ..domain.state import TaskRt
from ..domain.windows import Window
from ..errors import InvalidArgument
from ..store.codec import as_plain
from ..store.records import (
    JOBPLANE, AttemptView, ClassOf, ContinuationView, ContinuedTaskView, InventoryView, JobView, ProviderView,
    StatusOf, TaskView)
from .resource_fields import capacity_from_proto, capacity_to_proto, request_from_proto, request_to_proto
from .spec_fields import (
    condition_lost_from_proto, condition_lost_to_proto, conditions_from_proto, conditions_to_proto,
    locks_from_proto, locks_to_proto, notify_from_proto, notify_to_proto, refuse_deprecated,
    retry_failures_to_proto, retry_on_from_proto, rule_from_proto, rule_to_proto)

NO_RESOURCES = Resources()  # a task that asks for none (most): one shared, frozen value
TIMESTAMP_MIN, TIMESTAMP_MAX = -62135596800.0, 253402300799.0  # 0001-01-01 to 9999-12-31T23:59:59Z


def ts(seconds: float | None) -> Timestamp | None:
    """A time as a Timestamp; one outside what a Timestamp can hold (stored by an older server,
    say) shows as the nearest it can, so a stored row never breaks a response."""
    if seconds is None or math.isnan(seconds):
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(int(min(max(seconds, TIMESTAMP_MIN), TIMESTAMP_MAX) * 1e9))
    return stamp


def when(path: str, m: Timestamp) -> float:
    """A Timestamp a caller sent, as seconds since the epoch; InvalidArgument naming `path`
    unless it is a valid time in the range jobplane takes."""
    return check_time(path, m.seconds, m.nanos)


def is_id(value: str) -> bool:
    """Whether `value` is an id as the server writes them: up to 18 ASCII digits."""
    return value.isascii() and value.isdigit() and len(value) <= 18


def parse_id(field: str, value: str, what: str) -> int:
    """Ids are decimal strings; anything else is the caller's mistake."""
    if not is_id(value):
        raise InvalidArgument(field, f"{shown(value)} is not a {what} id; use the id the server returned (e.g. \"12\")")
    return int(value)


# ----- specs -------------------------------------------------------------------------

def task_spec_from_proto(m: job_pb2.TaskSpec, path: str = "task") -> TaskSpec:
    return TaskSpec(
        name=m.name, command=tuple(m.command), python=m.python, args_json=m.args_json, env=dict(m.env),
        cwd=m.cwd, timeout_seconds=m.timeout_seconds, after=tuple(m.after), requires=dict(m.requires),
        max_attempts=m.max_attempts, matrix=tuple((p.name, p.values_json) for p in m.matrix),
        items_json=m.items_json, chunk_size=m.chunk_size, expected_seconds=m.expected_seconds,
        retry_backoff_seconds=m.retry_backoff_seconds, retry_on=retry_on_from_proto(m, path),
        prerequisites=tuple(json_format.MessageToDict(s) for s in m.prerequisites),
        external=_external_from_proto(m.external) if m.HasField("external") else None,
        lateness=_lateness_from_proto(m, path), slurm=_slurm_from_proto(m.slurm) if m.HasField("slurm") else None,
        resources=request_from_proto(m.resources, f"{path}.resources") if m.HasField("resources") else NO_RESOURCES)


def task_specs_from_proto(messages) -> tuple[TaskSpec, ...]:
    """A job's task specs. Most tasks of a job differ only by name (a bench's 20,000 no-ops, a
    generated list): the first of each kind is converted, the others are that one renamed
    (TaskSpec.renamed; as the codec decodes stored ones). Conversion depends on the values
    alone, never the name, so a renamed copy is what converting it would have made."""
    out, kinds = [], {}
    for i, m in enumerate(messages):
        key = _kind(m)
        first = kinds.get(key) if key is not None else None
        if first is not None:
            out.append(first.renamed(m.name))
            continue
        spec = task_spec_from_proto(m, f"spec.tasks[{i}]")
        if key is not None:
            kinds[key] = spec
        out.append(spec)
    return tuple(out)


def _kind(m: job_pb2.TaskSpec) -> tuple | None:
    """A TaskSpec message's values but its name, as a hashable key: (field number, value) of each
    field set; None when one of them is a message or map (env, lateness, ...): such a task is
    converted on its own."""
    key = []
    for f, value in m.ListFields():
        if f.number == _TASK_NAME_NUMBER:
            continue
        if f.cpp_type == _MESSAGE:
            return None
        key.append((f.number, tuple(value) if f.is_repeated else value))
    return tuple(key)


_TASK_NAME_NUMBER = job_pb2.TaskSpec.DESCRIPTOR.fields_by_name["name"].number
_MESSAGE = job_pb2.TaskSpec.DESCRIPTOR.fields_by_name["lateness"].CPPTYPE_MESSAGE


def _external_from_proto(m) -> ExternalSpec:
    return ExternalSpec(tuple(m.submit), tuple(m.poll), tuple(m.cancel), m.poll_interval_seconds)


def _slurm_from_proto(m: job_pb2.SlurmSpec) -> SlurmSpec:
    return SlurmSpec(m.script, tuple(m.args), m.wrap, m.partition, m.time_limit, m.cpus, m.mem, m.array, m.account,
                     m.qos, tuple(m.extra_args))


def _slurm_to_proto(s: SlurmSpec) -> job_pb2.SlurmSpec:
    return job_pb2.SlurmSpec(script=s.script, args=list(s.args), wrap=s.wrap, partition=s.partition,
                             time_limit=s.time_limit, cpus=s.cpus, mem=s.mem, array=s.array, account=s.account,
                             qos=s.qos, extra_args=list(s.extra_args))


def _when(m, path: str, name: str) -> float | None:
    """A Timestamp field as seconds since the epoch; None when it is not set."""
    return when(f"{path}.{name}", getattr(m, name)) if m.HasField(name) else None


_LATENESS = ("start_by", "finish_by", "max_wait_seconds", "max_runtime_seconds")
_GIVE_UP = ("give_up_after", "give_up_after_seconds")


def _lateness_from_proto(m, path: str) -> Lateness:
    """`lateness` of a job or task spec; the deprecated flat fields when it is unset."""
    if m.HasField("lateness"):
        refuse_deprecated(m, path, _LATENESS, "lateness")
        m, path = m.lateness, f"{path}.lateness"
    return Lateness(_when(m, path, "start_by"), _when(m, path, "finish_by"), m.max_wait_seconds,
                    m.max_runtime_seconds)


def _lateness_to_proto(lateness: Lateness) -> job_pb2.Lateness | None:
    if not lateness:
        return None
    return job_pb2.Lateness(start_by=ts(lateness.start_by), finish_by=ts(lateness.finish_by),
                            max_wait_seconds=lateness.max_wait_seconds,
                            max_runtime_seconds=lateness.max_runtime_seconds)


def _give_up_from_proto(m: job_pb2.JobSpec) -> tuple[float | None, float]:
    """(time, seconds after submit) of `give_up`, or of the deprecated fields when it is unset."""
    if not m.HasField("give_up"):
        if m.HasField("give_up_after") and m.give_up_after_seconds:
            raise InvalidArgument("spec.give_up_after_seconds", "and give_up_after are one deadline: set one "
                                  "of them (or spec.give_up, which replaces both)")
        return _when(m, "spec", "give_up_after"), m.give_up_after_seconds
    refuse_deprecated(m, "spec", _GIVE_UP, "give_up")
    return _when(m.give_up, "spec.give_up", "time"), m.give_up.after_seconds


def _give_up_to_proto(window: Window) -> job_pb2.Deadline | None:
    if window.give_up_after is not None:
        return job_pb2.Deadline(time=ts(window.give_up_after))
    return job_pb2.Deadline(after_seconds=window.give_up_after_seconds) if window.give_up_after_seconds else None


def job_spec_from_proto(m: job_pb2.JobSpec) -> JobSpec:
    """The spec a caller sent (its times checked here; extract.py checks the rest)."""
    priority = m.continuation_priority if m.HasField("continuation_priority") else None
    rules = tuple(rule_from_proto(f"spec.continuation_rules[{i}]", r) for i, r in enumerate(m.continuation_rules))
    tasks = task_specs_from_proto(m.tasks)
    return JobSpec(m.name, m.priority, dict(m.labels), tasks,
                   m.wait_for_providers, priority, rules, _lateness_from_proto(m, "spec"), m.job_class.strip(),
                   _window_from_proto(m), _transient_from_proto(m.transient) if m.HasField("transient") else None,
                   conditions_from_proto(m), locks_from_proto(m), condition_lost_from_proto(m), notify_from_proto(m),
                   request_from_proto(m.task_resources, "spec.task_resources"))


def _window_from_proto(m: job_pb2.JobSpec) -> Window:
    return Window(m.run_window.strip(), _when(m, "spec", "hold_until"), *_give_up_from_proto(m))


def _transient_from_proto(m: job_pb2.TransientFailures) -> Transient:
    """0 for max_reruns or backoff_seconds means Transient's default."""
    return Transient(tuple(m.exit_codes), tuple(m.raw_statuses), m.max_reruns or Transient.max_reruns,
                     m.backoff_seconds or Transient.backoff_seconds)


def task_spec_to_proto(s: TaskSpec) -> job_pb2.TaskSpec:
    return fill_task_spec(job_pb2.TaskSpec(), s)


def fill_task_spec(m: job_pb2.TaskSpec, s: TaskSpec) -> job_pb2.TaskSpec:
    """Set `s` on an empty message `m` (one in its place in a parent: no copy), only the fields
    that are set: every task of a job and every assignment goes through here, and most fields
    are at their defaults (a no-op task sets two). A renamed copy (TaskSpec.kind) is its kind's
    message, parsed from bytes made once, under its own name."""
    kind = s.kind
    if kind is not s:
        m.MergeFromString(_kind_bytes(kind))
        m.name = s.name
        return m
    return _fill(m, s)


_KIND_BYTES: dict[int, tuple[TaskSpec, bytes]] = {}  # id(kind) -> (kind, its message without a name)


def _kind_bytes(kind: TaskSpec) -> bytes:
    done = _KIND_BYTES.get(id(kind))
    if done is None or done[0] is not kind:
        if len(_KIND_BYTES) >= 1024:
            _KIND_BYTES.clear()
        m = _fill(job_pb2.TaskSpec(), kind)
        m.ClearField("name")
        done = _KIND_BYTES[id(kind)] = (kind, m.SerializeToString())
    return done[1]


def _fill(m: job_pb2.TaskSpec, s: TaskSpec) -> job_pb2.TaskSpec:
    m.name = s.name
    if s.python:
        m.python = s.python
    if s.command:
        m.command.extend(s.command)
    for name in _PLAIN_TASK_FIELDS:
        value = getattr(s, name)
        if value:
            setattr(m, name, value)
    if s.env:
        m.env.update(s.env)
    if s.requires:
        m.requires.update(s.requires)
    if s.after:
        m.after.extend(s.after)
    if s.matrix:
        m.matrix.extend(job_pb2.MatrixParameter(name=n, values_json=v) for n, v in s.matrix)
    if s.retry_on:
        m.retry_failures.CopyFrom(retry_failures_to_proto(s.retry_on))
    if s.prerequisites:
        m.prerequisites.extend(struct(as_plain(p)) for p in s.prerequisites)
    if s.external:
        m.external.CopyFrom(job_pb2.ExternalSpec(submit=list(s.external.submit), poll=list(s.external.poll),
                                                 cancel=list(s.external.cancel),
                                                 poll_interval_seconds=s.external.poll_interval_seconds))
    if s.slurm:
        m.slurm.CopyFrom(_slurm_to_proto(s.slurm))
    if s.lateness:
        m.lateness.CopyFrom(_lateness_to_proto(s.lateness))
    if s.resources:
        m.resources.CopyFrom(request_to_proto(s.resources))
    return m


# TaskSpec's scalar fields (numbers and strings), set on the message only when not at their default.
_PLAIN_TASK_FIELDS = ("args_json", "cwd", "timeout_seconds", "max_attempts", "items_json", "chunk_size",
                      "expected_seconds", "retry_backoff_seconds")


def struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def job_spec_to_proto(s: JobSpec, tasks: bool = True) -> job_pb2.JobSpec:
    m = job_pb2.JobSpec(name=s.name, priority=s.priority, labels=s.labels,
                        wait_for_providers=s.wait_for_providers,
                        continuation_rules=[rule_to_proto(r) for r in s.continuation_rules],
                        job_class=s.job_class, run_window=s.window.run_window, hold_until=ts(s.window.hold_until),
                        give_up=_give_up_to_proto(s.window), fact_conditions=conditions_to_proto(s.conditions),
                        resource_locks=locks_to_proto(s.locks), lateness=_lateness_to_proto(s.lateness),
                        on_condition_lost=condition_lost_to_proto(s.on_condition_lost), notify=notify_to_proto(s.notify),
                        task_resources=request_to_proto(s.task_resources))
    if tasks:
        for t in s.tasks:
            fill_task_spec(m.tasks.add(), t)
    if s.transient is not None:
        t = s.transient
        m.transient.CopyFrom(job_pb2.TransientFailures(exit_codes=list(t.exit_codes), raw_statuses=list(t.raw_statuses),
                                                       max_reruns=t.max_reruns, backoff_seconds=t.backoff_seconds))
    if s.continuation_priority is not None:
        m.continuation_priority = s.continuation_priority
    return m


# ----- resources ---------------------------------------------------------------------

def job_to_proto(view: JobView, status_of: StatusOf | None = None, tasks: bool = True) -> job_pb2.Job:
    """`status_of`: the caller's own normalization, when it has user or group policies;
    `tasks`: False leaves the spec's tasks out (a listing: the counts say how they stand)."""
    raw = view.raw
    status = view.status if status_of is None else status_of(JOBPLANE, raw, view.status)
    return job_pb2.Job(
        id=str(view.id), spec=job_spec_to_proto(view.spec, tasks), state=view.state, status=status,
        counts=job_pb2.TaskCounts(**{k: view.counts.get(k, 0) for k in COUNTS}),
        submit_time=ts(view.submit_time), start_time=ts(view.start_time), end_time=ts(view.end_time),
        reason=view.reason, owner=view.owner, environment=JOBPLANE, raw=raw, hold=view.hold,
        schedule_id=str(view.schedule_id) if view.schedule_id else "")


COUNTS = ("total", "waiting", "running", "success", "failure", "cancel")


def attempt_to_proto(view: AttemptView, status_of: StatusOf | None = None,
                     default: Policy = DEFAULT_POLICY) -> task_pb2.Attempt:
    """`default`: the default policy in force, which reads the attempt's raw properties."""
    status = normalize(view.environment, view.raw, user=None, default=default).status
    if status_of is not None:
        status = status_of(view.environment, view.raw, status)
    m = task_pb2.Attempt(number=view.number, provider_id=view.provider, assign_time=ts(view.assign_time),
                         start_time=ts(view.start_time), end_time=ts(view.end_time), reason=view.reason,
                         checkpoint_json=view.checkpoint, resumed_from_json=view.resumed_from,
                         environment=view.environment, raw=view.raw, status=status)
    if view.exit_code is not None:
        m.exit_code = view.exit_code
    return m


def task_to_proto(view: TaskView, status_of: StatusOf | None = None,
                  default: Policy = DEFAULT_POLICY, class_of: ClassOf | None = None) -> task_pb2.Task:
    """`class_of`: the caller's own priority classes, when it has user or group policies (else
    the `default` policy's)."""
    status = view.status if status_of is None else status_of(view.environment, view.raw, view.status)
    klass = (class_of(view.environment, view.raw) if class_of is not None
             else priority_class(view.environment, view.raw, user=None, default=default))
    m = task_pb2.Task(
        id=str(view.id), job_id=str(view.job_id), name=view.name, group=view.group,
        spec=task_spec_to_proto(view.spec), state=view.state, status=status, provider_id=view.provider,
        attempt=view.attempt, result_json=view.result_json, error=view.error, stdout_tail=view.stdout_tail,
        stderr_tail=view.stderr_tail, attempts=[attempt_to_proto(a, status_of, default) for a in view.attempts],
        reason=view.reason, checkpoint_json=view.checkpoint, environment=view.environment, raw=view.raw,
        reruns=view.reruns, priority_class=klass)
    if view.exit_code is not None:
        m.exit_code = view.exit_code
    return m


def provider_to_proto(p: ProviderView) -> provider_pb2.Provider:
    f = p.facts
    facts = provider_pb2.ProviderFacts(
        hostname=str(f.get("hostname", "")), os=str(f.get("os", "")), arch=str(f.get("arch", "")),
        cpu_count=int(f.get("cpu_count", 0)), memory_bytes=int(f.get("memory_bytes", 0)),
        python_version=str(f.get("python_version", "")))
    return provider_pb2.Provider(
        id=p.id, state=int(p.state), facts=facts, labels=p.labels, slots=p.slots, slots_in_use=p.slots_in_use,
        heartbeat_interval_seconds=p.heartbeat, connect_time=ts(p.connect_time), last_seen_time=ts(p.last_seen),
        containment=p.containment, kill_deadline_seconds=p.kill_deadline, restart_grace_until=ts(p.grace_until),
        reconnect_backoff_max_seconds=p.backoff_cap, drained=p.drained, capacity=capacity_to_proto(p.capacity),
        in_use=capacity_to_proto(p.in_use), queued_ahead=p.queued_ahead)


def continuation_to_proto(view: ContinuationView) -> continuation_pb2.Continuation:
    return continuation_pb2.Continuation(
        id=str(view.id), provider_id=view.provider, failure_time=ts(view.time), reason=view.reason,
        tasks=[continued_task_to_proto(ct, view.time) for ct in view.tasks])


def continued_task_to_proto(ct: ContinuedTaskView, failure_time: float) -> continuation_pb2.ContinuedTask:
    """It restarted when the attempt it continued as started running."""
    started = ct.restart_time
    return continuation_pb2.ContinuedTask(
        task_id=str(ct.task_id), job_id=str(ct.job_id), task_name=ct.task_name, from_attempt=ct.from_attempt,
        to_provider_id=ct.to_provider, dispatch_time=ts(ct.dispatch_time), position=ct.position,
        effective_priority=ct.priority, rule=ct.rule, checkpoint_json=ct.checkpoint,
        seconds_to_restart=started - failure_time if started is not None else 0.0)


def planned_task_to_proto(p: PlannedTask) -> continuation_pb2.PlannedTask:
    return continuation_pb2.PlannedTask(
        task_id=str(p.task_id), job_id=str(p.job_id), task_name=p.task_name, position=p.position,
        effective_priority=p.priority, rule=p.rule, to_provider_id=p.to_provider or "",
        checkpoint_json=p.checkpoint, from_provider=p.from_provider)


# ----- events ------------------------------------------------------------------------

def event_to_proto(e: Event) -> event_pb2.Event:
    return event_pb2.Event(
        id=e.id, time=ts(e.time), kind=int(e.kind), job_id=str(e.job_id) if e.job_id else "",
        task_id=str(e.task_id) if e.task_id else "", provider_id=e.provider_id, raw_status=e.raw_status,
        raw=e.raw, status=int(e.status), message=e.message, attempt=e.attempt, task_name=e.task_name,
        environment=e.environment)


# ----- the agent link ----------------------------------------------------------------

def hello_from_proto(m) -> Hello:
    f = m.facts
    facts = {"hostname": f.hostname, "os": f.os, "arch": f.arch, "cpu_count": f.cpu_count,
             "memory_bytes": f.memory_bytes, "python_version": f.python_version}
    running = tuple((int(r.task_id), r.attempt) for r in m.running if is_id(r.task_id))
    return Hello(m.name, facts, dict(m.labels), m.slots, m.heartbeat_interval_seconds, running, m.standby,
                 kill_deadline=m.kill_deadline_seconds, containment=m.containment,
                 backoff_cap=m.reconnect_backoff_max_seconds, capacity=capacity_from_proto(m),
                 queue_ahead=m.queue_ahead, gives_back=m.gives_back_unstarted)


def probe_reply_from_proto(m) -> list[tuple[int, int, int]]:
    return [(int(s.task_id), s.attempt, s.progress) for s in m.running if is_id(s.task_id)]


_OUTCOMES = {int(o): o for o in Outcome}


def report_from_proto(m) -> Report | None:
    """The report an agent sent; None for one that names no task or says nothing."""
    which = m.WhichOneof("report")
    if not is_id(m.task_id) or (which is None and m.kind == 0):
        return None
    if which is None:
        return _legacy_report_from_proto(m)
    task_id = int(m.task_id)
    # Positional, and each part read only where it is the one sent: two reports per task.
    if which == "finished":
        f = m.finished
        outcome = _OUTCOMES.get(f.outcome)  # None for a number this server does not know
        return Report(task_id, m.attempt, ReportKind.FINISHED, outcome,
                      f.exit_code if f.HasField("exit_code") else None, f.result_json, f.error,
                      f.stdout_tail, f.stderr_tail, dict(f.raw))
    if which == "started":
        return Report(task_id, m.attempt, ReportKind.STARTED, None, None, "", "", "", "", {}, "",
                      m.started.external_job_id)
    if which == "checkpoint":
        return Report(task_id, m.attempt, ReportKind.CHECKPOINT, checkpoint_json=m.checkpoint.checkpoint_json)
    status = m.status  # the oneof's last member
    return Report(task_id, m.attempt, ReportKind.STATUS, raw=dict(status.raw), external_job_id=status.external_job_id)


def _legacy_report_from_proto(m) -> Report:
    """A report in the previous release's flat form, tagged by the deprecated `kind`."""
    outcome = _OUTCOMES.get(m.outcome)
    kind = ReportKind(m.kind) if m.kind in ReportKind._value2member_map_ else ReportKind.FINISHED
    return Report(int(m.task_id), m.attempt, kind, outcome,
                  m.exit_code if m.HasField("exit_code") else None, m.result_json, m.error,
                  m.stdout_tail, m.stderr_tail, dict(m.raw), m.checkpoint_json, m.external_job_id)


def add_assignment(assignments: provider_pb2.Assignments, task: TaskRt, number: int, ahead: bool = False) -> None:
    """Attempt `number` of the task, as its provider is told to run it, added to `assignments`
    (`ahead`: queued beyond the provider's slots)."""
    current = task.current
    adopt = current.external_job_id if current is not None and current.number == number else ""
    m = assignments.assignments.add(task_id=str(task.id), attempt=number, job_id=str(task.job_id),
                                    task_name=task.name, checkpoint_json=task.checkpoint,
                                    adopt_external_job_id=adopt, queued_ahead=ahead)
    fill_task_spec(m.spec, task.spec)


def assignment_to_proto(task: TaskRt, number: int) -> provider_pb2.Assignment:
    """Attempt `number` of the task, as its provider is told to run it."""
    one = provider_pb2.Assignments()
    add_assignment(one, task, number)
    return one.assignments[0]


def scan_results_from_proto(m) -> list[ScanResult]:
    return [ScanResult(r.signature_id, r.present, dict(r.details), r.reason, _reported_time(r, "scan_time"))
            for r in m.results if r.signature_id]


def _reported_time(m, name: str) -> float:
    """A time an agent reported; 0.0 (as if unset) when absent or not a valid time."""
    stamp = getattr(m, name)
    return stamp.seconds + stamp.nanos / 1e9 if m.HasField(name) and 0 <= stamp.nanos < 10**9 and \
        TIME_MIN <= stamp.seconds <= TIME_MAX else 0.0


def inventory_entry_to_proto(e: InventoryView) -> inventory_pb2.InventoryEntry:
    return inventory_pb2.InventoryEntry(
        provider_id=e.provider_id, signature_id=e.signature_id, description=e.description, present=e.present,
        details=e.details, reason=e.reason, scan_time=ts(e.scan_time), expire_time=ts(e.expires), source=e.source)
