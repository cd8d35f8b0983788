import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from jobplane.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ContinuedTask(_message.Message):
    __slots__ = ("task_id", "job_id", "from_attempt", "to_provider_id", "dispatch_time", "position", "effective_priority", "rule", "checkpoint_json", "seconds_to_restart", "task_name")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TO_PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_TIME_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    SECONDS_TO_RESTART_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    job_id: str
    from_attempt: int
    to_provider_id: str
    dispatch_time: _timestamp_pb2.Timestamp
    position: int
    effective_priority: int
    rule: str
    checkpoint_json: str
    seconds_to_restart: float
    task_name: str
    def __init__(self, task_id: _Optional[str] = ..., job_id: _Optional[str] = ..., from_attempt: _Optional[int] = ..., to_provider_id: _Optional[str] = ..., dispatch_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., position: _Optional[int] = ..., effective_priority: _Optional[int] = ..., rule: _Optional[str] = ..., checkpoint_json: _Optional[str] = ..., seconds_to_restart: _Optional[float] = ..., task_name: _Optional[str] = ...) -> None: ...

class Continuation(_message.Message):
    __slots__ = ("id", "provider_id", "failure_time", "reason", "tasks")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider_id: str
    failure_time: _timestamp_pb2.Timestamp
    reason: str
    tasks: _containers.RepeatedCompositeFieldContainer[ContinuedTask]
    def __init__(self, id: _Optional[str] = ..., provider_id: _Optional[str] = ..., failure_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[ContinuedTask, _Mapping]]] = ...) -> None: ...

class ListContinuationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListContinuationsResponse(_message.Message):
    __slots__ = ("continuations", "next_page_token")
    CONTINUATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    continuations: _containers.RepeatedCompositeFieldContainer[Continuation]
    next_page_token: str
    def __init__(self, continuations: _Optional[_Iterable[_Union[Continuation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetContinuationRequest(_message.Message):
    __slots__ = ("continuation_id",)
    CONTINUATION_ID_FIELD_NUMBER: _ClassVar[int]
    continuation_id: str
    def __init__(self, continuation_id: _Optional[str] = ...) -> None: ...

class GetContinuationResponse(_message.Message):
    __slots__ = ("continuation",)
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    continuation: Continuation
    def __init__(self, continuation: _Optional[_Union[Continuation, _Mapping]] = ...) -> None: ...

class WatchContinuationsRequest(_message.Message):
    __slots__ = ("after_event_id",)
    AFTER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    after_event_id: int
    def __init__(self, after_event_id: _Optional[int] = ...) -> None: ...

class WatchContinuationsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ...) -> None: ...

class PlanContinuationRequest(_message.Message):
    __slots__ = ("provider_id", "at")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, provider_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PlannedTask(_message.Message):
    __slots__ = ("task_id", "job_id", "task_name", "position", "effective_priority", "rule", "to_provider_id", "checkpoint_json", "from_provider")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    TO_PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    FROM_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    job_id: str
    task_name: str
    position: int
    effective_priority: int
    rule: str
    to_provider_id: str
    checkpoint_json: str
    from_provider: bool
    def __init__(self, task_id: _Optional[str] = ..., job_id: _Optional[str] = ..., task_name: _Optional[str] = ..., position: _Optional[int] = ..., effective_priority: _Optional[int] = ..., rule: _Optional[str] = ..., to_provider_id: _Optional[str] = ..., checkpoint_json: _Optional[str] = ..., from_provider: _Optional[bool] = ...) -> None: ...

class PlanContinuationResponse(_message.Message):
    __slots__ = ("provider_id", "at", "tasks")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    at: _timestamp_pb2.Timestamp
    tasks: _containers.RepeatedCompositeFieldContainer[PlannedTask]
    def __init__(self, provider_id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[PlannedTask, _Mapping]]] = ...) -> None: ...
