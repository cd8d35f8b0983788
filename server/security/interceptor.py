"""The one interceptor: authenticates every call, authorizes it (policy.authorize), applies
the per-identity limits, sets `current_caller` for the handler and records mutating calls
in the audit log."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import grpc

try:  # what grpc.aio raises when the transport refuses a write: the call is gone (the peer left, or cancelled)
    from grpc._cython.cygrpc import ExecuteBatchError as _WriteRefused
except ImportError:  # pragma: no cover - grpc moved it: such a write then counts as UNKNOWN, as before
    _WriteRefused = ()

from ..errors import InvalidArgument, JobplaneError, ResourceExhausted, details
from ..metrics import Counter
from .access import Access
from .policy import ANONYMOUS, MUTATING, OPEN_PREFIXES, Caller, Role, authorize, current_caller, is_public

log = logging.getLogger(__name__)

SUBMIT = "/jobplane.v1.JobService/SubmitJob"
ENROLL = "/jobplane.v1.SecurityService/Enroll"
AUDIT_TEXT = 200  # characters of a request's name kept in its audit record


@dataclass(frozen=True)
class Limits:
    submit_rate: float = 50.0  # SubmitJob calls per second per identity (bursts of 2 seconds' worth)
    enroll_rate: float = 5.0  # Enroll calls per second per peer address
    max_streams: int = 64  # open streaming calls per identity


class RateLimiter:
    """A token bucket per key: `rate` per second, bursts of `2 × rate` (at least 1)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        burst = max(1.0, 2 * self.rate)
        level, last = self._buckets.get(key, (burst, now))
        level = min(burst, level + (now - last) * self.rate)
        if level < 1:
            self._buckets[key] = (level, now)
            return False
        self._buckets[key] = (level - 1, now)
        return True


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, access: Access, audit: Callable[[dict], None], limits: Limits,
                 failure: Callable[[], Exception | None] = lambda: None, rpcs: Counter | None = None,
                 forward: Callable[[str], Any] = lambda method: None) -> None:
        self.failure = failure  # once the database refused a write, every call is told why
        self.rpcs = rpcs  # calls by method and status code, for /metrics
        # On a follower replica: the forward.Forwarder that passes a call of this method on to
        # the leader (None: this replica answers it). Asked per call: the role may change.
        self.forward = forward
        self._access = access
        self._audit = audit
        self._limits = limits
        self._submits = RateLimiter(limits.submit_rate)
        self._enrolls = RateLimiter(limits.enroll_rate)
        self._streams: defaultdict[str, int] = defaultdict(int)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            return handler
        if method.startswith(OPEN_PREFIXES):
            return _open(handler)
        return _wrapped(handler, method, self)

    # ----- what each call goes through -----------------------------------------------

    async def authenticate(self, method: str, context: grpc.aio.ServicerContext) -> Caller:
        """Who is calling; raises Unauthenticated (or ValueError for a certificate without an identity)."""
        if is_public(method):
            return ANONYMOUS
        return await self._access.authenticate(context.invocation_metadata(), context.auth_context())

    def admit(self, method: str, caller: Caller, context: grpc.aio.ServicerContext) -> None:
        """Raise PermissionDenied or ResourceExhausted unless the caller may make this call now."""
        if not is_public(method):
            authorize(caller, method)
        if method == SUBMIT and not self._submits.allow(caller.identity):
            raise ResourceExhausted(f"more than {self._limits.submit_rate:g} submits per second from "
                                    f"{caller.identity}; slow down and retry")
        if method == ENROLL and not self._enrolls.allow(_peer_host(context.peer())):
            raise ResourceExhausted(f"more than {self._limits.enroll_rate:g} enrollments per second from "
                                    "this address; retry in a moment")

    def open_stream(self, caller: Caller) -> None:
        if self._streams[caller.identity] >= self._limits.max_streams:
            raise ResourceExhausted(f"{caller.identity} has {self._limits.max_streams} streams open already; "
                                    "close some (or raise --max-streams)")
        self._streams[caller.identity] += 1

    def close_stream(self, caller: Caller) -> None:
        self._streams[caller.identity] -= 1

    def count(self, method: str, code: str) -> None:
        if self.rpcs is not None:
            self.rpcs.inc(method, code)

    def record(self, method: str, caller: Caller, request: Any, context, error: BaseException | None) -> None:
        if method not in MUTATING:
            return
        code = _code(context, error)
        if method == ENROLL:  # no caller yet: the join token vouches for the name it asks for
            caller = Caller(str(getattr(request, "name", "") or "?"), Role.AGENT, method="join token")
        self.audit(caller.identity, int(caller.role), method, request, code,
                   "" if code == "OK" else str(context.details() or error or ""))

    def audit(self, identity: str, role: int, method: str, request: Any, code: str, message: str) -> None:
        """One audit record; the caller's texts in it are cut short and NUL-free (the database
        may refuse NUL, and a record must never stop the server)."""
        self._audit({"time": time.time(), "identity": _clean(identity, AUDIT_TEXT), "role": role, "method": method,
                     "target": _clean(_target(request), AUDIT_TEXT), "code": code, "message": _clean(message, 500)})


