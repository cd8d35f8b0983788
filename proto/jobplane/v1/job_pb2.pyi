import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from jobplane.v1 import event_pb2 as _event_pb2
from jobplane.v1 import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class ConditionLostAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONDITION_LOST_ACTION_UNSPECIFIED: _ClassVar[ConditionLostAction]
    CONDITION_LOST_ACTION_CONTINUE: _ClassVar[ConditionLostAction]
    CONDITION_LOST_ACTION_SUSPEND: _ClassVar[ConditionLostAction]
    CONDITION_LOST_ACTION_REQUEUE: _ClassVar[ConditionLostAction]

class Comparison(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPARISON_UNSPECIFIED: _ClassVar[Comparison]
    COMPARISON_LESS: _ClassVar[Comparison]
    COMPARISON_LESS_OR_EQUAL: _ClassVar[Comparison]
    COMPARISON_GREATER: _ClassVar[Comparison]
    COMPARISON_GREATER_OR_EQUAL: _ClassVar[Comparison]
    COMPARISON_EQUAL: _ClassVar[Comparison]
    COMPARISON_NOT_EQUAL: _ClassVar[Comparison]

class LockMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOCK_MODE_UNSPECIFIED: _ClassVar[LockMode]
    LOCK_MODE_READ: _ClassVar[LockMode]
    LOCK_MODE_WRITE: _ClassVar[LockMode]

class ContinuationRuleKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTINUATION_RULE_KIND_UNSPECIFIED: _ClassVar[ContinuationRuleKind]
    CONTINUATION_RULE_KIND_END_OF_MONTH: _ClassVar[ContinuationRuleKind]
    CONTINUATION_RULE_KIND_END_OF_QUARTER: _ClassVar[ContinuationRuleKind]
    CONTINUATION_RULE_KIND_END_OF_YEAR: _ClassVar[ContinuationRuleKind]
    CONTINUATION_RULE_KIND_END_OF_PERIOD: _ClassVar[ContinuationRuleKind]
    CONTINUATION_RULE_KIND_DATE: _ClassVar[ContinuationRuleKind]
    CONTINUATION_RULE_KIND_CRON: _ClassVar[ContinuationRuleKind]

class HoldMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOLD_MODE_UNSPECIFIED: _ClassVar[HoldMode]
    HOLD_MODE_SUSPEND: _ClassVar[HoldMode]
    HOLD_MODE_REQUEUE: _ClassVar[HoldMode]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
CONDITION_LOST_ACTION_UNSPECIFIED: ConditionLostAction
CONDITION_LOST_ACTION_CONTINUE: ConditionLostAction
CONDITION_LOST_ACTION_SUSPEND: ConditionLostAction
CONDITION_LOST_ACTION_REQUEUE: ConditionLostAction
COMPARISON_UNSPECIFIED: Comparison
COMPARISON_LESS: Comparison
COMPARISON_LESS_OR_EQUAL: Comparison
COMPARISON_GREATER: Comparison
COMPARISON_GREATER_OR_EQUAL: Comparison
COMPARISON_EQUAL: Comparison
COMPARISON_NOT_EQUAL: Comparison
LOCK_MODE_UNSPECIFIED: LockMode
LOCK_MODE_READ: LockMode
LOCK_MODE_WRITE: LockMode
CONTINUATION_RULE_KIND_UNSPECIFIED: ContinuationRuleKind
CONTINUATION_RULE_KIND_END_OF_MONTH: ContinuationRuleKind
CONTINUATION_RULE_KIND_END_OF_QUARTER: ContinuationRuleKind
CONTINUATION_RULE_KIND_END_OF_YEAR: ContinuationRuleKind
CONTINUATION_RULE_KIND_END_OF_PERIOD: ContinuationRuleKind
CONTINUATION_RULE_KIND_DATE: ContinuationRuleKind
CONTINUATION_RULE_KIND_CRON: ContinuationRuleKind
HOLD_MODE_UNSPECIFIED: HoldMode
HOLD_MODE_SUSPEND: HoldMode
HOLD_MODE_REQUEUE: HoldMode

class MatrixParameter(_message.Message):
    __slots__ = ("name", "values_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    values_json: str
    def __init__(self, name: _Optional[str] = ..., values_json: _Optional[str] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("name", "command", "python", "args_json", "env", "cwd", "timeout_seconds", "after", "requires", "max_attempts", "matrix", "items_json", "chunk_size", "expected_seconds", "retry_backoff_seconds", "retry_on", "prerequisites", "external", "start_by", "finish_by", "max_wait_seconds", "max_runtime_seconds", "slurm", "lateness", "retry_failures", "resources")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class RequiresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    PYTHON_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    ITEMS_JSON_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETRY_BACKOFF_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETRY_ON_FIELD_NUMBER: _ClassVar[int]
    PREREQUISITES_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    START_BY_FIELD_NUMBER: _ClassVar[int]
    FINISH_BY_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SLURM_FIELD_NUMBER: _ClassVar[int]
    LATENESS_FIELD_NUMBER: _ClassVar[int]
    RETRY_FAILURES_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    command: _containers.RepeatedScalarFieldContainer[str]
    python: str
    args_json: str
    env: _containers.ScalarMap[str, str]
    cwd: str
    timeout_seconds: float
    after: _containers.RepeatedScalarFieldContainer[str]
    requires: _containers.ScalarMap[str, str]
    max_attempts: int
    matrix: _containers.RepeatedCompositeFieldContainer[MatrixParameter]
    items_json: str
    chunk_size: int
    expected_seconds: float
    retry_backoff_seconds: float
    retry_on: _containers.RepeatedScalarFieldContainer[str]
    prerequisites: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    external: ExternalSpec
    start_by: _timestamp_pb2.Timestamp
    finish_by: _timestamp_pb2.Timestamp
    max_wait_seconds: float
    max_runtime_seconds: float
    slurm: SlurmSpec
    lateness: Lateness
    retry_failures: RetryFailures
    resources: ResourceRequest
    def __init__(self, name: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., python: _Optional[str] = ..., args_json: _Optional[str] = ..., env: _Optional[_Mapping[str, str]] = ..., cwd: _Optional[str] = ..., timeout_seconds: _Optional[float] = ..., after: _Optional[_Iterable[str]] = ..., requires: _Optional[_Mapping[str, str]] = ..., max_attempts: _Optional[int] = ..., matrix: _Optional[_Iterable[_Union[MatrixParameter, _Mapping]]] = ..., items_json: _Optional[str] = ..., chunk_size: _Optional[int] = ..., expected_seconds: _Optional[float] = ..., retry_backoff_seconds: _Optional[float] = ..., retry_on: _Optional[_Iterable[str]] = ..., prerequisites: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., external: _Optional[_Union[ExternalSpec, _Mapping]] = ..., start_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_wait_seconds: _Optional[float] = ..., max_runtime_seconds: _Optional[float] = ..., slurm: _Optional[_Union[SlurmSpec, _Mapping]] = ..., lateness: _Optional[_Union[Lateness, _Mapping]] = ..., retry_failures: _Optional[_Union[RetryFailures, _Mapping]] = ..., resources: _Optional[_Union[ResourceRequest, _Mapping]] = ...) -> None: ...

class ResourceRequest(_message.Message):
    __slots__ = ("cpus", "memory", "gpus", "custom")
    class CustomEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    cpus: float
    memory: str
    gpus: int
    custom: _containers.ScalarMap[str, int]
    def __init__(self, cpus: _Optional[float] = ..., memory: _Optional[str] = ..., gpus: _Optional[int] = ..., custom: _Optional[_Mapping[str, int]] = ...) -> None: ...

class RetryFailures(_message.Message):
    __slots__ = ("any", "timeout", "exit_codes")
    ANY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODES_FIELD_NUMBER: _ClassVar[int]
    any: bool
    timeout: bool
    exit_codes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, any: _Optional[bool] = ..., timeout: _Optional[bool] = ..., exit_codes: _Optional[_Iterable[int]] = ...) -> None: ...

class Lateness(_message.Message):
    __slots__ = ("start_by", "finish_by", "max_wait_seconds", "max_runtime_seconds")
    START_BY_FIELD_NUMBER: _ClassVar[int]
    FINISH_BY_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    start_by: _timestamp_pb2.Timestamp
    finish_by: _timestamp_pb2.Timestamp
    max_wait_seconds: float
    max_runtime_seconds: float
    def __init__(self, start_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_wait_seconds: _Optional[float] = ..., max_runtime_seconds: _Optional[float] = ...) -> None: ...

class Deadline(_message.Message):
    __slots__ = ("time", "after_seconds")
    TIME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    after_seconds: float
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., after_seconds: _Optional[float] = ...) -> None: ...

class SlurmSpec(_message.Message):
    __slots__ = ("script", "args", "wrap", "partition", "time_limit", "cpus", "mem", "array", "account", "qos", "extra_args")
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    WRAP_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEM_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    QOS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_ARGS_FIELD_NUMBER: _ClassVar[int]
    script: str
    args: _containers.RepeatedScalarFieldContainer[str]
    wrap: str
    partition: str
    time_limit: str
    cpus: int
    mem: str
    array: str
    account: str
    qos: str
    extra_args: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, script: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., wrap: _Optional[str] = ..., partition: _Optional[str] = ..., time_limit: _Optional[str] = ..., cpus: _Optional[int] = ..., mem: _Optional[str] = ..., array: _Optional[str] = ..., account: _Optional[str] = ..., qos: _Optional[str] = ..., extra_args: _Optional[_Iterable[str]] = ...) -> None: ...

