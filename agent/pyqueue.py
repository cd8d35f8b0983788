"""One Python worker as the pool sees it: its process, its pipes and the calls queued on it.

The pool may queue several calls on one worker, so that a worker runs quick calls back to back
instead of sleeping between them (a worker woken after a sleep costs several times a no-op
call's CPU). Each call goes as a frame on the worker's connection and an 8-byte ticket on a pipe
that both the worker and the pool read (pyworker.serve). The worker takes a call's ticket only
after it has answered the call before it; the pool takes tickets back to withdraw calls that
have not started (`withdraw`). One read of a pipe takes a whole ticket, from the pool or from
the worker, never both: a withdrawn call never runs, and a call the pool could not withdraw
has started, or is about to.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import struct
import subprocess
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from . import pyworker
from .results import AttemptResult, Started, StopRequest

if TYPE_CHECKING:
    from .pyworkers import PyCall

# At most this many tickets are read back at once: far more than a worker is ever given.
_DRAIN = 4096
# How much of what a worker sent one read takes (several replies, when it ran several calls).
_READ = 1 << 16
# multiprocessing.connection's framing: a signed 32-bit big-endian size, or -1 and a 64-bit one.
_SIZE = struct.Struct("!i")
_BIG = struct.Struct("!Q")
# The least send buffer a worker's socket gets (the kernel's default is 208 KiB).
_SEND_BUFFER = 1 << 16


@dataclass(eq=False)
class Job:
    """One call of `WorkerPool.run`, from its placing on a worker until its result."""

    call: PyCall
    # pyworker.Call pickled, once: the frame sent is its number and this.
    pickled: bytes
    stop: asyncio.Future[StopRequest]
    result: asyncio.Future[AttemptResult]
    on_start: Callable[[Started], None] | None = None
    on_checkpoint: Callable[[str], None] | None = None
    seq: int = 0
    worker: Worker | None = None
    # Told on_start (once: a call moved to another worker before it ran is not started again).
    started: bool = False
    # Its timeout, armed when it becomes the head of its worker's queue.
    timer: asyncio.TimerHandle | None = None
    # Why it is being stopped while its worker is killed (the result it gets then).
    stopping: StopRequest | None = None
    # Moved off a worker where it waited too long: it goes to an idle worker only.
    alone: bool = False

    def resolve(self, result: AttemptResult) -> None:
        """The call is over: its result, and no timeout any more."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.worker = None
        if not self.result.done():
            self.result.set_result(result)


