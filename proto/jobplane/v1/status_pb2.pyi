from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class NormalizedStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMALIZED_STATUS_UNSPECIFIED: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_RUNNING: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_FAILURE: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_WAITING: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_SUCCESS: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_CANCEL: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_RESTART: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_ON_HOLD: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_LATE_TO_START: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_RUNNING_LATE: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_INACTIVE: _ClassVar[NormalizedStatus]
    NORMALIZED_STATUS_UNKNOWN: _ClassVar[NormalizedStatus]
NORMALIZED_STATUS_UNSPECIFIED: NormalizedStatus
NORMALIZED_STATUS_RUNNING: NormalizedStatus
NORMALIZED_STATUS_FAILURE: NormalizedStatus
NORMALIZED_STATUS_WAITING: NormalizedStatus
NORMALIZED_STATUS_SUCCESS: NormalizedStatus
NORMALIZED_STATUS_CANCEL: NormalizedStatus
NORMALIZED_STATUS_RESTART: NormalizedStatus
NORMALIZED_STATUS_ON_HOLD: NormalizedStatus
NORMALIZED_STATUS_LATE_TO_START: NormalizedStatus
NORMALIZED_STATUS_RUNNING_LATE: NormalizedStatus
NORMALIZED_STATUS_INACTIVE: NormalizedStatus
NORMALIZED_STATUS_UNKNOWN: NormalizedStatus
