"""Domain values and states. Enum numbers equal the jobplane.v1 proto numbers, so the
service edge converts by value (tests/unit/test_domain_enums.py holds that true)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from types import MappingProxyType
from typing import NamedTuple

from jobplane.resources import Resources

from .conflicts import parse_locks
from .facts import parse_conditions
from .timing import TimingRule
from .windows import Window


class JobState(IntEnum):
    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5


class TaskState(IntEnum):
    BLOCKED = 1
    QUEUED = 2
    ASSIGNED = 3
    RUNNING = 4
    SUCCEEDED = 5
    FAILED = 6
    CANCELLED = 7


class ProviderState(IntEnum):
    ACTIVE = 1
    SUSPECT = 2
    LOST = 3
    STANDBY = 4
    DRAINING = 5
    DRAINED = 6
    CONNECTING = 7
    REVOKED = 8
    STOPPED = 9


class Status(IntEnum):
    """The normalized vocabulary."""

    RUNNING = 1
    FAILURE = 2
    WAITING = 3
    SUCCESS = 4
    CANCEL = 5
    RESTART = 6
    ON_HOLD = 7
    LATE_TO_START = 8
    RUNNING_LATE = 9
    INACTIVE = 10
    UNKNOWN = 11


class Outcome(IntEnum):
    SUCCEEDED = 1
    FAILED = 2
    CANCELLED = 3
    TIMED_OUT = 4


class EventKind(IntEnum):
    JOB = 1
    TASK = 2
    PROVIDER = 3
    CONTINUATION = 4
    POLICY = 5
    SCHEDULE = 6


class ReportKind(IntEnum):
    STARTED = 1
    FINISHED = 2
    CHECKPOINT = 3
    STATUS = 4


@dataclass(frozen=True)
class ExternalSpec:
    """A task run by an outside scheduler through submit/poll/cancel commands that speak JSON."""

    submit: tuple[str, ...] = ()
    poll: tuple[str, ...] = ()
    cancel: tuple[str, ...] = ()
    poll_interval_seconds: float = 0.0


@dataclass(frozen=True)
class SlurmSpec:
    """A task run as a Slurm batch job (see SlurmSpec in job.proto); slurm.py checks it."""

    script: str = ""
    args: tuple[str, ...] = ()
    wrap: str = ""
    partition: str = ""
    time_limit: str = ""
    cpus: int = 0
    mem: str = ""
    array: str = ""
    account: str = ""
    qos: str = ""
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lateness:
    """When a job or task counts as late: absolute times and/or relative limits (0 = none)."""

    start_by: float | None = None
    finish_by: float | None = None
    max_wait_seconds: float = 0.0
    max_runtime_seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.start_by or self.finish_by or self.max_wait_seconds or self.max_runtime_seconds)


JOB_DONE = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
TASK_DONE = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})
TASK_OUT = frozenset({TaskState.ASSIGNED, TaskState.RUNNING})


@dataclass(frozen=True)
class TaskSpec:
    """A task as submitted (possibly a template) or as expanded for a provider. Never changed in
    place, its dicts (env, requires) included: the tasks of a job read back from the database
    share one spec's values when they differ only by name (store/codec.py)."""

    name: str
    command: tuple[str, ...] = ()
    python: str = ""
    args_json: str = ""
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    timeout_seconds: float = 0.0
    after: tuple[str, ...] = ()
    requires: dict[str, str] = field(default_factory=dict)
    max_attempts: int = 0
    matrix: tuple[tuple[str, str], ...] = ()  # (parameter name, JSON array of values)
    items_json: str = ""
    chunk_size: int = 0
    expected_seconds: float = 0.0
    retry_backoff_seconds: float = 0.0
    retry_on: tuple[str, ...] = ()
    # Signatures once validated (extract.py); the raw dicts from the request before that.
    prerequisites: tuple = ()
    external: ExternalSpec | None = None
    lateness: Lateness = field(default_factory=Lateness)
    slurm: SlurmSpec | None = None
    resources: Resources = Resources()  # what an attempt takes of its provider's capacity

    @property
    def environment(self) -> str:
        """Where the task's raw status comes from: process, python, external or slurm."""
        if self.slurm:
            return "slurm"
        return "external" if self.external else "python" if self.python else "process"

    def renamed(self, name: str) -> TaskSpec:
        """This spec under another name, sharing its (immutable) values: a copy of its fields,
        not a new __init__ (a frozen TaskSpec's costs several microseconds, and most tasks of a
        job are one template's copies: submits and reads make thousands a second). Its `kind`
        is this one's."""
        renamed = object.__new__(TaskSpec)
        renamed.__dict__.update(self.__dict__)
        renamed.__dict__["name"] = name
        kind = renamed.__dict__["_kind"] = self.kind
        # What is worked out from its values is its kind's: read on every enqueue, a cached_property
        # worked out per copy cost 2.4 us the first time and 0.8 us after (its lock, in 3.11).
        renamed.__dict__["prerequisite_ids"] = kind.prerequisite_ids
        return renamed

    @property
    def kind(self) -> TaskSpec:
        """The spec this one is a renamed copy of (renamed), else itself: equal to this one in
        every field but the name. What depends on the values alone (encoding them, checking
        them) is worked out once per kind, not once per task."""
        return self.__dict__.get("_kind", self)

    @cached_property  # read on every enqueue and placement check; the spec never changes
    def prerequisite_ids(self) -> frozenset[str]:
        return frozenset(getattr(s, "id", "") for s in self.prerequisites)