@dataclass(eq=False)
class Worker:
    """The pool's side of one worker process and the calls queued on it (the head runs)."""

    process: subprocess.Popen[bytes]
    conn: Connection
    # The pool's own read end of the tickets' pipe (non-blocking), and its write end.
    tickets: int
    feed: int
    # Reads end-of-file once the process is gone (it holds the other end until it exits).
    sentinel: int
    ready: bool = False
    alive: bool = True
    # A send failed: it is dying, and takes no more calls (its end of file is on the way).
    broken: bool = False
    queue: deque[Job] = field(default_factory=deque)
    # When the head of the queue became the head (monotonic): when it started, near enough.
    head_since: float = 0.0
    # When it last answered: the idle worker that answered last is the warmest.
    last_reply: float = 0.0
    # Done once a kill of the worker and of what its call started is over.
    killed: asyncio.Future[None] | None = None
    # What it sent that is not a whole message yet.
    inbox: bytearray = field(default_factory=bytearray)
    # Its connection as a socket, for sends that must not wait (`offer`), set by `open_socket`.
    sock: socket.socket | None = None
    # An offer found its socket full: it takes no more queued calls until it answers one.
    full: bool = False

    def open_socket(self) -> None:
        """`sock`, with room for several queued frames (`offer`: a frame under half the buffer
        goes in one piece)."""
        self.sock = socket.socket(fileno=os.dup(self.fd))  # its own descriptor: closed apart
        if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < _SEND_BUFFER:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)

    @property
    def fd(self) -> int:
        return self.conn.fileno()

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, job: Job, seq: int) -> None:
        """Queue the call: its ticket, then its frame (a worker holding the ticket waits for the
        frame, so a frame bigger than the socket's buffer cannot leave both sides waiting)."""
        ticket = pyworker.SEQ.pack(seq)
        job.seq, job.worker = seq, self
        self.queue.append(job)
        os.write(self.feed, ticket)
        try:
            self.conn.send_bytes(ticket + job.pickled)
        except OSError:
            self.withdraw((job,))  # never sent whole (the worker is gone): nobody runs it
            raise

    def offer(self, job: Job, seq: int) -> bool:
        """Queue the call on this busy worker if its socket takes the whole frame now; False
        (nothing sent, nothing queued) if the socket is full: the event loop never waits on a
        worker that is not reading. The frame goes before the ticket (the worker reads frames
        only for a ticket it holds), in one write, which a Unix socket takes whole or not at all
        for frames this small (pyworkers._QUEUED_BYTES)."""
        ticket = pyworker.SEQ.pack(seq)
        frame = _SIZE.pack(len(ticket) + len(job.pickled)) + ticket + job.pickled
        try:
            sent = self.sock.send(frame, socket.MSG_DONTWAIT)  # type: ignore[union-attr]
        except BlockingIOError:
            self.full = True
            return False
        if sent != len(frame):  # not for a frame this small; the stream is broken if so
            raise OSError(f"python worker {self.pid}: a frame went in part ({sent} of {len(frame)})")
        os.write(self.feed, ticket)
        job.seq, job.worker = seq, self
        self.queue.append(job)
        return True

    def receive(self) -> list[object] | None:
        """The messages the worker has sent, as many as one read brings; None at its end of file.
        Call it only when its connection is readable (the read would wait otherwise)."""
        data = os.read(self.fd, _READ)
        if not data:
            return None
        inbox = self.inbox
        inbox += data
        messages = []
        at = 0
        while len(inbox) - at >= _SIZE.size:
            size = _SIZE.unpack_from(inbox, at)[0]
            start = at + _SIZE.size
            if size == -1:
                if len(inbox) - start < _BIG.size:
                    break
                size = _BIG.unpack_from(inbox, start)[0]
                start += _BIG.size
            if len(inbox) < start + size:
                break
            messages.append(pickle.loads(inbox[start:start + size]))
            at = start + size
        del inbox[:at]
        return messages

    def withdraw(self, jobs: Iterable[Job] | None = None) -> list[Job]:
        """Take back the tickets of these queued calls (of all, with None): the calls withdrawn,
        which never start here, in queue order; the others go on waiting, in order."""
        data = bytearray()
        while True:
            try:
                chunk = os.read(self.tickets, _DRAIN)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        seqs = [pyworker.SEQ.unpack_from(data, i)[0] for i in range(0, len(data), pyworker.SEQ.size)]
        wanted = {job.seq for job in (self.queue if jobs is None else jobs)}
        back = [seq for seq in seqs if seq not in wanted]
        if back:
            os.write(self.feed, b"".join(pyworker.SEQ.pack(seq) for seq in back))
        taken = set(seqs) - set(back)
        withdrawn = [job for job in self.queue if job.seq in taken]
        for job in withdrawn:
            self.queue.remove(job)
            job.worker = None
        return withdrawn

    def restore(self, jobs: list[Job]) -> None:
        """Queue again, in order and behind all, calls just withdrawn (their frames are unread)."""
        for job in jobs:
            job.worker = self
            self.queue.append(job)
        if jobs:
            os.write(self.feed, b"".join(pyworker.SEQ.pack(job.seq) for job in jobs))

    def close(self) -> None:
        """Close the pool's ends of the worker's pipes (not the sentinel: the reaper's)."""
        if self.sock is not None:
            self.sock.close()
        self.conn.close()
        for fd in (self.tickets, self.feed):
            try:
                os.close(fd)
            except OSError:
                pass


def tickets_pipe() -> tuple[int, int, int]:
    """A pipe for tickets: the worker's read end (blocking), the pool's own read end
    (non-blocking, a file description of its own), and the write end."""
    read, write = os.pipe()
    own = os.open(f"/proc/self/fd/{read}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    return read, own, write
