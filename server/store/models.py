"""peewee models. They bind to `database` (a DatabaseProxy) so they can be declared
before the server picks SQLite or PostgreSQL from its URL."""

from __future__ import annotations

from peewee import (
    AutoField,
    BlobField,
    CharField,
    DatabaseProxy,
    DoubleField,
    IntegerField,
    Model,
    TextField,
)

database = DatabaseProxy()


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class JobSpecRow(BaseModel):
    """A job's whole spec, its tasks' included, written once when it is submitted. It is kept
    apart from the job row because SQLite rewrites a row whole on every update, overflow pages
    and all: a 3,000-task spec inside the job row was 150 KB written per group commit."""

    job = IntegerField(primary_key=True)
    spec = BlobField()  # serialized jobplane.v1.JobSpec as submitted

    class Meta:
        table_name = "job_spec"


class JobRow(BaseModel):
    id = IntegerField(primary_key=True)
    name = CharField(max_length=200)
    priority = IntegerField(default=0)
    # the spec as submitted without its tasks (a job of older versions: with them); the whole
    # spec is in job_spec, out of this row, which every batch of the job's changes rewrites
    spec = BlobField()
    state = IntegerField(index=True)
    status = IntegerField(index=True)  # normalized, kept current for filters
    counts = TextField(default="{}")  # JSON: tasks per normalized bucket
    reason = TextField(default="")
    submit_time = DoubleField()
    start_time = DoubleField(null=True)
    end_time = DoubleField(null=True)
    owner = CharField(max_length=200, default="", index=True)  # the submitting user
    hold = TextField(default="")  # held by hand: who and why; "" = not held
    # Idempotent submit (AIP-155): the caller's request id (null: none) and the sha256 of the
    # spec it came with. A retry within the TTL gets this job back (domain/requests.py).
    request_id = CharField(max_length=36, null=True)
    request_digest = CharField(max_length=64, default="")
    request_call = CharField(max_length=64, default="")  # the submitting call's call_id, "" if none
    schedule = IntegerField(default=0)  # the schedule whose run it is; 0: submitted by hand

    class Meta:
        table_name = "job"
        # A request id makes one job per identity; the others answer the filter keys of jobs
        # (status, state and owner are indexed above; labels and environments in job_tag).
        indexes = ((("owner", "request_id"), True), (("name",), False), (("priority",), False),
                   (("submit_time",), False), (("start_time",), False), (("end_time",), False))


class TaskRow(BaseModel):
    id = IntegerField(primary_key=True)
    job = IntegerField()
    idx = IntegerField()  # position within the job
    name = CharField(max_length=400)
    group = CharField(max_length=200)
    spec = BlobField()  # serialized, expanded jobplane.v1.TaskSpec
    deps = TextField(default="[]")  # JSON list of task ids that must succeed first
    max_attempts = IntegerField(default=1)
    state = IntegerField()
    status = IntegerField()
    attempt = IntegerField(default=0)
    lost_attempts = IntegerField(default=0)
    provider = CharField(max_length=200, null=True)
    exit_code = IntegerField(null=True)
    result_json = TextField(default="")
    error = TextField(default="")
    stdout_tail = TextField(default="")
    stderr_tail = TextField(default="")
    reason = TextField(default="")
    checkpoint = TextField(default="")  # the latest, JSON: where the next attempt starts
    environment = CharField(max_length=32, default="jobplane")  # where `raw` comes from
    raw = TextField(default="{}")  # JSON: the raw properties `status` was normalized from
    reruns = IntegerField(default=0)  # queued again after transient failures
    attempt_base = IntegerField(default=0)  # attempts made before the job was last rerun by request
    fence = TextField(default="")  # JSON: an earlier attempt that may still run (domain/fences.py)
    suspended = TextField(default="")  # JSON: held while it runs (domain/suspension.py); "" = not
    held_attempts = IntegerField(default=0)  # attempts stopped by a hold and queued again
    given_back = IntegerField(default=0)  # attempts queued ahead its agent gave back unstarted (domain/ahead.py)
    paused = DoubleField(default=0.0)  # seconds the current attempt spent suspended (domain/lateness.py)

    class Meta:
        table_name = "task"
        # (job, idx) for the hot queries; the others answer each filter key of tasks, so a
        # listing reads only what matches (the promoted raw properties: store/indexes.py).
        # Updates rewrite only the indexes of columns whose values change.
        # provider and exit_code: partial (partial_index below).
        indexes = ((("job", "idx"), True), (("status",), False), (("state",), False), (("name",), False),
                   (("group",), False), (("environment",), False), (("attempt",), False))


