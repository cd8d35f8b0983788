"""What the read side hands out: frozen views of stored rows (`JobView.from_row`, ...) and of
the engine's live providers. Services turn these into messages; nothing above the store sees
a row, so a replica can serve the same views from the database alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from jobplane.resources import Resources

from ..domain.conflicts import ConflictRule
from ..domain.model import Event, EventKind, JobSpec, JobState, ProviderState, Status, TaskSpec, TaskState
from ..domain.status import attempt_raw, ended_attempt_raw, job_raw, task_raw
from .codec import load_job_spec, load_task_spec

JOBPLANE = "jobplane"  # the environment of jobplane's own states
# (environment, raw properties, stored status) -> the status one caller sees
StatusOf = Callable[[str, dict, int], int]
# (environment, raw properties) -> the priority class one caller sees (policies.priority_class)
ClassOf = Callable[[str, dict], str]

__all__ = ["JOBPLANE", "StatusOf", "JobView", "TaskView", "AttemptView", "JobFacts", "ContinuationView",
           "ContinuedTaskView", "TokenView", "AuditView", "PolicyVersion", "SavedView", "OverlapView",
           "InventoryView", "ProviderView", "ConflictRule", "Event", "event_from_row"]


@dataclass(frozen=True)
class JobView:
    id: int
    name: str
    priority: int
    spec: JobSpec
    state: JobState
    status: Status  # as stored: the default normalization
    counts: dict[str, int]
    reason: str
    submit_time: float
    start_time: float | None
    end_time: float | None
    owner: str
    hold: str
    request_id: str | None
    schedule_id: int = 0  # the schedule whose run it is; 0: submitted by hand

    @classmethod
    def from_row(cls, row, tasks: bool = True, whole: bytes | None = None) -> JobView:
        """`tasks`: False leaves the spec's tasks out (and so `environments` empty); `whole`:
        the job's whole spec (from job_spec: reads.whole_specs), which the tasks are read from."""
        spec = load_job_spec(whole if tasks and whole is not None else row.spec, tasks)
        return cls(row.id, row.name, row.priority, spec, JobState(row.state), Status(row.status),
                   json.loads(row.counts), row.reason, row.submit_time, row.start_time, row.end_time, row.owner,
                   row.hold, row.request_id, row.schedule)

    @property
    def environment(self) -> str:
        return JOBPLANE

    @property
    def raw(self) -> dict[str, str]:
        """The raw properties its status is normalized from: jobplane's own state."""
        return job_raw(self.state)

    @property
    def labels(self) -> dict[str, str]:
        return self.spec.labels

    @property
    def environments(self) -> tuple[str, ...]:
        """Where its tasks' statuses come from (process, python, external, slurm)."""
        return tuple({t.environment for t in self.spec.tasks})


@dataclass(frozen=True)
class AttemptView:
    number: int
    provider: str
    assign_time: float
    start_time: float | None
    end_time: float | None
    outcome: int
    exit_code: int | None
    reason: str
    checkpoint: str
    resumed_from: str
    environment: str  # jobplane's own unless the environment reported
    raw: dict[str, str]
    external_job_id: str

    @classmethod
    def from_row(cls, row) -> AttemptView:
        ended = row.end_time is not None
        if row.environment:
            environment, raw = row.environment, json.loads(row.raw)
            if ended:
                raw = ended_attempt_raw(environment, raw, row.outcome)
        else:
            environment, raw = JOBPLANE, attempt_raw(row.number, row.start_time is not None, row.outcome, ended)
        return cls(row.number, row.provider, row.assign_time, row.start_time, row.end_time, row.outcome,
                   row.exit_code, row.reason, row.checkpoint, row.resumed_from, environment, raw,
                   row.external_job_id)


@dataclass(frozen=True)
class TaskView:
    id: int
    job_id: int
    name: str
    group: str
    spec: TaskSpec
    state: TaskState
    status: Status  # as stored: the default normalization
    provider: str  # "" before its first attempt
    attempt: int
    exit_code: int | None
    result_json: str
    error: str
    stdout_tail: str
    stderr_tail: str
    reason: str
    checkpoint: str
    environment: str
    raw: dict[str, str]  # the raw properties `status` was normalized from
    reruns: int
    attempts: tuple[AttemptView, ...]

    @classmethod
    def from_row(cls, row, attempts: tuple[AttemptView, ...] = ()) -> TaskView:
        raw = json.loads(row.raw) if row.environment != JOBPLANE else task_raw(TaskState(row.state), row.attempt)
        return cls(row.id, row.job, row.name, row.group, load_task_spec(row.spec), TaskState(row.state),
                   Status(row.status), row.provider or "", row.attempt, row.exit_code, row.result_json, row.error,
                   row.stdout_tail, row.stderr_tail, row.reason, row.checkpoint, row.environment, raw, row.reruns,
                   tuple(attempts))


