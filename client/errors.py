"""Typed errors for SDK users: every failed call raises a JobplaneError subclass carrying its code.

A malformed job file raises JobFileError, an InvalidArgument found before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import grpc


class JobplaneError(Exception):
    """A call to the jobplane server failed; `code` is the gRPC status code."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(JobplaneError):
    """The request was malformed; the message names the field and the fix."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(JobplaneError):
    """The job, task or provider does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(JobplaneError):
    """The resource exists already (e.g. an agent name that is connected)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(JobplaneError):
    """The request is valid but the system is not in a state to honour it."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(JobplaneError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(JobplaneError):
    """The caller could not be identified."""

    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(JobplaneError):
    """A limit was hit (message size, rate, a watcher that fell behind)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class OutOfRange(JobplaneError):
    """The part asked for is past what is kept (e.g. a task's output rotated away on its agent)."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(JobplaneError):
    """The server could not be reached."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(JobplaneError):
    """The call did not finish within its deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


@dataclass(frozen=True)
class FileProblem:
    """One thing wrong with a job file: where (file, line, field path) and what to do about it."""

    file: str | None
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = ":".join(str(part) for part in (self.file, self.line) if part is not None)
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{where}: {text}" if where else text


class JobFileError(InvalidArgument):
    """A job file or job mapping is malformed; nothing was submitted. Lists every problem found."""

    def __init__(self, problems: Sequence[FileProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = tuple(problems)

    def __str__(self) -> str:
        return self.message


class CredentialsError(InvalidArgument):
    """A token, CA or certificate option is contradictory or its file cannot be read; nothing was sent."""

    def __str__(self) -> str:
        return self.message


_BY_CODE: dict[grpc.StatusCode, type[JobplaneError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        OutOfRange,
        Unavailable,
        DeadlineExceeded,
    )
}


def from_rpc_error(error: grpc.RpcError) -> JobplaneError:
    """Translate a gRPC error (sync or aio) into the matching typed exception."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    details = error.details() if callable(getattr(error, "details", None)) else str(error)
    cls = _BY_CODE.get(code, JobplaneError)
    return cls(details or code.name, code)


@contextmanager
def rpc_errors() -> Iterator[None]:
    """Re-raise any gRPC error inside the block as its typed JobplaneError (sync and aio alike)."""
    try:
        yield
    except grpc.RpcError as error:
        raise from_rpc_error(error) from error
