import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServerRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVER_ROLE_UNSPECIFIED: _ClassVar[ServerRole]
    SERVER_ROLE_LEADER: _ClassVar[ServerRole]
    SERVER_ROLE_FOLLOWER: _ClassVar[ServerRole]
    SERVER_ROLE_GONE: _ClassVar[ServerRole]
SERVER_ROLE_UNSPECIFIED: ServerRole
SERVER_ROLE_LEADER: ServerRole
SERVER_ROLE_FOLLOWER: ServerRole
SERVER_ROLE_GONE: ServerRole

class ServerReplica(_message.Message):
    __slots__ = ("id", "address", "agent_address", "role", "epoch", "lease_renew_time", "lease_expire_time", "last_seen_time", "start_time", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AGENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LEASE_RENEW_TIME_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    agent_address: str
    role: ServerRole
    epoch: int
    lease_renew_time: _timestamp_pb2.Timestamp
    lease_expire_time: _timestamp_pb2.Timestamp
    last_seen_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    version: str
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., agent_address: _Optional[str] = ..., role: _Optional[_Union[ServerRole, str]] = ..., epoch: _Optional[int] = ..., lease_renew_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[str] = ...) -> None: ...

class ListServersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServersResponse(_message.Message):
    __slots__ = ("servers", "answered_by")
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[ServerReplica]
    answered_by: str
    def __init__(self, servers: _Optional[_Iterable[_Union[ServerReplica, _Mapping]]] = ..., answered_by: _Optional[str] = ...) -> None: ...