class AttemptRow(BaseModel):
    id = IntegerField(primary_key=True)
    task = IntegerField()
    number = IntegerField()
    provider = CharField(max_length=200)
    assign_time = DoubleField()
    start_time = DoubleField(null=True)
    end_time = DoubleField(null=True)
    outcome = IntegerField(default=0)
    exit_code = IntegerField(null=True)
    reason = TextField(default="")
    checkpoint = TextField(default="")  # the latest this attempt reported
    resumed_from = TextField(default="")  # the checkpoint it started from
    environment = CharField(max_length=32, default="")  # "" until the environment reported
    raw = TextField(default="{}")  # JSON: the latest raw properties reported
    # The outside scheduler's job it followed (external, slurm): submitted, or adopted from the
    # attempt before it. A task queued after such an attempt was lost adopts it (domain/adoption.py).
    external_job_id = CharField(max_length=256, default="")

    class Meta:
        table_name = "attempt"
        # started/ended of tasks (their latest attempt's) are looked up by start_time and
        # end_time: partial indexes (partial_index below)
        indexes = ((("task", "number"), True),)


def partial_index(model, column: str) -> None:
    """An index of `column` over the rows where it has a value (IS NOT NULL), named as a whole
    one would be. A row is written to it only once the value is set: a task's provider and exit
    code, an attempt's start and end are NULL when the row is inserted, so the insert writes no
    entry there and the update that sets the value one (not a delete and an insert). Every filter
    on the column compares it to a value, which implies IS NOT NULL: both databases answer it
    from this index (tests/integration/test_list_indexes.py); no query looks up its NULLs."""
    field = model._meta.fields[column]
    model.add_index(model.index(field, name=f"{model._meta.table_name}_{column}").where(field.is_null(False)))


class JobTagRow(BaseModel):
    """A fixed fact of a job that filters look up by key, so they are answered by an index:
    each label (key `label.KEY`) and each environment of its tasks (key `environment`).
    `number`: the value when it is a number (label.KEY compares as a number then)."""

    id = AutoField()
    job = IntegerField()
    key = CharField(max_length=200)
    value = TextField()
    number = DoubleField(null=True)

    class Meta:
        table_name = "job_tag"
        indexes = ((("key", "value", "job"), False), (("key", "number", "job"), False), (("job",), False))


for _model, _column in ((TaskRow, "provider"), (TaskRow, "exit_code"), (AttemptRow, "start_time"),
                       (AttemptRow, "end_time")):
    partial_index(_model, _column)


class ProviderRow(BaseModel):
    id = CharField(max_length=200, primary_key=True)
    state = IntegerField()
    facts = TextField(default="{}")
    labels = TextField(default="{}")
    slots = IntegerField(default=0)
    heartbeat = DoubleField(default=1.0)
    connect_time = DoubleField(null=True)
    last_seen = DoubleField(null=True)
    kill_deadline = DoubleField(default=0.0)  # the agent's promise on stranded attempts
    containment = CharField(max_length=32, default="")
    backoff_cap = DoubleField(default=0.0)  # its longest reconnect pause: sizes the restart grace
    promoted = IntegerField(default=0)  # 1: a standby promoted for good: ACTIVE across reconnects and restarts
    drained = IntegerField(default=0)  # 1: drained by an operator: no work, connected or not, until resumed
    capacity = TextField(default="null")  # what its agent advertised (codec.dump_resources); null: nothing

    class Meta:
        table_name = "provider"


class EventRow(BaseModel):
    id = IntegerField(primary_key=True)  # assigned by the server: monotonic
    time = DoubleField()
    kind = IntegerField()
    job = IntegerField(null=True)
    task = IntegerField(null=True)
    task_name = CharField(max_length=400, default="")
    provider = CharField(max_length=200, default="")
    attempt = IntegerField(default=0)
    raw_status = CharField(max_length=64, default="")
    raw = TextField(default="{}")
    status = IntegerField(default=0)
    message = TextField(default="")
    environment = CharField(max_length=32, default="")

    class Meta:
        table_name = "event"
        indexes = ((("job", "id"), False),)


class ContinuationRow(BaseModel):
    id = IntegerField(primary_key=True)
    provider = CharField(max_length=200, index=True)
    time = DoubleField()
    reason = TextField(default="")

    class Meta:
        table_name = "continuation"


