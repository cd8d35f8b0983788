"""The jobplane agent: connects to a server, runs the tasks it assigns, streams their status.

Run it as ``jobplane-agent --server HOST:PORT`` or from Python::

    asyncio.run(Agent(AgentConfig(server="localhost:7070")).run())
"""

from .agent import Agent
from .config import AgentConfig

__all__ = ["Agent", "AgentConfig"]
