"""The engine's in-memory view of unfinished work, its configuration and its id counters.
The database is the truth; this is rebuilt from it on start (see Engine.restore). What one
batch changes is changes.py's ChangeSet."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from jobplane.resources import Resources

from .fences import Fence
from .limits import MAX_TASKS_PER_JOB
from .model import JobSpec, JobState, ProviderState, Status, TaskSpec, TaskState
from .status import job_status


@dataclass(eq=False, slots=True)
class JobRt:
    id: int
    name: str
    priority: int
    spec: JobSpec
    state: JobState
    submit_time: float
    task_ids: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    open: int = 0
    start_time: float | None = None
    end_time: float | None = None
    reason: str = ""
    cancelled: bool = False
    owner: str = ""  # the submitting user
    late: str = ""  # "start" past its start deadline, "run" past its finish deadline
    hold: str = ""  # held by hand: who and why (persisted)
    hold_reason: str = ""  # why its tasks may not start yet: a conflict, its window (derived)
    condition_hold: str = ""  # why a task of it waits on runtime conditions no provider meets (derived)
    inactive: str = ""  # why its queued tasks cannot go on until an operator acts (derived, inactive.py)
    window: tuple[float, float | None] | None = None  # (opens, closes) when it has a window
    facts: object = None  # conflicts.JobFacts, made on first use
    request: object = None  # requests.RequestKey of an idempotent submit: stored with the new job
    schedule_id: int = 0  # the schedule whose run it is (schedules.py); 0: submitted by hand
    quick: bool = False  # its last finished attempt was quick: its tasks may be queued ahead (ahead.py)

    @property
    def status(self) -> Status:
        if self.late == "start" and self.state == JobState.QUEUED:
            return Status.LATE_TO_START
        if self.late == "run" and self.state == JobState.RUNNING:
            return Status.RUNNING_LATE
        if self.state == JobState.QUEUED and (self.hold or self.hold_reason or self.condition_hold):
            return Status.ON_HOLD
        if self.state == JobState.RUNNING and self.hold and not self.counts.get("running"):
            return Status.ON_HOLD  # held by hand, and nothing of it runs (suspended, requeued)
        if self.state == JobState.QUEUED and self.inactive:
            return Status.INACTIVE
        return job_status(self.state)


@dataclass(eq=False, slots=True)
class AttemptRt:
    id: int
    task_id: int
    number: int
    provider: str
    assign_time: float
    start_time: float | None = None
    end_time: float | None = None
    outcome: int = 0
    exit_code: int | None = None
    reason: str = ""
    checkpoint: str = ""  # the latest checkpoint this attempt reported
    resumed_from: str = ""  # the checkpoint it started from
    environment: str = ""  # where `raw` came from; "" while the environment reported nothing
    raw: dict[str, str] = field(default_factory=dict)  # the latest raw properties reported
    # The outside scheduler's job (external, slurm) it follows: as the agent reported it once
    # submitted, or the job it adopted from the attempt before it (adoption.py).
    external_job_id: str = ""


@dataclass(eq=False, slots=True)
class TaskRt:
    id: int
    job_id: int
    idx: int
    name: str
    group: str
    spec: TaskSpec
    deps: list[int]
    max_attempts: int
    state: TaskState
    status: Status = Status.WAITING
    attempt: int = 0
    lost_attempts: int = 0
    provider: str | None = None
    exit_code: int | None = None
    result_json: str = ""
    error: str = ""
    stdout_tail: str = ""
    stderr_tail: str = ""
    reason: str = ""
    current: AttemptRt | None = None  # the attempt out at a provider
    dependents: list[int] = field(default_factory=list)
    pending: int = 0  # predecessors not yet succeeded
    started_at: float = 0.0  # when the current attempt started, for overdue checks
    # For /metrics (changes.Timing), not persisted: when it last became ready to dispatch (into
    # the ready queue or the continuation line), and when its provider's loss handed it on.
    ready_at: float = 0.0
    lost_at: float = 0.0
    progress: int = 0  # the attempt's progress at the last check
    checkpoint: str = ""  # the latest checkpoint of any attempt: where the next one starts
    checkpoints: int = 0  # checkpoints received since the server started, counted as progress
    late: str = ""  # "start" past its start deadline, "run" past its finish deadline
    # The raw properties the status was normalized from: the environment's (process, python,
    # external) when it decided the state, else jobplane's own ({} here; state and attempt).
    environment: str = "jobplane"
    raw: dict[str, str] = field(default_factory=dict)
    reruns: int = 0  # queued again after transient failures; not counted against max_attempts
    attempt_base: int = 0  # attempts made before its job was last rerun by request (reopen.py)
    fence: Fence | None = None  # an earlier attempt that may still run: no new one before it ends
    # While queued after its attempt was handed on: the outside job that attempt followed,
    # which the next attempt adopts instead of submitting again (adoption.py).
    adopt_job: str = ""
    # Held while it runs (suspension.py): {} or {"mode": "suspend" | "requeue", "cause":
    # "hold" | "condition", "since": when, "reason": why}.
    suspended: dict = field(default_factory=dict)
    held_attempts: int = 0  # attempts stopped by a hold and queued again; not counted against max_attempts
    # Attempts queued ahead that their agent gave back unstarted (ahead.py); not counted against
    # max_attempts, and, unlike held ones, no exemption from late-to-start: the task never started.
    given_back: int = 0
    paused: float = 0.0  # seconds the current attempt spent suspended: its finish deadline moves on by them

    @property
    def tries(self) -> int:
        """Attempts that count against max_attempts: since its job was last rerun, neither lost
        with their provider, rerun after a transient failure, requeued by a hold nor given back
        unstarted."""
        return (self.attempt - self.attempt_base - self.lost_attempts - self.reruns - self.held_attempts
                - self.given_back)


@dataclass(eq=False)
class ProviderRt:
    id: str
    state: ProviderState
    facts: dict = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    slots: int = 0
    heartbeat: float = 1.0
    connect_time: float | None = None
    last_seen: float | None = None
    conn_id: int = 0  # the live stream; 0 = none
    accepting: bool = False
    in_flight: set[int] = field(default_factory=set)
    epoch: int = 0  # bumps on every (dis)connect so stale grace timers do nothing
    standby: bool = False  # started with --standby
    drained: bool = False  # an operator drained it: no work until further notice
    before_suspect: ProviderState = ProviderState.ACTIVE  # its state before it fell silent
    idle_since: float | None = None
    probe_id: int = 0  # an unanswered probe, if any
    probe_deadline: float = 0.0
    probe_sent: float = 0.0  # when the unanswered probe went out
    took_continuations: bool = False  # a standby given continuations: promoted once none is left
    promoted: bool = False  # a standby promoted for good (continuations, a lost provider's place): stays ACTIVE
    inventory: dict = field(default_factory=dict)  # signature id -> inventory.InvEntry
    scanning: dict = field(default_factory=dict)  # signature id -> (asked at, source), not yet answered
    live: dict[str, float] = field(default_factory=dict)  # the facts of its latest heartbeat
    kill_deadline: float = 0.0  # Hello.kill_deadline_seconds: how its keeper bounds stranded attempts
    containment: str = ""
    backoff_cap: float = 0.0  # Hello.reconnect_backoff_max_seconds; sizes the restart grace
    closed_at: float | None = None  # when its stream closed while it was heard from (not silent)
    grace_until: float | None = None  # the end of the restart grace it is given after a server restart
    leaving: bool = False  # it said goodbye: its attempts are handed on, it takes no work
    close_when_clear: bool = False  # revoked: close its stream once it confirms its attempts stopped
    stop_check: bool = False  # a check on stops it has not confirmed is due (fencing.check_stops)
    capacity: Resources | None = None  # what its agent advertised; None: nothing (capacity.py)
    ahead: int = 0  # Hello.queue_ahead: tasks its agent holds queued beyond its slots (ahead.py)
    finishes: deque | None = None  # when its latest attempts finished, if ahead (ahead.py)
    gives_back: bool = False  # Hello.gives_back_unstarted: it takes back attempts not started (ahead.py)

    @property
    def free(self) -> int:
        return self.slots - len(self.in_flight) if self.accepting and self.state == ProviderState.ACTIVE else 0


@dataclass
class Counters:
    """Next ids; loaded from the database's maxima on start."""

    job: int = 1
    task: int = 1
    attempt: int = 1
    event: int = 1
    continuation: int = 1
    probe: int = 1

    def take(self, name: str, n: int = 1) -> int:
        first = getattr(self, name)
        setattr(self, name, first + n)
        return first


@dataclass
class EngineConfig:
    """How the engine supervises and retries; built from ServerConfig (server/config.py)."""

    reconnect_grace: float = 1.0
    restart_grace: float = 0.0  # after a server restart; 0: sized from each agent's reconnect backoff
    heartbeat_tolerance: float = 2.0
    probe_deadline: float = 1.0
    standby_idle: float = 5.0
    retry_backoff: float = 1.0
    retry_backoff_max: float = 60.0
    terminate_grace: float = 5.0
    # The calendar continuation timing rules are read in.
    timezone: str = "UTC"
    period_ends: tuple[str, ...] = ()
    inventory_ttl: float = 300.0  # seconds a scan result counts as fresh
    learn_conflicts: int = 0  # a pair of job classes failing together this often becomes a rule (0: never)
    # How a schedule's runs are extracted (as a submit's are: ServerConfig's values).
    max_tasks_per_job: int = MAX_TASKS_PER_JOB
    default_max_attempts: int = 1