class ContinuedTaskRow(BaseModel):
    id = AutoField()
    continuation = IntegerField(index=True)
    task = IntegerField()
    job = IntegerField()
    task_name = CharField(max_length=400, default="")
    from_attempt = IntegerField()
    position = IntegerField(default=0)
    priority = IntegerField(default=0)  # the effective continuation priority at the failure
    rule = CharField(max_length=200, default="")  # the timing rule that set it, if any
    # Filled in when the task is dispatched again; empty/null while it waits.
    to_provider = CharField(max_length=200, default="", index=True)
    to_attempt = IntegerField(default=0)
    dispatch_time = DoubleField(null=True)
    checkpoint = TextField(default="")

    class Meta:
        table_name = "continued_task"


class TokenRow(BaseModel):
    """A join token (role agent) or an API token; only the secret's hash is kept."""

    id = CharField(max_length=32, primary_key=True)  # public: the secret's id part
    secret_hash = CharField(max_length=64)
    role = IntegerField()
    user = CharField(max_length=200, default="")
    groups = TextField(default="[]")  # JSON list
    name_prefix = CharField(max_length=200, default="")
    create_time = DoubleField()
    expire_time = DoubleField(null=True)
    uses_left = IntegerField(default=-1)  # -1: unlimited
    revoked = IntegerField(default=0)
    created_by = CharField(max_length=200, default="")

    class Meta:
        table_name = "token"


class CertificateRow(BaseModel):
    """A certificate the CA issued to an agent; revoked ones are refused."""

    serial = CharField(max_length=64, primary_key=True)  # decimal
    identity = CharField(max_length=200, index=True)
    role = IntegerField()
    not_after = DoubleField()
    revoked = IntegerField(default=0)

    class Meta:
        table_name = "certificate"


class AuditRow(BaseModel):
    id = AutoField()
    time = DoubleField()
    identity = CharField(max_length=200)
    role = IntegerField(default=0)
    method = CharField(max_length=200)
    target = CharField(max_length=400, default="")
    code = CharField(max_length=32)
    message = TextField(default="")

    class Meta:
        table_name = "audit"


class InventoryRow(BaseModel):
    """What a provider's last scan of one prerequisite signature found."""

    id = AutoField()
    provider = CharField(max_length=200)
    signature = CharField(max_length=32)
    signature_json = TextField()  # the signature itself, to rebuild it after a restart
    description = TextField(default="")
    present = IntegerField()
    details = TextField(default="{}")
    reason = TextField(default="")
    scan_time = DoubleField()
    expire_time = DoubleField()
    source = CharField(max_length=16, default="request")

    class Meta:
        table_name = "inventory"
        indexes = ((("provider", "signature"), True),)


class PolicyRow(BaseModel):
    """One version of a normalization policy (default, group or user); the newest version is in
    force (unless it is a deletion: then the default policy's built-in rules, or none)."""

    id = AutoField()
    scope = IntegerField()  # jobplane.v1.PolicyScope
    name = CharField(max_length=200)
    version = IntegerField()
    document = TextField()  # JSON {"rules": [...]}; empty for a deletion
    time = DoubleField()
    updated_by = CharField(max_length=200, default="")
    deleted = IntegerField(default=0)

    class Meta:
        table_name = "policy"
        indexes = ((("scope", "name", "version"), True),)


class ViewRow(BaseModel):
    """A user's saved filter and sort order (ViewService)."""

    id = AutoField()
    owner = CharField(max_length=200)
    name = CharField(max_length=64)
    resource = IntegerField()  # jobplane.v1.ViewResource
    filter = TextField(default="")
    order_by = TextField(default="")
    time = DoubleField()

    class Meta:
        table_name = "saved_view"
        indexes = ((("owner", "name"), True),)


class ConflictRuleRow(BaseModel):
    """One rule of the conflict matrix (ConflictService)."""

    name = CharField(max_length=64, primary_key=True)
    document = TextField()  # JSON of the rule (see store.conflicts)
    created_by = CharField(max_length=200, default="")
    create_time = DoubleField()

    class Meta:
        table_name = "conflict_rule"


class ConflictOverlapRow(BaseModel):
    """How often a transient failure of one job class happened while another class ran."""

    id = AutoField()
    class_a = CharField(max_length=200)
    class_b = CharField(max_length=200)
    failures = IntegerField(default=0)
    last_time = DoubleField()

    class Meta:
        table_name = "conflict_overlap"
        indexes = ((("class_a", "class_b"), True),)


class LeaderRow(BaseModel):
    """The leader's lease (replicas on PostgreSQL): one row, id 1. Times are the database's
    clock, in seconds since the epoch, so replicas' clocks never matter."""

    id = IntegerField(primary_key=True)
    holder = CharField(max_length=64, default="")  # replica id; "" = never held
    epoch = IntegerField(default=0)  # one more at each change of leader; every commit checks it
    expires = DoubleField(default=0.0)
    renewed = DoubleField(default=0.0)
    address = CharField(max_length=300, default="")
    agent_address = CharField(max_length=300, default="")

    class Meta:
        table_name = "jobplane_leader"


