"""The keeper's side of one agent connection: a holder of the lease, and its Python workers."""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import struct
import time
from collections.abc import Callable

from . import keeper_wire as wire, procs

log = logging.getLogger("jobplane.agent.keeper")

# Bytes one request may take (a start request carries the task's environment).
_MAX_REQUEST = 256 * 1024 * 1024


class Holder:
    """One connected agent process: what it said, when it last renewed, what it owes."""

    def __init__(self, sock: socket.socket, pid: int,
                 on_messages: Callable[[Holder, list[dict]], None],
                 on_gone: Callable[[Holder, bool], None]) -> None:
        self.sock = sock
        self.pid = pid
        self._on_messages = on_messages
        self._on_gone = on_gone
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._selector: selectors.BaseSelector | None = None
        self._waits_to_write = False  # registered for EVENT_WRITE: the socket took only part
        self.greeted = False
        self.heartbeat = 1.0
        self.containment = "auto"
        # The agent's environment, which its start requests' environments are relative to.
        self.env: dict[str, str] = {}
        self.renewed = time.monotonic()
        self.leaving = False
        # Python workers: start time by pid (a pid reused since is not ours to kill).
        self.workers: dict[int, int | None] = {}

    def register(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector
        selector.register(self.sock, selectors.EVENT_READ, self._on_event)

    def greet(self, hello: dict) -> None:
        self.greeted = True
        self.heartbeat = max(0.01, float(hello.get("heartbeat", self.heartbeat)))
        self.containment = str(hello.get("containment", self.containment))
        self.env = {str(k): str(v) for k, v in dict(hello.get("env", {})).items()}

    def expires(self, grace: float) -> float:
        """When this holder counts as frozen if it does not renew again."""
        return self.renewed + grace + 2 * self.heartbeat

    def add_worker(self, pid: int) -> None:
        self.workers = {p: t for p, t in self.workers.items() if procs.start_time(p) == t}
        self.workers[pid] = procs.start_time(pid)

    def kill_workers(self) -> None:
        """SIGKILL the holder's Python workers and what their calls started (each worker is
        their subreaper); a pid reused by another process since is left alone."""
        for pid, started in self.workers.items():
            now = procs.start_time(pid)
            if now is not None and now != started:
                continue
            if now is not None:
                procs.kill_tree(pid, time.monotonic() + wire.KILL_DEADLINE)
            try:  # what is left of its group, even if the worker died already
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.workers.clear()

    def send(self, message: dict) -> None:
        """Queue a message; the keeper's loop flushes every holder once a round."""
        self._outbox += wire.encode(message)

    def send_line(self, line: bytes) -> None:
        """Queue a message encoded already (keeper_wire.started, ended)."""
        self._outbox += line

    def flush(self) -> None:
        """Write what the socket takes now; the rest when it is writable (never block on a
        frozen agent)."""
        if not self._outbox and not self._waits_to_write:
            return
        try:
            while self._outbox:
                sent = self.sock.send(self._outbox)
                del self._outbox[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self._outbox.clear()
            return
        if self._selector is not None and self.sock.fileno() >= 0 and self._waits_to_write != bool(self._outbox):
            self._waits_to_write = bool(self._outbox)
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._outbox else 0)
            self._selector.modify(self.sock, events, self._on_event)

    def close(self, selector: selectors.BaseSelector) -> None:
        if self.sock.fileno() >= 0:
            selector.unregister(self.sock)
            self.sock.close()
        self._selector = None

    def _on_event(self, sock: socket.socket, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            self.flush()
        if events & selectors.EVENT_READ:
            self._read()

    def _read(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._on_gone(self, False)
            return
        self.renewed = time.monotonic()
        self._inbox += data
        if len(self._inbox) > _MAX_REQUEST:
            log.error("agent process %s sent a request over %d bytes; dropping it", self.pid,
                      _MAX_REQUEST)
            self._on_gone(self, False)
            return
        messages = []
        while (end := self._inbox.find(b"\n")) >= 0:
            line = bytes(self._inbox[:end])
            del self._inbox[:end + 1]
            try:
                messages.append(wire.decode(line))
            except ValueError as exc:
                log.error("agent process %s sent a line that is not a JSON object: %s", self.pid, exc)
        if messages:
            self._on_messages(self, messages)


def holder_for(conn: socket.socket, on_messages: Callable[[Holder, list[dict]], None],
               on_gone: Callable[[Holder, bool], None]) -> Holder | None:
    """A holder for a new connection, if it comes from a process of this user; else None."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    if uid != os.getuid():
        log.warning("refusing a connection from pid %d of uid %d", pid, uid)
        conn.close()
        return None
    conn.setblocking(False)
    return Holder(conn, pid, on_messages, on_gone)