class ExternalSpec(_message.Message):
    __slots__ = ("submit", "poll", "cancel", "poll_interval_seconds")
    SUBMIT_FIELD_NUMBER: _ClassVar[int]
    POLL_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    POLL_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    submit: _containers.RepeatedScalarFieldContainer[str]
    poll: _containers.RepeatedScalarFieldContainer[str]
    cancel: _containers.RepeatedScalarFieldContainer[str]
    poll_interval_seconds: float
    def __init__(self, submit: _Optional[_Iterable[str]] = ..., poll: _Optional[_Iterable[str]] = ..., cancel: _Optional[_Iterable[str]] = ..., poll_interval_seconds: _Optional[float] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("name", "priority", "labels", "tasks", "wait_for_providers", "continuation_priority", "continuation_rules", "start_by", "finish_by", "max_wait_seconds", "max_runtime_seconds", "job_class", "run_window", "on_condition_lost", "hold_until", "give_up_after", "give_up_after_seconds", "transient", "conditions", "locks", "lateness", "give_up", "resource_locks", "fact_conditions", "notify", "task_resources")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LocksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ResourceLocksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: LockMode
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[LockMode, str]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_RULES_FIELD_NUMBER: _ClassVar[int]
    START_BY_FIELD_NUMBER: _ClassVar[int]
    FINISH_BY_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    JOB_CLASS_FIELD_NUMBER: _ClassVar[int]
    RUN_WINDOW_FIELD_NUMBER: _ClassVar[int]
    ON_CONDITION_LOST_FIELD_NUMBER: _ClassVar[int]
    HOLD_UNTIL_FIELD_NUMBER: _ClassVar[int]
    GIVE_UP_AFTER_FIELD_NUMBER: _ClassVar[int]
    GIVE_UP_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRANSIENT_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    LATENESS_FIELD_NUMBER: _ClassVar[int]
    GIVE_UP_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_LOCKS_FIELD_NUMBER: _ClassVar[int]
    FACT_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    TASK_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    priority: int
    labels: _containers.ScalarMap[str, str]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    wait_for_providers: bool
    continuation_priority: int
    continuation_rules: _containers.RepeatedCompositeFieldContainer[ContinuationRule]
    start_by: _timestamp_pb2.Timestamp
    finish_by: _timestamp_pb2.Timestamp
    max_wait_seconds: float
    max_runtime_seconds: float
    job_class: str
    run_window: str
    on_condition_lost: ConditionLostAction
    hold_until: _timestamp_pb2.Timestamp
    give_up_after: _timestamp_pb2.Timestamp
    give_up_after_seconds: float
    transient: TransientFailures
    conditions: _containers.RepeatedScalarFieldContainer[str]
    locks: _containers.ScalarMap[str, str]
    lateness: Lateness
    give_up: Deadline
    resource_locks: _containers.ScalarMap[str, LockMode]
    fact_conditions: _containers.RepeatedCompositeFieldContainer[FactCondition]
    notify: _containers.RepeatedCompositeFieldContainer[Notify]
    task_resources: ResourceRequest
    def __init__(self, name: _Optional[str] = ..., priority: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ..., wait_for_providers: _Optional[bool] = ..., continuation_priority: _Optional[int] = ..., continuation_rules: _Optional[_Iterable[_Union[ContinuationRule, _Mapping]]] = ..., start_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_wait_seconds: _Optional[float] = ..., max_runtime_seconds: _Optional[float] = ..., job_class: _Optional[str] = ..., run_window: _Optional[str] = ..., on_condition_lost: _Optional[_Union[ConditionLostAction, str]] = ..., hold_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., give_up_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., give_up_after_seconds: _Optional[float] = ..., transient: _Optional[_Union[TransientFailures, _Mapping]] = ..., conditions: _Optional[_Iterable[str]] = ..., locks: _Optional[_Mapping[str, str]] = ..., lateness: _Optional[_Union[Lateness, _Mapping]] = ..., give_up: _Optional[_Union[Deadline, _Mapping]] = ..., resource_locks: _Optional[_Mapping[str, LockMode]] = ..., fact_conditions: _Optional[_Iterable[_Union[FactCondition, _Mapping]]] = ..., notify: _Optional[_Iterable[_Union[Notify, _Mapping]]] = ..., task_resources: _Optional[_Union[ResourceRequest, _Mapping]] = ...) -> None: ...

class Notify(_message.Message):
    __slots__ = ("on", "webhook", "command")
    ON_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    on: _containers.RepeatedScalarFieldContainer[_status_pb2.NormalizedStatus]
    webhook: str
    command: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, on: _Optional[_Iterable[_Union[_status_pb2.NormalizedStatus, str]]] = ..., webhook: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ...) -> None: ...

