"""The jobplane agent: connects to a server, runs the tasks it assigns, streams their status.

Run it as ``jobplane-agent --server HOST:PORT --token SECRET --ca ca-bundle.crt`` (once; the
certificate it enrolls for is kept in its state directory) or from Python::

    asyncio.run(Agent(AgentConfig(server="localhost:7070", token=secret, ca_file=path)).run())

Against a server started with ``--insecure``, pass ``--insecure`` (``insecure=True``) instead.
Given the addresses of several server replicas, comma-separated (``--server a:7070,b:7070``),
the agent streams to the one that leads and moves on when it is gone (replicas.py).

`Agent` and `AgentConfig` are imported on first use, so that tasks importing
``jobplane.agent.checkpoint`` do not pay for gRPC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import Agent
    from .config import AgentConfig

__all__ = ["Agent", "AgentConfig"]


def __getattr__(name: str) -> Any:
    if name == "Agent":
        from .agent import Agent as value
    elif name == "AgentConfig":
        from .config import AgentConfig as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
