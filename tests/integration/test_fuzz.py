"""Fuzzing: random bytes and random well-formed messages into every unary RPC of every
jobplane.v1 service, on a real insecure server and a real secure one. Whatever the input,
the answer is never UNKNOWN or INTERNAL (nor a hang or a crash), without a token a secure
server says UNAUTHENTICATED before it looks at the body, and the server answers health
afterwards with no traceback in its log.

The RPCs are read from the service descriptors, so a new RPC is fuzzed without a change
here. Runs are derandomized (the same inputs every run) and bounded by the example counts
below; set JOBPLANE_FUZZ_EXAMPLES to a larger number for a longer, deeper local run."""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jobplane.v1
from jobplane.server.security.policy import is_public
from conftest import _create_pg_database, _pg_admin_url
from support import ServerProc, admin_channel

EXAMPLES = int(os.environ.get("JOBPLANE_FUZZ_EXAMPLES", "8"))
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE,
         grpc.StatusCode.DEADLINE_EXCEEDED}
DEADLINE = 10.0
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _methods() -> list[MethodDescriptor]:
    """Every method of every jobplane.v1 service, and of the health and reflection services."""
    modules = [importlib.import_module(f"jobplane.v1.{info.name}")
               for info in pkgutil.iter_modules(jobplane.v1.__path__) if info.name.endswith("_pb2")]
    found = []
    for module in modules + [health_pb2, reflection_pb2]:
        for service in module.DESCRIPTOR.services_by_name.values():
            found.extend(service.methods)
    return sorted(found, key=lambda m: m.full_name)


METHODS = _methods()
UNARY = [m for m in METHODS if not m.client_streaming and not m.server_streaming]
STREAMING = [m for m in METHODS if m.client_streaming or m.server_streaming]


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


# ----- messages from descriptors -----------------------------------------------------

# Text a caller might send where ids, filters, names, JSON or times are expected.
AWKWARD_TEXT = ["", "1", "a\x00b", 'name="a\x00b"', "0", "-1", "18446744073709551616", "99999999999999999999999", "abc", "²", "*", "?",
                "id=99999999999999999999999", "status=FAILURE", "priority>1e308", "submitted>=-99999999999d",
                "label.x=1 raw.y>2", "name", "-name,status", ",", "[]", "[1,2,3]", "{}", '{"a": [1, {"b": null}]}',
                "[" * 200, "(" * 300, "x" * 5000, "\x00", "m:f", "22:00-04:00", "0 * * * *", "2026-02-30",
                "jpu_abcdefgh_" + "A" * 32, "true", "nan", "inf", "ROLE_ADMIN", "$HOME", "../..", "/bin/sh"]
SECONDS = [0, 1, -1, 2**31, 2**62, -(2**62), 253402300799, 253402300800, -62135596801]
NANOS = [0, 1, -1, 999_999_999, 10**9, 2**31 - 1]
_INT = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def _text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(AWKWARD_TEXT), st.text(max_size=30))


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy:
    kind = field.type
    if kind in _INT:
        low, high = _INT[kind]
        return st.one_of(st.sampled_from([low, high, 0, -1 if low else 1, 1]), st.integers(low, high))
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=64 if kind == FieldDescriptor.TYPE_DOUBLE else 32)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return _text()
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return st.integers(min(numbers) - 1, max(numbers) + 2)
    return messages(field.message_type, depth + 1)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy:
    """Random messages of `descriptor`'s type: every field may be set, to anything its type holds."""
    cls = message_factory.GetMessageClass(descriptor)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(cls, seconds=st.one_of(st.integers(0, 4102444800), st.sampled_from(SECONDS),
                                                 st.integers(-(2**63), 2**63 - 1)),
                         nanos=st.one_of(st.integers(0, 999_999_999), st.sampled_from(NANOS),
                                         st.integers(-(2**31), 2**31 - 1)))
    if descriptor.full_name == "google.protobuf.Struct":
        return st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=4).map(_struct)
    if depth > 3:
        return st.just(cls())
    fields = {f.name: _field(f, depth) for f in descriptor.fields}
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(cls, values))


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(_scalar(key, depth), _scalar(value, depth), max_size=3)
    if field.is_repeated:
        return st.lists(_scalar(field, depth), max_size=3)
    return _scalar(field, depth)


