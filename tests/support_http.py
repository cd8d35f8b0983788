"""Real HTTP requests against a server started with --http (the console and /metrics)."""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from urllib.parse import urlencode

from support import ServerProc, wait_until

HTTP = ("--http", "127.0.0.1:0")  # server_args for a cluster with the console and /metrics


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case; Set-Cookie lines joined with "\n"
    body: str


def http_address(server: ServerProc) -> str:
    return wait_until(lambda: (server.data_dir / "http.addr").read_text().strip(), 10, "the HTTP address")


def request(server: ServerProc, method: str, path: str, *, cookie: str = "", form: dict | None = None,
            headers: dict | None = None) -> Reply:
    host, port = http_address(server).rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    sent = dict(headers or {})
    body = None
    if cookie:
        sent["Cookie"] = cookie
    if form is not None:
        body = urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=sent)
        answer = conn.getresponse()
        got: dict[str, str] = {}
        for name, value in answer.getheaders():
            key = name.lower()
            got[key] = f"{got[key]}\n{value}" if key in got else value
        return Reply(answer.status, got, answer.read().decode())
    finally:
        conn.close()


def get(server: ServerProc, path: str, **options) -> Reply:
    return request(server, "GET", path, **options)


def raw(server: ServerProc, data: bytes) -> bytes:
    """What the server answers to these bytes, sent as they are."""
    host, port = http_address(server).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def sign_in(server: ServerProc, token: str) -> str:
    """The Cookie header a browser sends after signing in to the console with `token`."""
    reply = request(server, "POST", "/login", form={"token": token})
    assert reply.status == 303, reply.body
    return reply.headers["set-cookie"].split(";", 1)[0]


class EventStream:
    """A server-sent event stream, read as a browser's EventSource reads it."""

    def __init__(self, server: ServerProc, path: str, cookie: str, last_event_id: int | None = None) -> None:
        host, port = http_address(server).rsplit(":", 1)
        self._conn = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {"Cookie": cookie, "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self._conn.request("GET", path, headers=headers)
        self.response = self._conn.getresponse()

    def __iter__(self):
        """Each event as {"id": ..., "event": ..., "data": ...} (comments and retry lines skipped)."""
        fields: dict[str, str] = {}
        while True:
            line = self.response.fp.readline().decode()
            if not line:
                return
            line = line.rstrip("\n")
            if not line:
                if "data" in fields:
                    yield fields
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    def close(self) -> None:
        self.response.close()  # (the socket closes only once its file is closed too)
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
