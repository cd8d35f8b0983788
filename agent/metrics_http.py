"""`jobplane-agent --metrics ADDR`: GET /metrics answers the agent's measurements in the Prometheus
text format, on the agent's event loop (asyncio streams; one request per connection). Smaller than
the server's HTTP server, which the agent does not import (the agent never imports the server)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from jobplane.prometheus import CONTENT_TYPE

log = logging.getLogger(__name__)

MAX_HEAD = 8 * 1024
READ_TIMEOUT = 10.0


class MetricsServer:
    """Serves `render()` at /metrics on HOST:PORT (port 0 picks one)."""

    def __init__(self, render: Callable[[], Awaitable[str]]) -> None:
        self._render = render
        self._server: asyncio.base_events.Server | None = None

    async def start(self, address: str) -> str:
        """Listen; returns HOST:PORT as bound."""
        host, _, port = address.rpartition(":")
        self._server = await asyncio.start_server(self._answer, host.strip("[]") or None, int(port), limit=MAX_HEAD)
        bound = self._server.sockets[0].getsockname()
        return f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            method, path = (head.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + ["", ""])[:2]
            if method not in ("GET", "HEAD"):
                status, body, kind = "405 Method Not Allowed", "only GET /metrics\n", "text/plain; charset=utf-8"
            elif path.split("?", 1)[0] != "/metrics":
                status, body, kind = "404 Not Found", "only /metrics is served here\n", "text/plain; charset=utf-8"
            else:
                status, body, kind = "200 OK", await self._render(), CONTENT_TYPE
            data = body.encode()
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(data)}\r\n"
                         "Connection: close\r\n\r\n".encode("latin-1"))
            if method != "HEAD":
                writer.write(data)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that went away or sent no request: nothing to answer
        except Exception:
            log.exception("answering a /metrics request failed")
        finally:
            writer.close()
