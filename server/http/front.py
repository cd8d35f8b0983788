"""What the HTTP listener serves, by path: `/healthz`, `/metrics`, and the console."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from jobplane.prometheus import CONTENT_TYPE as METRICS_TYPE

from .console import Console
from .metrics import MetricsPage
from .server import HttpServer, Request, Response, Stream

log = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"


class HttpFront:
    """The HTTP listener and its routes. `failed` tells whether the server has stopped taking
    changes (the database refused a write)."""

    def __init__(self, failed: Callable[[], BaseException | None], metrics: MetricsPage, console: Console) -> None:
        self._failed = failed
        self._metrics = metrics
        self._console = console
        self._http = HttpServer(self.handle)

    async def start(self, address: str, tls: ssl.SSLContext | None = None) -> str:
        """Listen on `address` (over TLS with `tls`); returns HOST:PORT as bound."""
        return await self._http.start(address, tls)

    async def stop(self) -> None:
        await self._http.stop()

    async def handle(self, request: Request) -> Response | Stream:
        if request.method not in ("GET", "HEAD", "POST"):
            return Response(405, "only GET, HEAD and POST are served here\n", TEXT, [("Allow", "GET, HEAD, POST")])
        if request.path == "/healthz":
            return self._health()
        if request.path == "/metrics":
            return Response(200, await self._metrics.render(), METRICS_TYPE)
        answer = await self._console.handle(request)
        if answer is not None:
            return answer
        return Response(404, f"nothing at {request.path}\n", TEXT)

    def _health(self) -> Response:
        failure = self._failed()
        if failure is not None:
            return Response(503, f"not serving: {failure}\n", TEXT)
        return Response(200, "ok\n", TEXT)
