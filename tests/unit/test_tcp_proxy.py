"""support.TcpProxy's muting is exact: once `drop_answers()` returns, nothing the server sends
reaches the muted clients, even when `cut()` follows at once (a test that loses a submit's
answer relies on it: an answer let through would look like a client that retried)."""

from __future__ import annotations

import socket
import struct
import threading
import time

from support import TcpProxy, wait_until

CONNECTIONS = 8
ROUNDS = 5


class Numbered:
    """A server that sends every client it accepts numbers, one counter for all, as fast as
    they are read, until the connection breaks."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self._next = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def sending_from_now(self) -> int:
        """A number no earlier send carries: every number from it on is sent after this call."""
        with self._lock:
            return self._next

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._send, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket) -> None:
        try:
            while True:
                with self._lock:
                    n, self._next = self._next, self._next + 1
                conn.sendall(struct.pack(">Q", n) * 16)
                time.sleep(0.0005)
        except OSError:
            conn.close()

    def close(self) -> None:
        self.listener.close()


class Receiver:
    """A client of the proxy that keeps every number it receives, until the connection ends."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.data.extend(chunk)
        except OSError:
            pass

    def highest(self) -> int:
        whole = len(self.data) - len(self.data) % 8
        return max((struct.unpack_from(">Q", self.data, i)[0] for i in range(0, whole, 8)), default=-1)


def test_a_muted_connection_gets_nothing_sent_after_muting_even_when_cut_at_once():
    leaks = []
    for _ in range(ROUNDS):
        server = Numbered()
        proxy = TcpProxy(server.address)
        try:
            clients = [Receiver(proxy.address) for _ in range(CONNECTIONS)]
            wait_until(lambda: all(c.data for c in clients), 10, "every client to receive numbers")
            proxy.drop_answers()
            first_muted = server.sending_from_now()
            proxy.cut()
            for c in clients:
                c.thread.join(10)
                c.sock.close()
            leaks += [c.highest() for c in clients if c.highest() >= first_muted]
        finally:
            proxy.close()
            server.close()
    assert not leaks, f"numbers sent after drop_answers() reached muted clients: {leaks}"