def _build(cls, values: dict) -> Message:
    message = cls()
    for name, value in values.items():
        if isinstance(value, dict):  # a map
            target = getattr(message, name)
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif isinstance(value, list):
            getattr(message, name).extend(value)
        elif isinstance(value, Message):
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def _struct(values: dict):
    from google.protobuf import struct_pb2

    message = struct_pb2.Struct()
    message.update(values)
    return message


# ----- servers -----------------------------------------------------------------------

@pytest.fixture(scope="module", params=["insecure", "secure", "secure-postgres"])
def server(request, tmp_path_factory):
    """A real server: insecure and secure on SQLite, and secure on PostgreSQL (which refuses
    some text SQLite stores)."""
    workdir: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    url, drop = f"sqlite:///{workdir / 'jobplane.db'}", None
    if request.param.endswith("postgres"):
        url, drop = _create_pg_database(_pg_admin_url())
    proc = ServerProc(workdir, url, insecure=request.param == "insecure")
    yield proc
    try:
        assert proc.alive(), f"the server died:\n{proc.output()[-4000:]}"
        assert "Traceback" not in proc.output(), proc.output()[-6000:]
    finally:
        proc.stop()
        if drop is not None:
            drop()


@pytest.fixture(scope="module")
def channel(server):
    with admin_channel(server) as chan:
        yield chan


@pytest.fixture(scope="module")
def anonymous(server):
    if server.insecure:
        yield None
        return
    with grpc.secure_channel(server.address, grpc.ssl_channel_credentials(server.ca.read_bytes())) as chan:
        yield chan


def answer(channel: grpc.Channel, method: MethodDescriptor, body: bytes) -> grpc.StatusCode:
    call = channel.unary_unary(path(method), request_serializer=None, response_deserializer=None)
    try:
        call(body, timeout=DEADLINE)
    except grpc.RpcError as error:
        assert error.code() not in NEVER, f"{method.name} answered {error.code()}: {error.details()}"
        return error.code()
    return grpc.StatusCode.OK


def serving(channel: grpc.Channel) -> bool:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


# ----- the fuzzing -------------------------------------------------------------------

@pytest.mark.parametrize("method", UNARY, ids=lambda m: m.full_name.removeprefix("jobplane.v1."))
def test_random_messages_never_get_unknown_or_internal(channel, method):
    @FUZZ
    @given(messages(method.input_type))
    def fuzz(request):
        answer(channel, method, request.SerializeToString())

    fuzz()
    assert serving(channel)


# Put into one text field at a time: what databases, parsers and error messages trip on.
POISON = ["a\x00b", 'name="a\x00b"', "id=99999999999999999999999", "x" * 100_000, "[" * 5000 + "]" * 5000,
          "(" * 1000, "\u202e\ufeff", "-1"]


def text_fields(descriptor: Descriptor, depth: int = 0) -> list[tuple[FieldDescriptor, ...]]:
    """Paths to every text field (and map of texts) of a message, a few levels deep."""
    paths = []
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING or (
                field.message_type is not None and field.message_type.GetOptions().map_entry):
            paths.append((field,))
        elif field.message_type is not None and depth < 3 and not field.message_type.full_name.startswith("google."):
            paths += [(field, *rest) for rest in text_fields(field.message_type, depth + 1)]
    return paths


def poisoned(cls, fields: tuple[FieldDescriptor, ...], text: str) -> Message:
    """A message of `cls` whose only content is `text` in the field at `fields`."""
    message = cls()
    target = message
    for field in fields[:-1]:
        target = getattr(target, field.name).add() if field.is_repeated else getattr(target, field.name)
    last = fields[-1]
    if last.message_type is not None:  # a map with string keys: the text is the key (and a string value)
        value = last.message_type.fields_by_name["value"]
        mapping = getattr(target, last.name)
        if value.message_type is not None:
            mapping.get_or_create(text)
        else:
            mapping[text] = text if value.type == FieldDescriptor.TYPE_STRING else 1  # 1: an enum's first value
    elif last.is_repeated:
        getattr(target, last.name).append(text)
    else:
        setattr(target, last.name, text)
    return message