def _wrapped(handler: grpc.RpcMethodHandler, method: str, guard: AuthInterceptor) -> grpc.RpcMethodHandler:
    """The handler with authentication, authorization and limits first. Requests reach it as
    bytes and are decoded after those checks (gRPC would answer UNKNOWN for a body that does not
    decode, before anyone was authenticated); a stream's later messages decode as they are read."""
    decode, encode = handler.request_deserializer, _bytes_or(handler.response_serializer)
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _unary(handler.unary_unary, method, guard, decode), response_serializer=encode)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _streaming(handler.unary_stream, method, guard, decode), response_serializer=encode)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _streaming(handler.stream_stream, method, guard, None),
            request_deserializer=_stream_decoder(decode), response_serializer=encode)
    return handler  # client streaming: not used by jobplane


def _unary(behavior: Callable, method: str, guard: AuthInterceptor, decode: Callable | None) -> Callable:
    async def call(body, context):
        await _unless_failed(guard, method, context)
        caller = await _admit(guard, method, context, lambda: _quietly(decode, body))
        token = current_caller.set(caller)
        request, error = None, None
        try:
            request = await _decoded(decode, body, context)
            forward = guard.forward(method)
            if forward is not None:  # a follower replica: the leader answers
                return await forward.unary(method, body, caller, context)
            return await behavior(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            current_caller.reset(token)
            guard.record(method, caller, request, context, error)
            guard.count(method, _code(context, error))

    return call


def _streaming(behavior: Callable, method: str, guard: AuthInterceptor, decode: Callable | None) -> Callable:
    """`decode` is None for a request stream (its messages decode as they are read)."""
    async def call(body, context):
        await _unless_failed(guard, method, context)
        caller = await _admit(guard, method, context, lambda: _quietly(decode, body) if decode else None)
        try:
            guard.open_stream(caller)
        except JobplaneError as exc:
            await _deny(guard, method, caller, lambda: _quietly(decode, body) if decode else None, context, exc)
        current_caller.set(caller)  # this coroutine runs in the call's own task
        error = None
        try:
            request = await _decoded(decode, body, context) if decode else body
            guard.record(method, caller, request if decode else None, context, None)
            forward = guard.forward(method)
            if forward is not None and decode is None:  # an agent's stream: to the leader itself
                await forward.redirect(context)
            responses = forward.stream(method, body, caller, context) if forward else behavior(request, context)
            await _write_each(responses, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            guard.close_stream(caller)
            guard.count(method, _code(context, error))

    return call


async def _write_each(responses: AsyncGenerator, context) -> None:
    """Write what a streaming handler (an async generator) yields, and close it when the call
    ends however it ends. grpc.aio, iterating a generator handler itself, leaves it suspended at
    its `yield` when the call ends during a write (the peer gone, flow control stalled): its
    `finally` (a provider's disconnect, a watcher's unsubscribe) then waited for the garbage
    collector, and an agent reconnecting was told it is connected already."""
    try:
        async for response in responses:
            try:
                await context.write(response)
            except _WriteRefused as exc:  # a cancelled call (counted CANCELLED), not a server error to log
                raise asyncio.CancelledError("the call ended while a response was being written") from exc
    finally:
        await responses.aclose()


def _bytes_or(serialize: Callable | None) -> Callable | None:
    """A response serializer that sends bytes as they are: what the leader answered a call
    this follower passed on (and watch frames)."""
    if serialize is None:
        return None
    return lambda response: response if isinstance(response, bytes) else serialize(response)


async def _unless_failed(guard: AuthInterceptor, method: str, context) -> None:
    failure = guard.failure()
    if failure is not None:
        guard.count(method, "UNAVAILABLE")
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(failure))


def _open(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """Health and reflection: no credentials or limits, but a body that does not decode is
    INVALID_ARGUMENT here too."""
    decode, encode = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_decoding(handler.unary_unary, decode), response_serializer=encode)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_decoding(handler.unary_stream, decode), response_serializer=encode)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(_decoding(handler.stream_stream, None),
                                                     request_deserializer=_stream_decoder(decode),
                                                     response_serializer=encode)
    return handler


