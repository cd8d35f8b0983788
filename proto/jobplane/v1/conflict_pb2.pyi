import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from jobplane.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConflictKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFLICT_KIND_UNSPECIFIED: _ClassVar[ConflictKind]
    CONFLICT_KIND_EXCLUSIVE: _ClassVar[ConflictKind]
    CONFLICT_KIND_LOCK: _ClassVar[ConflictKind]
CONFLICT_KIND_UNSPECIFIED: ConflictKind
CONFLICT_KIND_EXCLUSIVE: ConflictKind
CONFLICT_KIND_LOCK: ConflictKind

class JobSelector(_message.Message):
    __slots__ = ("job_class", "name", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_CLASS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    job_class: str
    name: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, job_class: _Optional[str] = ..., name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ConflictRule(_message.Message):
    __slots__ = ("name", "kind", "jobs", "other", "resource", "mode", "created_by", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    OTHER_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: ConflictKind
    jobs: JobSelector
    other: JobSelector
    resource: str
    mode: _job_pb2.LockMode
    created_by: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[ConflictKind, str]] = ..., jobs: _Optional[_Union[JobSelector, _Mapping]] = ..., other: _Optional[_Union[JobSelector, _Mapping]] = ..., resource: _Optional[str] = ..., mode: _Optional[_Union[_job_pb2.LockMode, str]] = ..., created_by: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListConflictRulesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConflictRulesResponse(_message.Message):
    __slots__ = ("rules", "next_page_token")
    RULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[ConflictRule]
    next_page_token: str
    def __init__(self, rules: _Optional[_Iterable[_Union[ConflictRule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateConflictRuleRequest(_message.Message):
    __slots__ = ("rule", "apply_to_running")
    RULE_FIELD_NUMBER: _ClassVar[int]
    APPLY_TO_RUNNING_FIELD_NUMBER: _ClassVar[int]
    rule: ConflictRule
    apply_to_running: _job_pb2.HoldMode
    def __init__(self, rule: _Optional[_Union[ConflictRule, _Mapping]] = ..., apply_to_running: _Optional[_Union[_job_pb2.HoldMode, str]] = ...) -> None: ...

class CreateConflictRuleResponse(_message.Message):
    __slots__ = ("rule", "held_job_ids")
    RULE_FIELD_NUMBER: _ClassVar[int]
    HELD_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    rule: ConflictRule
    held_job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rule: _Optional[_Union[ConflictRule, _Mapping]] = ..., held_job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteConflictRuleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteConflictRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckConflictsRequest(_message.Message):
    __slots__ = ("job_id", "spec")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    spec: _job_pb2.JobSpec
    def __init__(self, job_id: _Optional[str] = ..., spec: _Optional[_Union[_job_pb2.JobSpec, _Mapping]] = ...) -> None: ...

class ConflictBlocker(_message.Message):
    __slots__ = ("job_id", "job_name", "rule", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    job_name: str
    rule: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., job_name: _Optional[str] = ..., rule: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CheckConflictsResponse(_message.Message):
    __slots__ = ("held", "blockers", "reason")
    HELD_FIELD_NUMBER: _ClassVar[int]
    BLOCKERS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    held: bool
    blockers: _containers.RepeatedCompositeFieldContainer[ConflictBlocker]
    reason: str
    def __init__(self, held: _Optional[bool] = ..., blockers: _Optional[_Iterable[_Union[ConflictBlocker, _Mapping]]] = ..., reason: _Optional[str] = ...) -> None: ...

class SuggestConflictsRequest(_message.Message):
    __slots__ = ("min_failures",)
    MIN_FAILURES_FIELD_NUMBER: _ClassVar[int]
    min_failures: int
    def __init__(self, min_failures: _Optional[int] = ...) -> None: ...

class ConflictSuggestion(_message.Message):
    __slots__ = ("class_a", "class_b", "failures", "last_time", "command")
    CLASS_A_FIELD_NUMBER: _ClassVar[int]
    CLASS_B_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    class_a: str
    class_b: str
    failures: int
    last_time: _timestamp_pb2.Timestamp
    command: str
    def __init__(self, class_a: _Optional[str] = ..., class_b: _Optional[str] = ..., failures: _Optional[int] = ..., last_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., command: _Optional[str] = ...) -> None: ...

class SuggestConflictsResponse(_message.Message):
    __slots__ = ("suggestions",)
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    suggestions: _containers.RepeatedCompositeFieldContainer[ConflictSuggestion]
    def __init__(self, suggestions: _Optional[_Iterable[_Union[ConflictSuggestion, _Mapping]]] = ...) -> None: ...
