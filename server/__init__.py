"""The jobplane control plane: `Server(ServerConfig(...))`, or `jobplane-server` on the command line."""

from .app import Server
from .config import ServerConfig

__all__ = ["Server", "ServerConfig"]
