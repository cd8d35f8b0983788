"""The agent's error tree: errors that end `Agent.run()` instead of being retried."""

from __future__ import annotations


class AgentError(Exception):
    """The agent cannot go on; the message says why and what to do."""


class NameInUse(AgentError):
    """Another agent with this name is connected to the server (ALREADY_EXISTS)."""


class HelloRejected(AgentError):
    """The server rejected the agent's hello (INVALID_ARGUMENT) or refuses it (PERMISSION_DENIED,
    UNAUTHENTICATED: e.g. its certificate was revoked)."""


class NotEnrolled(AgentError):
    """The agent has no usable certificate and nothing to enroll with (no join token or CA)."""


class EnrollmentRefused(AgentError):
    """The server refused the join token or the name, or its TLS cannot be trusted."""


class KeeperUnavailable(AgentError):
    """The agent's keeper (the process that runs and contains its commands) cannot be started
    or reached; the message names its log."""