@pytest.mark.parametrize("method", UNARY, ids=lambda m: m.full_name.removeprefix("jobplane.v1."))
def test_awkward_text_in_each_field_never_gets_unknown_or_internal(channel, method):
    cls = message_factory.GetMessageClass(method.input_type)
    for fields in text_fields(method.input_type):
        for text in POISON:
            answer(channel, method, poisoned(cls, fields, text).SerializeToString())
    assert serving(channel)


def nearly_valid_jobs() -> st.SearchStrategy:
    """Jobs that would be accepted but for what the fuzzer puts in: a valid job and one task,
    each merged with a random message (so most fields keep working values and some get odd
    ones, and many such jobs are accepted and scheduled)."""
    from jobplane.v1 import job_pb2

    def merge(job, task):
        spec = job_pb2.JobSpec(name="j", wait_for_providers=True)
        base = job_pb2.TaskSpec(name="t", command=["true"])
        base.MergeFrom(task)
        if base.python or base.HasField("external"):
            del base.command[:]
        job.ClearField("tasks")
        spec.MergeFrom(job)
        spec.tasks.append(base)
        return job_pb2.SubmitJobRequest(spec=spec)

    return st.builds(merge, messages(job_pb2.JobSpec.DESCRIPTOR, 1), messages(job_pb2.TaskSpec.DESCRIPTOR, 1))


def test_nearly_valid_jobs_never_get_unknown_or_internal(channel):
    (submit,) = [m for m in UNARY if m.full_name == "jobplane.v1.JobService.SubmitJob"]
    (check,) = [m for m in UNARY if m.full_name == "jobplane.v1.ConflictService.CheckConflicts"]
    from jobplane.v1 import conflict_pb2

    @settings(FUZZ, max_examples=EXAMPLES * 4)
    @given(nearly_valid_jobs())
    def fuzz(request):
        answer(channel, submit, request.SerializeToString())
        answer(channel, check, conflict_pb2.CheckConflictsRequest(spec=request.spec).SerializeToString())

    fuzz()
    assert serving(channel)


@pytest.mark.parametrize("method", UNARY, ids=lambda m: m.full_name.removeprefix("jobplane.v1."))
def test_random_bytes_never_get_unknown_or_internal(channel, anonymous, method):
    @FUZZ
    @given(st.one_of(st.just(b"\xff"), st.binary(max_size=200)))
    def fuzz(body):
        answer(channel, method, body)
        if anonymous is not None and not is_public(path(method)):
            assert answer(anonymous, method, body) == grpc.StatusCode.UNAUTHENTICATED

    fuzz()
    assert serving(channel)


@pytest.mark.parametrize("method", STREAMING, ids=lambda m: m.full_name.removeprefix("jobplane.v1."))
def test_a_corrupt_body_opens_no_stream(channel, anonymous, method):
    """INVALID_ARGUMENT (PERMISSION_DENIED for the agents' Connect, which an admin token may
    not open); UNAUTHENTICATED first without a token, unless the method needs none."""
    first = grpc.StatusCode.INVALID_ARGUMENT if is_public(path(method)) else grpc.StatusCode.UNAUTHENTICATED
    for chan, expected in ((channel, {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED}),
                           (anonymous, {first})):
        if chan is None:
            continue
        if method.client_streaming:
            call = chan.stream_stream(path(method), request_serializer=None, response_deserializer=None)
            responses = call(iter([b"\xff"]), timeout=DEADLINE)
        else:
            responses = chan.unary_stream(path(method), request_serializer=None, response_deserializer=None)(
                b"\xff", timeout=DEADLINE)
        with pytest.raises(grpc.RpcError) as caught:
            next(responses)
        assert caught.value.code() in expected, caught.value.details()
    assert serving(channel)
