"""The server's error tree, and the one table of what each error is to a caller: its `code`,
the name of the gRPC status it is answered with (the service edge and the security interceptor
both read it here). Domain code raises these without knowing of gRPC."""

from __future__ import annotations

MAX_DETAILS = 1000  # characters of an error message sent back (gRPC refuses metadata over 16 KiB)


class JobplaneError(Exception):
    """Base of every error the server raises on purpose."""

    code = "INTERNAL"


class ConfigError(JobplaneError):
    """The server was configured wrongly (bad flag, bad database URL)."""


class InvalidArgument(JobplaneError):
    """A request field is invalid; `field` is its path, the message says the fix."""

    code = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(JobplaneError):
    """The named job, task, provider or continuation does not exist."""

    code = "NOT_FOUND"

    @classmethod
    def job(cls, job_id: int) -> NotFound:
        return cls(f"job {job_id} not found; `jobplane jobs list` shows the jobs there are")


class AlreadyExists(JobplaneError):
    """The resource exists already (e.g. a provider name that is connected)."""

    code = "ALREADY_EXISTS"


class Unauthenticated(JobplaneError):
    """The caller's credentials are missing, unknown, expired or revoked."""

    code = "UNAUTHENTICATED"


class PermissionDenied(JobplaneError):
    """The caller may not do this (e.g. a revoked provider connecting)."""

    code = "PERMISSION_DENIED"


class FailedPrecondition(JobplaneError):
    """The request is valid but the system is not in a state to honour it."""

    code = "FAILED_PRECONDITION"


class ResourceExhausted(JobplaneError):
    """A limit was hit."""

    code = "RESOURCE_EXHAUSTED"


class OutOfRange(JobplaneError):
    """The part asked for is past what is kept (e.g. output rotated away)."""

    code = "OUT_OF_RANGE"


class Unavailable(JobplaneError):
    """What the call needs is out of reach just now (e.g. the agent that keeps a task's output
    is not connected); the same call may succeed later."""

    code = "UNAVAILABLE"


class StoreFailure(JobplaneError):
    """The database refused a write; the server stops rather than diverge from it."""

    code = "UNAVAILABLE"


class Deposed(StoreFailure):
    """A replica's commit found the lease taken by another (issue 16): nothing of the batch
    was written, and the replica steps down to follower."""


class EngineFailure(JobplaneError):
    """A bug stopped the engine mid-change; the server stops and resumes from its database."""

    code = "INTERNAL"


def details(exc: Exception) -> str:
    """An error's message as sent: cut to MAX_DETAILS characters, since it travels in a
    header and gRPC refuses headers over 16 KiB (the caller would see only that)."""
    text = str(exc)
    return text if len(text) <= MAX_DETAILS else text[:MAX_DETAILS - 30] + f"... ({len(text)} characters)"