@dataclass(frozen=True)
class JobFacts:
    """What filters on tasks and events read from their job: fixed for the job's life."""

    owner: str
    name: str
    priority: int
    labels: dict[str, str]
    submitted: float = 0.0  # the job's submit time

    @classmethod
    def from_row(cls, row) -> JobFacts:
        return cls(row.owner, row.name, row.priority, dict(load_job_spec(row.spec).labels), row.submit_time)


@dataclass(frozen=True)
class ContinuedTaskView:
    task_id: int
    job_id: int
    task_name: str
    from_attempt: int
    position: int
    priority: int  # the effective continuation priority at the failure
    rule: str
    to_provider: str  # "" while it waits
    dispatch_time: float | None
    checkpoint: str
    restart_time: float | None  # when the attempt it continued as started running

    @classmethod
    def from_row(cls, row, restart_time: float | None) -> ContinuedTaskView:
        return cls(row.task, row.job, row.task_name, row.from_attempt, row.position, row.priority, row.rule,
                   row.to_provider, row.dispatch_time, row.checkpoint, restart_time)


@dataclass(frozen=True)
class ContinuationView:
    id: int
    provider: str
    time: float
    reason: str
    tasks: tuple[ContinuedTaskView, ...]

    @classmethod
    def from_row(cls, row, tasks: tuple[ContinuedTaskView, ...]) -> ContinuationView:
        return cls(row.id, row.provider, row.time, row.reason, tuple(tasks))


@dataclass(frozen=True)
class TokenView:
    id: str
    secret_hash: str
    role: int
    user: str
    groups: tuple[str, ...]
    name_prefix: str
    create_time: float
    expire_time: float | None
    uses_left: int  # -1: unlimited
    revoked: bool
    created_by: str

    @classmethod
    def from_row(cls, row) -> TokenView:
        return cls(row.id, row.secret_hash, row.role, row.user, tuple(json.loads(row.groups)), row.name_prefix,
                   row.create_time, row.expire_time, row.uses_left, bool(row.revoked), row.created_by)


@dataclass(frozen=True)
class AuditView:
    id: int
    time: float
    identity: str
    role: int
    method: str
    target: str
    code: str
    message: str

    @classmethod
    def from_row(cls, row) -> AuditView:
        return cls(row.id, row.time, row.identity, row.role, row.method, row.target, row.code, row.message)


@dataclass(frozen=True)
class PolicyVersion:
    """One stored version of a policy (default, group or user)."""

    scope: int
    name: str
    version: int
    document: str  # JSON {"rules": [...]}; "{}" for a deletion (or a return to the built-in default)
    time: float
    updated_by: str
    deleted: bool

    @classmethod
    def from_row(cls, row) -> PolicyVersion:
        return cls(row.scope, row.name, row.version, row.document, row.time, row.updated_by, bool(row.deleted))


@dataclass(frozen=True)
class SavedView:
    """A user's saved filter and sort order."""

    owner: str
    name: str
    resource: int
    filter: str
    order_by: str
    time: float

    @classmethod
    def from_row(cls, row) -> SavedView:
        return cls(row.owner, row.name, row.resource, row.filter, row.order_by, row.time)


@dataclass(frozen=True)
class OverlapView:
    """How often a transient failure of one job class happened while another class ran."""

    class_a: str
    class_b: str
    failures: int
    last_time: float

    @classmethod
    def from_row(cls, row) -> OverlapView:
        return cls(row.class_a, row.class_b, row.failures, row.last_time)


@dataclass(frozen=True)
class InventoryView:
    """What one provider's latest scan found for one prerequisite signature."""

    provider_id: str
    signature_id: str
    description: str
    present: bool
    details: dict[str, str]
    reason: str
    scan_time: float
    expires: float
    source: str


@dataclass(frozen=True)
class ProviderView:
    """A provider as the engine holds it at one moment (Core.providers_view makes them)."""

    id: str
    state: ProviderState
    facts: dict
    labels: dict[str, str]
    slots: int
    slots_in_use: int
    heartbeat: float
    connect_time: float | None
    last_seen: float | None
    connected: bool  # it has a live stream
    containment: str
    kill_deadline: float
    grace_until: float | None
    backoff_cap: float
    inventory: tuple[InventoryView, ...]  # by signature id
    drained: bool = False  # by an operator, until resumed
    capacity: Resources | None = None  # what its agent advertised; None: nothing (no limits, no custom)
    in_use: Resources | None = None  # what the tasks out at it ask for
    queued_ahead: int = 0  # tasks out at it beyond its slots, waiting at the agent (ahead.py)


def event_from_row(row) -> Event:
    return Event(row.id, row.time, EventKind(row.kind), row.job, row.task, row.task_name, row.provider,
                 row.attempt, row.raw_status, json.loads(row.raw), Status(row.status), row.message, row.environment)