DEFAULT_TRANSIENT_RAW = ("DEADLOCK", "DEADLOCK_VICTIM", "LOCK_TIMEOUT", "LOCK TIMEOUT", "SERIALIZATION_FAILURE",
                         "40001", "40P01")


@dataclass(frozen=True)
class Transient:
    """Failures that mean "try again later": rerun after a backoff, not counted as attempts."""

    exit_codes: tuple[int, ...] = (75,)  # EX_TEMPFAIL
    raw_statuses: tuple[str, ...] = DEFAULT_TRANSIENT_RAW
    max_reruns: int = 3
    backoff_seconds: float = 1.0


@dataclass(frozen=True)
class Notify:
    """Where a job's outcome goes: a webhook URL or a command (argv), on these statuses."""

    on: tuple[str, ...]  # normalized status names, e.g. ("FAILURE", "LATE_TO_START")
    webhook: str = ""
    command: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        """The destination as users read it in events: the URL, or the program."""
        return self.webhook or (self.command[0] if self.command else "")


@dataclass(frozen=True)
class JobSpec:
    name: str
    priority: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    tasks: tuple[TaskSpec, ...] = ()
    wait_for_providers: bool = False
    continuation_priority: int | None = None  # None: the default (continuation.DEFAULT_PRIORITY)
    continuation_rules: tuple[TimingRule, ...] = ()
    lateness: Lateness = field(default_factory=Lateness)
    job_class: str = ""
    window: Window = field(default_factory=Window)
    transient: Transient | None = None  # None: the defaults
    conditions: tuple[str, ...] = ()  # "FACT OP NUMBER", checked against a provider's live facts
    locks: dict[str, str] = field(default_factory=dict)  # resource -> "read" / "write"
    # What a running task does when its provider stops meeting `conditions`: "continue" (""),
    # "suspend" or "requeue" (suspension.py).
    on_condition_lost: str = ""
    notify: tuple[Notify, ...] = ()  # where its outcome goes (domain/notifications.py)
    task_resources: Resources = Resources()  # each task's requests where it sets none (extract.py)

    @cached_property
    def parsed_conditions(self) -> tuple:
        return parse_conditions("spec.conditions", self.conditions)

    @cached_property
    def lock_modes(self) -> dict[str, int]:
        return parse_locks("spec.resource_locks", self.locks)


@dataclass(frozen=True)
class TaskDraft:
    """One concrete task extracted from a job spec, before it has an id."""

    name: str
    group: str
    spec: TaskSpec
    after_groups: tuple[str, ...]
    max_attempts: int
    template_index: int = 0


@dataclass(frozen=True)
class Hello:
    name: str
    facts: dict[str, object]
    labels: dict[str, str]
    slots: int
    heartbeat: float
    running: tuple[tuple[int, int], ...]  # (task id, attempt) the agent still holds
    standby: bool = False
    # The agent's promise: a dead or frozen agent's attempts are killed within the reconnect
    # grace (plus two heartbeats when frozen) plus this; 0: no promise (see fences.py).
    kill_deadline: float = 0.0
    containment: str = ""  # how its attempts are contained: "cgroup", "subreaper", ""
    backoff_cap: float = 0.0  # its longest pause between reconnection attempts; 0: unknown
    capacity: Resources | None = None  # what it can run at once; None: it advertised nothing
    queue_ahead: int = 0  # tasks it holds queued beyond its slots (ahead.py); 0: none
    gives_back: bool = False  # it gives back an attempt not started when asked (ahead.py take_back)


class Report(NamedTuple):
    """What an agent said about an attempt. A named tuple, not a frozen dataclass: two are made
    per finished task (its start and its end), and a frozen dataclass sets each of its twelve
    fields through object.__setattr__ (1.5 us against 0.3 us a report)."""

    task_id: int
    attempt: int
    kind: ReportKind
    outcome: Outcome | None = None
    exit_code: int | None = None
    result_json: str = ""
    error: str = ""
    stdout_tail: str = ""
    stderr_tail: str = ""
    raw: Mapping[str, str] = MappingProxyType({})  # read-only: one default shared by every report
    checkpoint_json: str = ""
    external_job_id: str = ""  # the outside scheduler's job the attempt follows (external, slurm)


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    time: float
    kind: EventKind
    job_id: int | None = None
    task_id: int | None = None
    task_name: str = ""
    provider_id: str = ""
    attempt: int = 0
    raw_status: str = ""
    raw: dict[str, str] = field(default_factory=dict)
    status: Status = Status.UNKNOWN
    message: str = ""
    environment: str = ""