class FactCondition(_message.Message):
    __slots__ = ("fact", "op", "value")
    FACT_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    fact: str
    op: Comparison
    value: float
    def __init__(self, fact: _Optional[str] = ..., op: _Optional[_Union[Comparison, str]] = ..., value: _Optional[float] = ...) -> None: ...

class TransientFailures(_message.Message):
    __slots__ = ("exit_codes", "raw_statuses", "max_reruns", "backoff_seconds")
    EXIT_CODES_FIELD_NUMBER: _ClassVar[int]
    RAW_STATUSES_FIELD_NUMBER: _ClassVar[int]
    MAX_RERUNS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_SECONDS_FIELD_NUMBER: _ClassVar[int]
    exit_codes: _containers.RepeatedScalarFieldContainer[int]
    raw_statuses: _containers.RepeatedScalarFieldContainer[str]
    max_reruns: int
    backoff_seconds: float
    def __init__(self, exit_codes: _Optional[_Iterable[int]] = ..., raw_statuses: _Optional[_Iterable[str]] = ..., max_reruns: _Optional[int] = ..., backoff_seconds: _Optional[float] = ...) -> None: ...

class ContinuationRule(_message.Message):
    __slots__ = ("kind", "priority", "value", "days", "rule_kind")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    RULE_KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    priority: int
    value: str
    days: int
    rule_kind: ContinuationRuleKind
    def __init__(self, kind: _Optional[str] = ..., priority: _Optional[int] = ..., value: _Optional[str] = ..., days: _Optional[int] = ..., rule_kind: _Optional[_Union[ContinuationRuleKind, str]] = ...) -> None: ...

