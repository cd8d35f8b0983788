"""The server's error tree. Domain code raises these; the service edge maps them to status codes."""

from __future__ import annotations


class JobplaneError(Exception):
    """Base of every error the server raises on purpose."""


class ConfigError(JobplaneError):
    """The server was configured wrongly (bad flag, bad database URL)."""


class InvalidArgument(JobplaneError):
    """A request field is invalid; `field` is its path, the message says the fix."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(JobplaneError):
    """The named job, task, provider or continuation does not exist."""


class AlreadyExists(JobplaneError):
    """The resource exists already (e.g. a provider name that is connected)."""


class Unauthenticated(JobplaneError):
    """The caller's credentials are missing, unknown, expired or revoked."""


class PermissionDenied(JobplaneError):
    """The caller may not do this (e.g. a revoked provider connecting)."""


class FailedPrecondition(JobplaneError):
    """The request is valid but the system is not in a state to honour it."""


class ResourceExhausted(JobplaneError):
    """A limit was hit."""


class StoreFailure(JobplaneError):
    """The database refused a write; the server stops rather than diverge from it."""


class EngineFailure(JobplaneError):
    """A bug stopped the engine mid-change; the server stops and resumes from its database."""