def _decoding(behavior: Callable, decode: Callable | None) -> Callable:
    """`behavior` (a coroutine, or an async generator) given the decoded request; a request
    stream's undecodable message (InvalidArgument from _stream_decoder) ends the call with it."""
    if inspect.isasyncgenfunction(behavior):
        async def stream(body, context):
            request = await _decoded(decode, body, context)
            try:
                await _write_each(behavior(request, context), context)
            except InvalidArgument as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        return stream

    async def call(body, context):
        request = await _decoded(decode, body, context)
        try:
            return await behavior(request, context)
        except InvalidArgument as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except NotImplementedError:  # e.g. Health/List, newer than grpcio-health-checking's aio servicer
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server does not implement the method")

    return call


async def _decoded(decode: Callable | None, body: bytes, context) -> Any:
    """The request message, or INVALID_ARGUMENT when the body is not one."""
    try:
        return decode(body) if decode is not None else body
    except Exception as exc:  # DecodeError and whatever else a deserializer raises: the body's fault
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _undecodable(decode, exc))


def _quietly(decode: Callable | None, body: bytes) -> Any:
    """The request for the audit record of a refused call, if it decodes."""
    try:
        return decode(body) if decode is not None else None
    except Exception:
        return None


def _stream_decoder(decode: Callable | None) -> Callable | None:
    """A stream's deserializer that raises InvalidArgument (a JobplaneError the handler maps)."""
    if decode is None:
        return None

    def decode_message(body: bytes) -> Any:
        try:
            return decode(body)
        except Exception as exc:
            raise InvalidArgument("request", _undecodable(decode, exc).removeprefix("request: ")) from None

    return decode_message


def _undecodable(decode: Callable, exc: Exception) -> str:
    descriptor = getattr(getattr(decode, "__self__", None), "DESCRIPTOR", None)
    name = descriptor.full_name if descriptor is not None else "request message"
    return f"request: the body is not a valid {name} ({str(exc)[:200]}); send a {name}, encoded as protobuf"


async def _admit(guard: AuthInterceptor, method: str, context, request_of: Callable[[], Any]) -> Caller:
    caller = ANONYMOUS
    try:
        caller = await guard.authenticate(method, context)
        guard.admit(method, caller, context)
        return caller
    except (JobplaneError, ValueError) as exc:  # ValueError: a certificate without a jobplane identity
        await _deny(guard, method, caller, request_of, context, exc)
    raise AssertionError("unreachable: context.abort raises")


async def _deny(guard: AuthInterceptor, method: str, caller: Caller, request_of: Callable[[], Any], context,
                exc: Exception) -> None:
    code = grpc.StatusCode[exc.code] if isinstance(exc, JobplaneError) else grpc.StatusCode.UNAUTHENTICATED
    guard.count(method, code.name)
    if method in MUTATING:
        identity = caller.identity if caller is not ANONYMOUS else _peer_host(context.peer())
        guard.audit(identity, 0, method, request_of(), code.name, str(exc))
    await context.abort(code, details(exc))


def _code(context, error: BaseException | None) -> str:
    """The status the call ended with: what the handler set, else OK, CANCELLED or UNKNOWN."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if error is None:
        return "OK"
    return "CANCELLED" if isinstance(error, asyncio.CancelledError) else "UNKNOWN"


def _clean(text: str, limit: int) -> str:
    return text[:limit].replace("\x00", "\\x00")


def _target(request: Any) -> str:
    """The resource a request names, for the audit log."""
    return _named(request)


def _named(request: Any) -> str:
    for field in ("job_id", "provider_id", "token_id", "schedule_id", "name", "user"):
        value = getattr(request, field, "")
        if value:
            return f"{field.removesuffix('_id')} {value}"
    if getattr(request, "rule_id", ""):
        return f"alert rule {request.rule_id}"
    rule = getattr(request, "rule", None)
    if rule is not None and getattr(rule, "filter", ""):
        return f"alert rule {rule.filter!r}"
    if rule is not None and getattr(rule, "name", ""):
        return f"conflict rule {rule.name}"
    schedule = getattr(request, "schedule", None)
    if schedule is not None and getattr(schedule, "cron", ""):
        return f"schedule {schedule.cron!r} of job {schedule.job.name}"
    spec = getattr(request, "spec", None)
    if spec is not None and getattr(spec, "name", ""):
        return f"job named {spec.name}"
    role = getattr(request, "role", 0)
    return f"role {role}" if role else ""


def _peer_host(peer: str) -> str:
    """`ipv4:127.0.0.1:5555` -> `127.0.0.1`."""
    kind, _, rest = peer.partition(":")
    return rest.rsplit(":", 1)[0] if kind in ("ipv4", "ipv6") else peer