class ReplicaRow(BaseModel):
    """Every server replica that has run on this database, with its last heartbeat."""

    id = CharField(max_length=64, primary_key=True)
    address = CharField(max_length=300, default="")
    agent_address = CharField(max_length=300, default="")
    version = CharField(max_length=40, default="")
    started = DoubleField(default=0.0)
    last_seen = DoubleField(default=0.0)

    class Meta:
        table_name = "jobplane_replica"

class AuthorityRow(BaseModel):
    """The built-in CA that every replica on a shared (PostgreSQL) database signs with: one row per
    generation, the newest current, the one before it still trusted (--rotate-ca adds one). The key
    is unencrypted PKCS#8 PEM, guarded by the database's access control; --ca-cert/--ca-key keep it
    out of the database."""

    generation = IntegerField(primary_key=True)
    cert_pem = TextField()
    key_pem = TextField()
    create_time = DoubleField()

    class Meta:
        table_name = "jobplane_authority"


class IdFloorRow(BaseModel):
    """The highest id ever used of a table rows are deleted from (purged jobs, compacted events),
    recorded before they go: a restart numbers on from it, so no id is used twice (store/idfloor.py)."""

    name = CharField(max_length=32, primary_key=True)  # job, task, attempt, event, continuation
    value = IntegerField(default=0)

    class Meta:
        table_name = "id_floor"


class ScheduleRow(BaseModel):
    """A schedule (domain/schedules.py). Deleted ones stay, marked, so their ids are never reused
    and their jobs still name them."""

    id = IntegerField(primary_key=True)
    name = CharField(max_length=200, default="")
    cron = CharField(max_length=200)
    time_zone = CharField(max_length=64)
    overlap = CharField(max_length=8)
    catch_up = IntegerField(default=0)
    spec = BlobField()  # the job spec each run submits (store/codec.py)
    owner = CharField(max_length=200, default="", index=True)
    create_time = DoubleField()
    paused = IntegerField(default=0)
    last_due = DoubleField(default=0.0)  # the last due time handled (0: none yet); the next follows it
    next_due = DoubleField(null=True)  # for reads; the leader recomputes it from last_due or resume_time
    queued = IntegerField(default=0)
    last_job = IntegerField(default=0)
    deleted = IntegerField(default=0)
    resume_time = DoubleField(default=0.0)  # when last resumed (the paused time is not caught up on)

    class Meta:
        table_name = "schedule"


class NotificationRow(BaseModel):
    """The notification outbox: one row per delivery a job's status change made, written in the
    same transaction as that change; `state` 0 pending, 1 delivered, 2 given up
    (domain/notifications.py)."""

    id = CharField(max_length=40, primary_key=True)  # "EVENT.INDEX"
    job = IntegerField(index=True)
    notify = TextField()  # JSON: the job's notify entry
    status = CharField(max_length=20)  # the normalized status it tells of
    body = TextField()  # the JSON document delivered, exactly as signed
    time = DoubleField()
    state = IntegerField(default=0, index=True)
    attempts = IntegerField(default=0)
    error = TextField(default="")
    end_time = DoubleField(null=True)

    class Meta:
        table_name = "notification"


class AlertRuleRow(BaseModel):
    """A server-wide alert rule (domain/alerts.py). Deleted ones stay, marked, so their ids are
    never reused and the deliveries they made still name them."""

    id = IntegerField(primary_key=True)
    name = CharField(max_length=200, default="")
    filter = TextField()
    notify = TextField()  # JSON: the rule's notify entry (on, webhook, command)
    created_by = CharField(max_length=200, default="")
    create_time = DoubleField()
    deleted = IntegerField(default=0)

    class Meta:
        table_name = "alert_rule"


class SecretRow(BaseModel):
    """Server-wide secrets every replica shares, by name (the notification signing key)."""

    name = CharField(max_length=64, primary_key=True)
    value = TextField()
    create_time = DoubleField()

    class Meta:
        table_name = "jobplane_secret"


ALL_MODELS = [JobRow, JobSpecRow, TaskRow, AttemptRow, JobTagRow, ProviderRow, EventRow, ContinuationRow, ContinuedTaskRow,
              TokenRow, CertificateRow, AuditRow, InventoryRow, PolicyRow, ViewRow, ConflictRuleRow,
              ConflictOverlapRow, LeaderRow, ReplicaRow, AuthorityRow, IdFloorRow, ScheduleRow, NotificationRow,
              SecretRow, AlertRuleRow]
