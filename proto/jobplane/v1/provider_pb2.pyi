import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from jobplane.v1 import job_pb2 as _job_pb2
from jobplane.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProviderState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVIDER_STATE_UNSPECIFIED: _ClassVar[ProviderState]
    PROVIDER_STATE_ACTIVE: _ClassVar[ProviderState]
    PROVIDER_STATE_SUSPECT: _ClassVar[ProviderState]
    PROVIDER_STATE_LOST: _ClassVar[ProviderState]
    PROVIDER_STATE_STANDBY: _ClassVar[ProviderState]
    PROVIDER_STATE_DRAINING: _ClassVar[ProviderState]
    PROVIDER_STATE_DRAINED: _ClassVar[ProviderState]
    PROVIDER_STATE_CONNECTING: _ClassVar[ProviderState]
    PROVIDER_STATE_REVOKED: _ClassVar[ProviderState]
    PROVIDER_STATE_STOPPED: _ClassVar[ProviderState]

class TaskReportKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_REPORT_KIND_UNSPECIFIED: _ClassVar[TaskReportKind]
    TASK_REPORT_KIND_STARTED: _ClassVar[TaskReportKind]
    TASK_REPORT_KIND_FINISHED: _ClassVar[TaskReportKind]
    TASK_REPORT_KIND_CHECKPOINT: _ClassVar[TaskReportKind]
    TASK_REPORT_KIND_STATUS: _ClassVar[TaskReportKind]

class AttemptOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTEMPT_OUTCOME_UNSPECIFIED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_SUCCEEDED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_FAILED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_CANCELLED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_TIMED_OUT: _ClassVar[AttemptOutcome]
PROVIDER_STATE_UNSPECIFIED: ProviderState
PROVIDER_STATE_ACTIVE: ProviderState
PROVIDER_STATE_SUSPECT: ProviderState
PROVIDER_STATE_LOST: ProviderState
PROVIDER_STATE_STANDBY: ProviderState
PROVIDER_STATE_DRAINING: ProviderState
PROVIDER_STATE_DRAINED: ProviderState
PROVIDER_STATE_CONNECTING: ProviderState
PROVIDER_STATE_REVOKED: ProviderState
PROVIDER_STATE_STOPPED: ProviderState
TASK_REPORT_KIND_UNSPECIFIED: TaskReportKind
TASK_REPORT_KIND_STARTED: TaskReportKind
TASK_REPORT_KIND_FINISHED: TaskReportKind
TASK_REPORT_KIND_CHECKPOINT: TaskReportKind
TASK_REPORT_KIND_STATUS: TaskReportKind
ATTEMPT_OUTCOME_UNSPECIFIED: AttemptOutcome
ATTEMPT_OUTCOME_SUCCEEDED: AttemptOutcome
ATTEMPT_OUTCOME_FAILED: AttemptOutcome
ATTEMPT_OUTCOME_CANCELLED: AttemptOutcome
ATTEMPT_OUTCOME_TIMED_OUT: AttemptOutcome

class ProviderFacts(_message.Message):
    __slots__ = ("hostname", "os", "arch", "cpu_count", "memory_bytes", "python_version")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    os: str
    arch: str
    cpu_count: int
    memory_bytes: int
    python_version: str
    def __init__(self, hostname: _Optional[str] = ..., os: _Optional[str] = ..., arch: _Optional[str] = ..., cpu_count: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., python_version: _Optional[str] = ...) -> None: ...