class TaskCounts(_message.Message):
    __slots__ = ("total", "waiting", "running", "success", "failure", "cancel")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    total: int
    waiting: int
    running: int
    success: int
    failure: int
    cancel: int
    def __init__(self, total: _Optional[int] = ..., waiting: _Optional[int] = ..., running: _Optional[int] = ..., success: _Optional[int] = ..., failure: _Optional[int] = ..., cancel: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "spec", "state", "status", "counts", "submit_time", "start_time", "end_time", "reason", "owner", "environment", "raw", "hold", "schedule_id")
    class RawEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: JobSpec
    state: JobState
    status: _status_pb2.NormalizedStatus
    counts: TaskCounts
    submit_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    reason: str
    owner: str
    environment: str
    raw: _containers.ScalarMap[str, str]
    hold: str
    schedule_id: str
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., status: _Optional[_Union[_status_pb2.NormalizedStatus, str]] = ..., counts: _Optional[_Union[TaskCounts, _Mapping]] = ..., submit_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., owner: _Optional[str] = ..., environment: _Optional[str] = ..., raw: _Optional[_Mapping[str, str]] = ..., hold: _Optional[str] = ..., schedule_id: _Optional[str] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec", "request_id", "call_id")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    spec: JobSpec
    request_id: str
    call_id: str
    def __init__(self, spec: _Optional[_Union[JobSpec, _Mapping]] = ..., request_id: _Optional[str] = ..., call_id: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job", "already_submitted")
    JOB_FIELD_NUMBER: _ClassVar[int]
    ALREADY_SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    job: Job
    already_submitted: bool
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., already_submitted: _Optional[bool] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id", "summary")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    summary: bool
    def __init__(self, job_id: _Optional[str] = ..., summary: _Optional[bool] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter", "order_by", "view", "full")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    order_by: str
    view: str
    full: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ..., view: _Optional[str] = ..., full: _Optional[bool] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SummarizeJobsRequest(_message.Message):
    __slots__ = ("filter", "view")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    filter: str
    view: str
    def __init__(self, filter: _Optional[str] = ..., view: _Optional[str] = ...) -> None: ...

class StatusCount(_message.Message):
    __slots__ = ("status", "count")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.NormalizedStatus
    count: int
    def __init__(self, status: _Optional[_Union[_status_pb2.NormalizedStatus, str]] = ..., count: _Optional[int] = ...) -> None: ...

class SummarizeJobsResponse(_message.Message):
    __slots__ = ("counts", "total")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[StatusCount]
    total: int
    def __init__(self, counts: _Optional[_Iterable[_Union[StatusCount, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class HoldJobRequest(_message.Message):
    __slots__ = ("job_id", "reason", "mode")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    mode: HoldMode
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ..., mode: _Optional[_Union[HoldMode, str]] = ...) -> None: ...

class HoldJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ReleaseJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ReleaseJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class RerunJobRequest(_message.Message):
    __slots__ = ("job_id", "failed_only")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FAILED_ONLY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    failed_only: bool
    def __init__(self, job_id: _Optional[str] = ..., failed_only: _Optional[bool] = ...) -> None: ...

class RerunJobResponse(_message.Message):
    __slots__ = ("job", "task_ids")
    JOB_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    job: Job
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PurgeJobsRequest(_message.Message):
    __slots__ = ("finished_before",)
    FINISHED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    finished_before: _timestamp_pb2.Timestamp
    def __init__(self, finished_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PurgeJobsResponse(_message.Message):
    __slots__ = ("purged_count",)
    PURGED_COUNT_FIELD_NUMBER: _ClassVar[int]
    purged_count: int
    def __init__(self, purged_count: _Optional[int] = ...) -> None: ...

class JobServiceWatchEventsRequest(_message.Message):
    __slots__ = ("job_id", "after_event_id", "filter", "view")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_event_id: int
    filter: str
    view: str
    def __init__(self, job_id: _Optional[str] = ..., after_event_id: _Optional[int] = ..., filter: _Optional[str] = ..., view: _Optional[str] = ...) -> None: ...

class JobServiceWatchEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ...) -> None: ...
