import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from jobplane.v1 import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_JOB: _ClassVar[EventKind]
    EVENT_KIND_TASK: _ClassVar[EventKind]
    EVENT_KIND_PROVIDER: _ClassVar[EventKind]
    EVENT_KIND_CONTINUATION: _ClassVar[EventKind]
    EVENT_KIND_POLICY: _ClassVar[EventKind]
    EVENT_KIND_SCHEDULE: _ClassVar[EventKind]
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_JOB: EventKind
EVENT_KIND_TASK: EventKind
EVENT_KIND_PROVIDER: EventKind
EVENT_KIND_CONTINUATION: EventKind
EVENT_KIND_POLICY: EventKind
EVENT_KIND_SCHEDULE: EventKind

class Event(_message.Message):
    __slots__ = ("id", "time", "kind", "job_id", "task_id", "provider_id", "raw_status", "raw", "status", "message", "attempt", "task_name", "environment")
    class RawEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    RAW_STATUS_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    id: int
    time: _timestamp_pb2.Timestamp
    kind: EventKind
    job_id: str
    task_id: str
    provider_id: str
    raw_status: str
    raw: _containers.ScalarMap[str, str]
    status: _status_pb2.NormalizedStatus
    message: str
    attempt: int
    task_name: str
    environment: str
    def __init__(self, id: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[EventKind, str]] = ..., job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., raw_status: _Optional[str] = ..., raw: _Optional[_Mapping[str, str]] = ..., status: _Optional[_Union[_status_pb2.NormalizedStatus, str]] = ..., message: _Optional[str] = ..., attempt: _Optional[int] = ..., task_name: _Optional[str] = ..., environment: _Optional[str] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
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

class WatchEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...
