"""A small HTTP/1.1 server on the server's own event loop (asyncio streams, no framework):
one request per connection, a request in, a `Response` (or a `Stream` of chunks, for
server-sent events) out. Enough for a console and a metrics scrape; nothing here blocks the loop."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024  # bytes of request line and headers
MAX_BODY = 64 * 1024  # a form post is all the console takes
READ_TIMEOUT = 10.0  # seconds a client has to send its request


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes = b""

    @property
    def cookies(self) -> dict[str, str]:
        jar = SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except CookieError:
            return {}
        return {name: morsel.value for name, morsel in jar.items()}

    def form(self) -> dict[str, str]:
        """A url-encoded form body, first value of each field."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass
class Response:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Stream:
    """A response written as its chunks come (e.g. text/event-stream); ends when they do or the
    client goes away (then the iterator is closed, which ends whatever feeds it)."""

    chunks: AsyncIterator[bytes]
    content_type: str = "text/event-stream; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response | Stream]]


class BadRequest(Exception):
    """The request cannot be read as HTTP."""


class HttpServer:
    """Serves `handler` on ADDR (HOST:PORT, port 0 picks one)."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._tls = False
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self, address: str, tls: ssl.SSLContext | None = None) -> str:
        """Listen (over TLS with `tls`); returns HOST:PORT as bound."""
        host, _, port = address.rpartition(":")
        host = host.strip("[]") or None
        self._tls = tls is not None
        self._server = await asyncio.start_server(self._connection, host, int(port), limit=MAX_HEAD, ssl=tls,
                                                  ssl_handshake_timeout=READ_TIMEOUT if tls else None)
        bound = self._server.sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        return f"{shown}:{bound[1]}"

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):  # open event streams too
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(read_request(reader), READ_TIMEOUT)
        except (BadRequest, asyncio.LimitOverrunError, ValueError) as exc:
            await _write(writer, Response(400, f"bad request: {exc}\n", "text/plain; charset=utf-8"))
            return
        except asyncio.TimeoutError:
            return
        try:
            response = await self._handler(request)
        except Exception:
            log.exception("the HTTP handler failed on %s %s", request.method, request.path)
            response = Response(500, "internal error; the server log says more\n", "text/plain; charset=utf-8")
        if self._tls:  # a cookie set over HTTPS is never sent back over plain HTTP
            response.headers = [_secure(name, value) for name, value in response.headers]
        if isinstance(response, Stream):
            await _stream(reader, writer, response)
        else:
            await _write(writer, response, head_only=request.method == "HEAD")


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context with this certificate (chain) and key; ValueError saying which file is wrong."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise ValueError(f"no such file: {exc.filename}") from exc
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot load the certificate {cert} with the key {key}: {exc}") from exc
    return context


def _secure(name: str, value: str) -> tuple[str, str]:
    if name.lower() == "set-cookie" and "; secure" not in value.lower():
        return name, f"{value}; Secure"
    return name, value


async def read_request(reader: asyncio.StreamReader) -> Request:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"not an HTTP/1.x request line: {lines[0][:100]!r}")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(f"not a header line: {line[:100]!r}")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length < 0 or length > MAX_BODY:
        raise BadRequest(f"a body of {length} bytes; at most {MAX_BODY} are taken")
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    return Request(method.upper(), unquote(url.path) or "/", query, headers, body)


def _head(status: int, content_type: str, headers: list[tuple[str, str]], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Type: {content_type}",
             "Connection: close", "X-Content-Type-Options: nosniff"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write(writer: asyncio.StreamWriter, response: Response, head_only: bool = False) -> None:
    body = response.body.encode() if isinstance(response.body, str) else response.body
    writer.write(_head(response.status, response.content_type, response.headers, len(body)))
    if not head_only:
        writer.write(body)
    await writer.drain()


async def _stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: Stream) -> None:
    """Write chunks as they come until they end or the client hangs up (its side reaches EOF)."""
    hangup: asyncio.Future | None = None
    chunk: asyncio.Future | None = None
    try:  # a client gone before the head is written still ends the stream's source here
        writer.write(_head(200, stream.content_type, [("Cache-Control", "no-cache"), *stream.headers], None))
        await writer.drain()
        hangup = asyncio.ensure_future(reader.read())  # a client sends nothing more, so this ends at EOF
        chunks = aiter(stream.chunks)
        while True:
            chunk = asyncio.ensure_future(anext(chunks))
            done, _ = await asyncio.wait({chunk, hangup}, return_when=asyncio.FIRST_COMPLETED)
            if chunk not in done:
                return
            try:
                data = chunk.result()
            except StopAsyncIteration:
                return
            writer.write(data)
            await writer.drain()
    finally:
        if hangup is not None:
            hangup.cancel()
        if chunk is not None and not chunk.done():
            chunk.cancel()
            await asyncio.gather(chunk, return_exceptions=True)
        await stream.chunks.aclose()
