import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InventoryEntry(_message.Message):
    __slots__ = ("provider_id", "signature_id", "description", "present", "details", "reason", "scan_time", "expire_time", "source")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SCAN_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    signature_id: str
    description: str
    present: bool
    details: _containers.ScalarMap[str, str]
    reason: str
    scan_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    source: str
    def __init__(self, provider_id: _Optional[str] = ..., signature_id: _Optional[str] = ..., description: _Optional[str] = ..., present: _Optional[bool] = ..., details: _Optional[_Mapping[str, str]] = ..., reason: _Optional[str] = ..., scan_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ...) -> None: ...

class ListInventoryRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ...) -> None: ...

class ListInventoryResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[InventoryEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[InventoryEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ScanProviderRequest(_message.Message):
    __slots__ = ("provider_id", "signatures")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    signatures: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, provider_id: _Optional[str] = ..., signatures: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class ScanProviderResponse(_message.Message):
    __slots__ = ("signature_ids",)
    SIGNATURE_IDS_FIELD_NUMBER: _ClassVar[int]
    signature_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, signature_ids: _Optional[_Iterable[str]] = ...) -> None: ...
