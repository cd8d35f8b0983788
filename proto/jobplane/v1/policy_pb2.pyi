import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from jobplane.v1 import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PolicyScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_SCOPE_UNSPECIFIED: _ClassVar[PolicyScope]
    POLICY_SCOPE_DEFAULT: _ClassVar[PolicyScope]
    POLICY_SCOPE_GROUP: _ClassVar[PolicyScope]
    POLICY_SCOPE_USER: _ClassVar[PolicyScope]
POLICY_SCOPE_UNSPECIFIED: PolicyScope
POLICY_SCOPE_DEFAULT: PolicyScope
POLICY_SCOPE_GROUP: PolicyScope
POLICY_SCOPE_USER: PolicyScope

class Policy(_message.Message):
    __slots__ = ("scope", "name", "version", "document", "update_time", "updated_by", "deleted")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    scope: PolicyScope
    name: str
    version: int
    document: _struct_pb2.Struct
    update_time: _timestamp_pb2.Timestamp
    updated_by: str
    deleted: bool
    def __init__(self, scope: _Optional[_Union[PolicyScope, str]] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., document: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_by: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("scope", "name", "version")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    scope: PolicyScope
    name: str
    version: int
    def __init__(self, scope: _Optional[_Union[PolicyScope, str]] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies", "next_page_token")
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[Policy]
    next_page_token: str
    def __init__(self, policies: _Optional[_Iterable[_Union[Policy, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListPolicyVersionsRequest(_message.Message):
    __slots__ = ("scope", "name", "page_size", "page_token")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    scope: PolicyScope
    name: str
    page_size: int
    page_token: str
    def __init__(self, scope: _Optional[_Union[PolicyScope, str]] = ..., name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPolicyVersionsResponse(_message.Message):
    __slots__ = ("policies", "next_page_token")
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[Policy]
    next_page_token: str
    def __init__(self, policies: _Optional[_Iterable[_Union[Policy, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetPolicyRequest(_message.Message):
    __slots__ = ("scope", "name", "document")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    scope: PolicyScope
    name: str
    document: _struct_pb2.Struct
    def __init__(self, scope: _Optional[_Union[PolicyScope, str]] = ..., name: _Optional[str] = ..., document: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SetPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class DeletePolicyRequest(_message.Message):
    __slots__ = ("scope", "name")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    scope: PolicyScope
    name: str
    def __init__(self, scope: _Optional[_Union[PolicyScope, str]] = ..., name: _Optional[str] = ...) -> None: ...

class DeletePolicyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TestPolicyRequest(_message.Message):
    __slots__ = ("user", "groups", "environment", "raw")
    class RawEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    user: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    environment: str
    raw: _containers.ScalarMap[str, str]
    def __init__(self, user: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ..., environment: _Optional[str] = ..., raw: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TestPolicyResponse(_message.Message):
    __slots__ = ("status", "policy", "rule_index", "reason", "properties")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.NormalizedStatus
    policy: str
    rule_index: int
    reason: str
    properties: _containers.RepeatedCompositeFieldContainer[NormalizedProperty]
    def __init__(self, status: _Optional[_Union[_status_pb2.NormalizedStatus, str]] = ..., policy: _Optional[str] = ..., rule_index: _Optional[int] = ..., reason: _Optional[str] = ..., properties: _Optional[_Iterable[_Union[NormalizedProperty, _Mapping]]] = ...) -> None: ...

class NormalizedProperty(_message.Message):
    __slots__ = ("name", "value", "policy", "rule_index", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    policy: str
    rule_index: int
    reason: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., policy: _Optional[str] = ..., rule_index: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...
