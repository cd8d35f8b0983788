"""The least HTTP/2 a gRPC bidirectional stream needs, for the fleet simulator (support_fleet):
a connection carries many streams, each opened with fixed request headers and fed gRPC messages
as bytes; what the server sends back is handed on message by message. Written for the server's
sake: a heartbeat costs the simulator one small socket write (gRPC's Python client spends about as
much CPU per message as the server does, on the same cores). It honours the server's flow control
(a frame that does not fit its window is refused, not queued), answers its SETTINGS and PINGs, and
reports how each stream ended (trailers, RST_STREAM with its code, GOAWAY with the server's words,
or the connection lost). The server's headers are not decoded (nothing here needs them)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
INITIAL_WINDOW = 65535
BIG_WINDOW = 2**31 - 1  # what the server may send us: never the limit (it sends little)
RST_CODES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
             5: "STREAM_CLOSED", 7: "REFUSED_STREAM", 8: "CANCEL", 11: "ENHANCE_YOUR_CALM"}


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def grpc_message(body: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\0" + len(body).to_bytes(4, "big") + body


def _hpack_int(n: int) -> bytes:
    if n < 127:
        return bytes((n,))
    out, n = [127], n - 127
    while n >= 128:
        out.append(n & 127 | 128)
        n >>= 7
    return bytes(out + [n])


def request_headers(authority: str, path: str) -> bytes:
    """An HPACK header block of literals (never indexed, no Huffman): no table on either side."""
    fields = ((":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
              ("content-type", "application/grpc"), ("te", "trailers"))
    return b"".join(b"\0" + _hpack_int(len(k)) + k.encode() + _hpack_int(len(v)) + v.encode() for k, v in fields)


class Stream:
    """One gRPC call on a Connection: `on_message(bytes)` for each message the server sends,
    `on_end(why)` once when it ends."""

    __slots__ = ("sid", "window", "buf", "conn", "on_message", "on_end")

    def __init__(self, on_message: Callable[[bytes], None], on_end: Callable[[str], None]) -> None:
        self.sid, self.window, self.buf, self.conn = 0, 0, bytearray(), None
        self.on_message, self.on_end = on_message, on_end

    def send(self, message: bytes) -> bool:
        """Write one gRPC-framed message; False if the stream is over or the server's flow
        control has no room for it (the server is not reading)."""
        conn = self.conn
        n = len(message)
        if conn is None or conn.lost or n > self.window or n > conn.window:
            return False
        self.window -= n
        conn.window -= n
        conn.transport.write(frame(DATA, 0, self.sid, message))
        return True

    def _data(self, payload: bytes) -> None:
        buf = self.buf
        buf += payload
        while len(buf) >= 5:
            n = int.from_bytes(buf[1:5], "big")
            if len(buf) < 5 + n:
                break
            message = bytes(buf[5:5 + n])
            del buf[:5 + n]
            self.on_message(message)


class Connection(asyncio.Protocol):
    """An HTTP/2 connection (prior knowledge, no TLS) carrying gRPC streams."""

    def __init__(self, authority: str) -> None:
        self.authority = authority
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.window = INITIAL_WINDOW  # what we may still send on the connection
        self.initial = INITIAL_WINDOW  # each new stream's window, by the server's SETTINGS
        self.lost: str = ""  # why no new stream may be opened (GOAWAY, connection lost)
        self._buf = bytearray()

    def connection_made(self, transport) -> None:
        self.transport = transport
        settings = struct.pack(">HIHI", 0x2, 0, 0x4, BIG_WINDOW)  # no push; a big window for each stream
        transport.write(PREFACE + frame(SETTINGS, 0, 0, settings) +
                        frame(WINDOW_UPDATE, 0, 0, (BIG_WINDOW - INITIAL_WINDOW).to_bytes(4, "big")))

    def open(self, stream: Stream, path: str, first: bytes) -> bool:
        """Open `stream` (request headers and the gRPC-framed messages `first`, written at once);
        False if this connection takes no new stream."""
        if self.lost or len(first) > self.window:
            return False
        sid, self.next_id = self.next_id, self.next_id + 2
        stream.sid, stream.conn, stream.window = sid, self, self.initial - len(first)
        self.window -= len(first)
        self.streams[sid] = stream
        self.transport.write(frame(HEADERS, END_HEADERS, sid, request_headers(self.authority, path)) +
                             frame(DATA, 0, sid, first))
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, size = 0, len(buf)
        while size - pos >= 9:
            length = int.from_bytes(buf[pos:pos + 3], "big")
            if size - pos < 9 + length:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            payload = bytes(buf[pos + 9:pos + 9 + length])
            pos += 9 + length
            self._frame(kind, flags, sid, payload)
        del buf[:pos]

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        stream = self.streams.get(sid)
        if kind == DATA and stream is not None:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            stream._data(payload)
            if flags & END_STREAM:
                self._end(sid, "the server ended the stream")
        elif kind == HEADERS and flags & END_STREAM:
            self._end(sid, f"the server ended the stream: {_status(payload)}")
        elif kind == RST_STREAM:
            code = int.from_bytes(payload[:4], "big")
            self._end(sid, f"RST_STREAM {RST_CODES.get(code, code)}")
        elif kind == SETTINGS and not flags & ACK:
            for at in range(0, len(payload) - 5, 6):
                key, value = struct.unpack(">HI", payload[at:at + 6])
                if key == 0x4:  # INITIAL_WINDOW_SIZE: open streams' windows move by the change
                    for s in self.streams.values():
                        s.window += value - self.initial
                    self.initial = value
            self.transport.write(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            self.transport.write(frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            code = int.from_bytes(payload[4:8], "big")
            self.lost = f"GOAWAY {RST_CODES.get(code, code)} {payload[8:].decode(errors='replace')}".strip()
        elif kind == WINDOW_UPDATE:
            grant = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if sid == 0:
                self.window += grant
            elif stream is not None:
                stream.window += grant

    def _end(self, sid: int, why: str) -> None:
        stream = self.streams.pop(sid, None)
        if stream is not None:
            stream.conn = None
            stream.on_end(why)

    def connection_lost(self, exc) -> None:
        self.lost = self.lost or f"connection lost: {exc or 'closed'}"
        for sid in list(self.streams):
            self._end(sid, self.lost)


def _status(block: bytes) -> str:
    """The grpc-status and grpc-message of a trailer block, where they are literal (as the
    gRPC server writes them the first time on a connection; later ones are indexed: 'indexed')."""
    at = block.find(b"grpc-status")
    if at < 0:
        return "grpc-status indexed"
    n = block[at + 11] & 0x7F
    status = block[at + 12:at + 12 + n].decode(errors="replace")
    at = block.find(b"grpc-message")
    message = ""
    if at >= 0:
        n, huffman = block[at + 12] & 0x7F, block[at + 12] & 0x80
        message = "(huffman)" if huffman else block[at + 13:at + 13 + n].decode(errors="replace")
    return f"grpc-status {status} {message}".strip()


async def connect(host: str, port: int) -> Connection:
    _, conn = await asyncio.get_running_loop().create_connection(lambda: Connection(f"{host}:{port}"), host, port)
    return conn