class Provider(_message.Message):
    __slots__ = ("id", "state", "facts", "labels", "slots", "slots_in_use", "heartbeat_interval_seconds", "connect_time", "last_seen_time", "containment", "kill_deadline_seconds", "restart_grace_until", "reconnect_backoff_max_seconds", "drained", "capacity", "in_use", "queued_ahead")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_IN_USE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    CONTAINMENT_FIELD_NUMBER: _ClassVar[int]
    KILL_DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESTART_GRACE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_BACKOFF_MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    IN_USE_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AHEAD_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: ProviderState
    facts: ProviderFacts
    labels: _containers.ScalarMap[str, str]
    slots: int
    slots_in_use: int
    heartbeat_interval_seconds: float
    connect_time: _timestamp_pb2.Timestamp
    last_seen_time: _timestamp_pb2.Timestamp
    containment: str
    kill_deadline_seconds: float
    restart_grace_until: _timestamp_pb2.Timestamp
    reconnect_backoff_max_seconds: float
    drained: bool
    capacity: ResourceCapacity
    in_use: ResourceCapacity
    queued_ahead: int
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[ProviderState, str]] = ..., facts: _Optional[_Union[ProviderFacts, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., slots: _Optional[int] = ..., slots_in_use: _Optional[int] = ..., heartbeat_interval_seconds: _Optional[float] = ..., connect_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., containment: _Optional[str] = ..., kill_deadline_seconds: _Optional[float] = ..., restart_grace_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reconnect_backoff_max_seconds: _Optional[float] = ..., drained: _Optional[bool] = ..., capacity: _Optional[_Union[ResourceCapacity, _Mapping]] = ..., in_use: _Optional[_Union[ResourceCapacity, _Mapping]] = ..., queued_ahead: _Optional[int] = ...) -> None: ...

class ResourceCapacity(_message.Message):
    __slots__ = ("cpus", "memory_bytes", "gpus", "custom")
    class CustomEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    cpus: float
    memory_bytes: int
    gpus: int
    custom: _containers.ScalarMap[str, int]
    def __init__(self, cpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., gpus: _Optional[int] = ..., custom: _Optional[_Mapping[str, int]] = ...) -> None: ...

class AttemptRef(_message.Message):
    __slots__ = ("task_id", "attempt", "handed_on_external_job_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    HANDED_ON_EXTERNAL_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    handed_on_external_job_id: str
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., handed_on_external_job_id: _Optional[str] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("name", "facts", "labels", "slots", "heartbeat_interval_seconds", "running", "standby", "kill_deadline_seconds", "containment", "reconnect_backoff_max_seconds", "capacity", "acks_with_assignments", "queue_ahead", "gives_back_unstarted")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    STANDBY_FIELD_NUMBER: _ClassVar[int]
    KILL_DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONTAINMENT_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_BACKOFF_MAX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ACKS_WITH_ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_AHEAD_FIELD_NUMBER: _ClassVar[int]
    GIVES_BACK_UNSTARTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    facts: ProviderFacts
    labels: _containers.ScalarMap[str, str]
    slots: int
    heartbeat_interval_seconds: float
    running: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    standby: bool
    kill_deadline_seconds: float
    containment: str
    reconnect_backoff_max_seconds: float
    capacity: ResourceCapacity
    acks_with_assignments: bool
    queue_ahead: int
    gives_back_unstarted: bool
    def __init__(self, name: _Optional[str] = ..., facts: _Optional[_Union[ProviderFacts, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., slots: _Optional[int] = ..., heartbeat_interval_seconds: _Optional[float] = ..., running: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., standby: _Optional[bool] = ..., kill_deadline_seconds: _Optional[float] = ..., containment: _Optional[str] = ..., reconnect_backoff_max_seconds: _Optional[float] = ..., capacity: _Optional[_Union[ResourceCapacity, _Mapping]] = ..., acks_with_assignments: _Optional[bool] = ..., queue_ahead: _Optional[int] = ..., gives_back_unstarted: _Optional[bool] = ...) -> None: ...

class Ready(_message.Message):
    __slots__ = ("free_slots",)
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    free_slots: int
    def __init__(self, free_slots: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("free_slots", "running", "load_average", "facts")
    class FactsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVERAGE_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    free_slots: int
    running: int
    load_average: float
    facts: _containers.ScalarMap[str, float]
    def __init__(self, free_slots: _Optional[int] = ..., running: _Optional[int] = ..., load_average: _Optional[float] = ..., facts: _Optional[_Mapping[str, float]] = ...) -> None: ...

class TaskReport(_message.Message):
    __slots__ = ("task_id", "attempt", "started", "finished", "checkpoint", "status", "kind", "outcome", "exit_code", "result_json", "error", "stdout_tail", "stderr_tail", "raw", "checkpoint_json", "external_job_id")
    class RawEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STDOUT_TAIL_FIELD_NUMBER: _ClassVar[int]
    STDERR_TAIL_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    started: AttemptStarted
    finished: AttemptFinished
    checkpoint: AttemptCheckpoint
    status: AttemptStatusChange
    kind: TaskReportKind
    outcome: AttemptOutcome
    exit_code: int
    result_json: str
    error: str
    stdout_tail: str
    stderr_tail: str
    raw: _containers.ScalarMap[str, str]
    checkpoint_json: str
    external_job_id: str
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., started: _Optional[_Union[AttemptStarted, _Mapping]] = ..., finished: _Optional[_Union[AttemptFinished, _Mapping]] = ..., checkpoint: _Optional[_Union[AttemptCheckpoint, _Mapping]] = ..., status: _Optional[_Union[AttemptStatusChange, _Mapping]] = ..., kind: _Optional[_Union[TaskReportKind, str]] = ..., outcome: _Optional[_Union[AttemptOutcome, str]] = ..., exit_code: _Optional[int] = ..., result_json: _Optional[str] = ..., error: _Optional[str] = ..., stdout_tail: _Optional[str] = ..., stderr_tail: _Optional[str] = ..., raw: _Optional[_Mapping[str, str]] = ..., checkpoint_json: _Optional[str] = ..., external_job_id: _Optional[str] = ...) -> None: ...

class AttemptStarted(_message.Message):
    __slots__ = ("external_job_id",)
    EXTERNAL_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    external_job_id: str
    def __init__(self, external_job_id: _Optional[str] = ...) -> None: ...

class AttemptFinished(_message.Message):
    __slots__ = ("outcome", "exit_code", "result_json", "error", "stdout_tail", "stderr_tail", "raw")
    class RawEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STDOUT_TAIL_FIELD_NUMBER: _ClassVar[int]
    STDERR_TAIL_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    outcome: AttemptOutcome
    exit_code: int
    result_json: str
    error: str
    stdout_tail: str
    stderr_tail: str
    raw: _containers.ScalarMap[str, str]
    def __init__(self, outcome: _Optional[_Union[AttemptOutcome, str]] = ..., exit_code: _Optional[int] = ..., result_json: _Optional[str] = ..., error: _Optional[str] = ..., stdout_tail: _Optional[str] = ..., stderr_tail: _Optional[str] = ..., raw: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AttemptCheckpoint(_message.Message):
    __slots__ = ("checkpoint_json",)
    CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    checkpoint_json: str
    def __init__(self, checkpoint_json: _Optional[str] = ...) -> None: ...

class AttemptStatusChange(_message.Message):
    __slots__ = ("raw", "external_job_id")
    class RawEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RAW_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    raw: _containers.ScalarMap[str, str]
    external_job_id: str
    def __init__(self, raw: _Optional[_Mapping[str, str]] = ..., external_job_id: _Optional[str] = ...) -> None: ...

class TaskReports(_message.Message):
    __slots__ = ("seq", "reports")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    reports: _containers.RepeatedCompositeFieldContainer[TaskReport]
    def __init__(self, seq: _Optional[int] = ..., reports: _Optional[_Iterable[_Union[TaskReport, _Mapping]]] = ...) -> None: ...

class AttemptStatus(_message.Message):
    __slots__ = ("task_id", "attempt", "progress", "running_seconds")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    progress: int
    running_seconds: float
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., progress: _Optional[int] = ..., running_seconds: _Optional[float] = ...) -> None: ...

class ProbeReply(_message.Message):
    __slots__ = ("probe_id", "running")
    PROBE_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    probe_id: int
    running: _containers.RepeatedCompositeFieldContainer[AttemptStatus]
    def __init__(self, probe_id: _Optional[int] = ..., running: _Optional[_Iterable[_Union[AttemptStatus, _Mapping]]] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("hello", "ready", "heartbeat", "reports", "probe_reply", "scan_report", "goodbye", "log_chunk")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    PROBE_REPLY_FIELD_NUMBER: _ClassVar[int]
    SCAN_REPORT_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    LOG_CHUNK_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    ready: Ready
    heartbeat: Heartbeat
    reports: TaskReports
    probe_reply: ProbeReply
    scan_report: ScanReport
    goodbye: Goodbye
    log_chunk: LogChunk
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., ready: _Optional[_Union[Ready, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., reports: _Optional[_Union[TaskReports, _Mapping]] = ..., probe_reply: _Optional[_Union[ProbeReply, _Mapping]] = ..., scan_report: _Optional[_Union[ScanReport, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ..., log_chunk: _Optional[_Union[LogChunk, _Mapping]] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("request_id", "data", "offset", "end", "error", "code")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    data: bytes
    offset: int
    end: bool
    error: str
    code: str
    def __init__(self, request_id: _Optional[int] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ..., end: _Optional[bool] = ..., error: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class Goodbye(_message.Message):
    __slots__ = ("wait", "deadline_seconds")
    WAIT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    wait: bool
    deadline_seconds: float
    def __init__(self, wait: _Optional[bool] = ..., deadline_seconds: _Optional[float] = ...) -> None: ...

class ScanReport(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScanResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ScanResult, _Mapping]]] = ...) -> None: ...

class ScanResult(_message.Message):
    __slots__ = ("signature_id", "present", "details", "reason", "scan_time")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SIGNATURE_ID_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SCAN_TIME_FIELD_NUMBER: _ClassVar[int]
    signature_id: str
    present: bool
    details: _containers.ScalarMap[str, str]
    reason: str
    scan_time: _timestamp_pb2.Timestamp
    def __init__(self, signature_id: _Optional[str] = ..., present: _Optional[bool] = ..., details: _Optional[_Mapping[str, str]] = ..., reason: _Optional[str] = ..., scan_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SignatureToScan(_message.Message):
    __slots__ = ("signature_id", "signature")
    SIGNATURE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    signature_id: str
    signature: _struct_pb2.Struct
    def __init__(self, signature_id: _Optional[str] = ..., signature: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ScanRequest(_message.Message):
    __slots__ = ("signatures",)
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    signatures: _containers.RepeatedCompositeFieldContainer[SignatureToScan]
    def __init__(self, signatures: _Optional[_Iterable[_Union[SignatureToScan, _Mapping]]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("provider_id", "heartbeat_interval_seconds", "reconnect_grace_seconds", "kept", "lists_kept")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    LISTS_KEPT_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    heartbeat_interval_seconds: float
    reconnect_grace_seconds: float
    kept: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    lists_kept: bool
    def __init__(self, provider_id: _Optional[str] = ..., heartbeat_interval_seconds: _Optional[float] = ..., reconnect_grace_seconds: _Optional[float] = ..., kept: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., lists_kept: _Optional[bool] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("task_id", "attempt", "job_id", "task_name", "spec", "checkpoint_json", "adopt_external_job_id", "queued_ahead")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    ADOPT_EXTERNAL_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AHEAD_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    job_id: str
    task_name: str
    spec: _job_pb2.TaskSpec
    checkpoint_json: str
    adopt_external_job_id: str
    queued_ahead: bool
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., job_id: _Optional[str] = ..., task_name: _Optional[str] = ..., spec: _Optional[_Union[_job_pb2.TaskSpec, _Mapping]] = ..., checkpoint_json: _Optional[str] = ..., adopt_external_job_id: _Optional[str] = ..., queued_ahead: _Optional[bool] = ...) -> None: ...

class Assignments(_message.Message):
    __slots__ = ("assignments", "scan", "ack")
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    SCAN_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    scan: _containers.RepeatedCompositeFieldContainer[SignatureToScan]
    ack: Ack
    def __init__(self, assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ..., scan: _Optional[_Iterable[_Union[SignatureToScan, _Mapping]]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ...) -> None: ...

class Cancellations(_message.Message):
    __slots__ = ("attempts", "reason", "unstarted_only")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNSTARTED_ONLY_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    reason: str
    unstarted_only: bool
    def __init__(self, attempts: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., reason: _Optional[str] = ..., unstarted_only: _Optional[bool] = ...) -> None: ...

class Suspensions(_message.Message):
    __slots__ = ("attempts", "resume", "reason")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    resume: bool
    reason: str
    def __init__(self, attempts: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., resume: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("seq", "rejected")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedReport]
    def __init__(self, seq: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedReport, _Mapping]]] = ...) -> None: ...

class RejectedReport(_message.Message):
    __slots__ = ("attempt", "code", "reason")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    attempt: AttemptRef
    code: str
    reason: str
    def __init__(self, attempt: _Optional[_Union[AttemptRef, _Mapping]] = ..., code: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Probe(_message.Message):
    __slots__ = ("probe_id",)
    PROBE_ID_FIELD_NUMBER: _ClassVar[int]
    probe_id: int
    def __init__(self, probe_id: _Optional[int] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("welcome", "assign", "cancel", "ack", "probe", "scan", "suspend", "logs")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    SCAN_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    assign: Assignments
    cancel: Cancellations
    ack: Ack
    probe: Probe
    scan: ScanRequest
    suspend: Suspensions
    logs: LogRequest
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., assign: _Optional[_Union[Assignments, _Mapping]] = ..., cancel: _Optional[_Union[Cancellations, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., probe: _Optional[_Union[Probe, _Mapping]] = ..., scan: _Optional[_Union[ScanRequest, _Mapping]] = ..., suspend: _Optional[_Union[Suspensions, _Mapping]] = ..., logs: _Optional[_Union[LogRequest, _Mapping]] = ...) -> None: ...

class LogRequest(_message.Message):
    __slots__ = ("request_id", "task_id", "attempt", "stream", "offset", "follow", "cancel", "credit")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    task_id: str
    attempt: int
    stream: _task_pb2.LogStream
    offset: int
    follow: bool
    cancel: bool
    credit: int
    def __init__(self, request_id: _Optional[int] = ..., task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., stream: _Optional[_Union[_task_pb2.LogStream, str]] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ..., cancel: _Optional[bool] = ..., credit: _Optional[int] = ...) -> None: ...

class ListProvidersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListProvidersResponse(_message.Message):
    __slots__ = ("providers", "next_page_token")
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.RepeatedCompositeFieldContainer[Provider]
    next_page_token: str
    def __init__(self, providers: _Optional[_Iterable[_Union[Provider, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetProviderRequest(_message.Message):
    __slots__ = ("provider_id",)
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    def __init__(self, provider_id: _Optional[str] = ...) -> None: ...

class GetProviderResponse(_message.Message):
    __slots__ = ("provider",)
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    def __init__(self, provider: _Optional[_Union[Provider, _Mapping]] = ...) -> None: ...

class DrainProviderRequest(_message.Message):
    __slots__ = ("provider_id", "wait", "deadline_seconds")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    wait: bool
    deadline_seconds: float
    def __init__(self, provider_id: _Optional[str] = ..., wait: _Optional[bool] = ..., deadline_seconds: _Optional[float] = ...) -> None: ...

class DrainProviderResponse(_message.Message):
    __slots__ = ("provider",)
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    def __init__(self, provider: _Optional[_Union[Provider, _Mapping]] = ...) -> None: ...

class ResumeProviderRequest(_message.Message):
    __slots__ = ("provider_id",)
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    def __init__(self, provider_id: _Optional[str] = ...) -> None: ...

class ResumeProviderResponse(_message.Message):
    __slots__ = ("provider",)
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    def __init__(self, provider: _Optional[_Union[Provider, _Mapping]] = ...) -> None: ...

class RevokeProviderRequest(_message.Message):
    __slots__ = ("provider_id", "reason")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    reason: str
    def __init__(self, provider_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeProviderResponse(_message.Message):
    __slots__ = ("provider",)
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    def __init__(self, provider: _Optional[_Union[Provider, _Mapping]] = ...) -> None: ...
