"""A pool of worker processes that run Python-callable tasks, bridged to asyncio.

Each worker holds one pipe to the agent and runs one call at a time. The agent learns of a
reply through `loop.add_reader` on the pipe, so a call costs no thread and no polling.

A worker is a new interpreter (`python -c`, running pyworker.main), never a fork of the agent,
which has gRPC's threads. Not multiprocessing's spawn: that also starts a resource tracker
process, and makes each worker import the agent's main module when the agent runs as the
`jobplane-agent` script (gRPC and all), for nothing a worker uses.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection, Pipe

from . import procs, pyworker
from .keeper_wire import KILL_DEADLINE
from .results import AttemptResult, Outcome, Started, StopRequest, request_stop

log = logging.getLogger(__name__)

# A worker that dies before it is ready is respawned after this pause, not in a tight loop.
_RESPAWN_PAUSE = 1.0
# How a worker starts: pyworker imported by its name (not run as __main__), so that the calls
# and replies pickled between pool and worker name the same classes on both sides.
_WORKER_MAIN = "from jobplane.agent.pyworker import main; main()"


@dataclass(frozen=True)
class PyCall:
    """One Python-callable attempt: "module:function", JSON arguments, env additions, cwd, timeout."""

    target: str
    args_json: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""
    timeout: float = 0.0
    task_id: str = ""
    job_id: str = ""
    attempt: int = 0
    # The checkpoint to resume from ("" = from the start): the task's `ctx.resume`.
    checkpoint_json: str = ""
    # Where its whole output is kept (logstore.py), at most this much per stream; "": tails only.
    log_dir: str = ""
    log_max_bytes: int = 0


class _Worker:
    """The agent's side of one worker process."""

    def __init__(self, process: subprocess.Popen[bytes], conn: Connection, sentinel: int) -> None:
        self.process = process
        self.conn = conn
        self.fd = conn.fileno()
        # Reads end-of-file once the process is gone (it holds the other end until it exits).
        self.sentinel = sentinel
        self.ready = False
        self.alive = True
        # Resolved with a pyworker.Reply, a StopRequest (killed) or an int|None (died: exit code).
        self.reply: asyncio.Future[object] | None = None
        # Told each checkpoint the running call makes.
        self.on_checkpoint: Callable[[str], None] | None = None
        # Done once a kill of the worker and of what its call started is over.
        self.killed: asyncio.Future[None] | None = None


class WorkerPool:
    """Up to `size` spawned worker processes, started when calls need them; each runs one
    call at a time and is replaced if killed."""

    def __init__(self, size: int, *, work_dir: str = "",
                 on_spawn: Callable[[int], None] | None = None) -> None:
        self._size = size
        self._work_dir = os.path.abspath(work_dir) if work_dir else ""
        # Told the pid of each worker started (the agent registers them with its keeper).
        self._on_spawn = on_spawn
        self._workers: set[_Worker] = set()
        self._reaping: set[asyncio.Task] = set()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # Idle workers, the one that finished last on top: calls go to the few workers kept busy
        # (warm: a worker woken after a long sleep costs several times a no-op's CPU), and
        # the others sleep.
        self._idle: asyncio.LifoQueue[_Worker] | None = None

    def start(self) -> None:
        """Ready the pool; call it from the event loop that will use the pool. Workers start
        on demand: an agent that runs only commands never pays for Python interpreters."""
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.LifoQueue()
        # Workers are not daemonic (tasks may start processes of their own), so make sure
        # they die with the agent even if nobody calls close().
        atexit.register(self._kill_all)

    async def run(
        self,
        call: PyCall,
        *,
        stop: asyncio.Future[StopRequest] | None = None,
        on_start: Callable[[Started], None] | None = None,
        on_checkpoint: Callable[[str], None] | None = None,
    ) -> AttemptResult:
        """Run the call in a free worker until it returns, raises, times out or is stopped.

        `on_checkpoint` gets the JSON of each `ctx.checkpoint(state)` the call makes.
        """
        assert self._loop is not None, "WorkerPool.start() was not called"
        stop = stop if stop is not None else self._loop.create_future()
        worker = await self._dispatch(call, stop, on_checkpoint)
        if worker is None:
            return stop.result().result()
        if on_start is not None:
            on_start(Started(worker.process.pid))
        return await self._await_reply(worker, call, stop)

    async def close(self) -> None:
        """Kill every worker and wait until they are reaped."""
        self._kill_all()
        atexit.unregister(self._kill_all)
        if self._reaping:
            await asyncio.wait(self._reaping, timeout=5.0)

    async def _dispatch(
        self, call: PyCall, stop: asyncio.Future[StopRequest],
        on_checkpoint: Callable[[str], None] | None,
    ) -> _Worker | None:
        """Hand the call to an idle worker; None if the attempt was stopped before that."""
        # Pickled here, once, with plain pickle (the worker's recv() unpickles it): Connection.send
        # would make a ForkingPickler, and its reduction table, for each call.
        request = pickle.dumps(pyworker.Call(call.target, call.args_json, dict(call.env), call.cwd,
                                             call.task_id, call.job_id, call.attempt, call.checkpoint_json,
                                             call.log_dir, call.log_max_bytes), pickle.HIGHEST_PROTOCOL)
        if self._idle.empty() and len(self._workers) < self._size:  # type: ignore[union-attr]
            self._spawn()  # it joins the idle queue once it says it is ready
        while (worker := await self._next_idle(stop)) is not None:
            try:
                worker.conn.send_bytes(request)
            except OSError:
                self._lost(worker)  # it died while idle; try the next one
                continue
            # Set before the loop next runs, so before _on_readable can see the answer.
            worker.reply = self._loop.create_future()  # type: ignore[union-attr]
            worker.on_checkpoint = on_checkpoint
            return worker
        return None

    async def _next_idle(self, stop: asyncio.Future[StopRequest]) -> _Worker | None:
        assert self._idle is not None
        while not stop.done():
            try:
                worker = self._idle.get_nowait()
            except asyncio.QueueEmpty:
                getter = asyncio.ensure_future(self._idle.get())
                await asyncio.wait({getter, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    return None
                worker = getter.result()
            if not worker.alive:
                continue
            if stop.done():
                self._idle.put_nowait(worker)
                return None
            return worker
        return None

    async def _await_reply(
        self, worker: _Worker, call: PyCall, stop: asyncio.Future[StopRequest]
    ) -> AttemptResult:
        reply = worker.reply
        assert reply is not None and self._loop is not None

        def on_stop(_: asyncio.Future) -> None:
            if not reply.done():
                reply.set_result(stop.result())
                self._kill(worker)

        stop.add_done_callback(on_stop)
        timer = None
        if call.timeout > 0:
            timer = self._loop.call_later(
                call.timeout, request_stop, stop, StopRequest.timeout(call.timeout)
            )
        try:
            answer = await reply
            if worker.killed is not None:  # stopped: the attempt is over once all of it is gone
                await worker.killed
        finally:
            worker.on_checkpoint = None
            stop.remove_done_callback(on_stop)
            if timer is not None:
                timer.cancel()
            if reply.cancelled():  # our caller was cancelled mid-call: the worker is busy
                self._kill(worker)
        return self._settle(worker, call, answer)

    def _settle(self, worker: _Worker, call: PyCall, answer: object) -> AttemptResult:
        if isinstance(answer, pyworker.Reply):
            worker.reply = None
            self._idle.put_nowait(worker)  # type: ignore[union-attr]
            return _from_reply(answer)
        if isinstance(answer, StopRequest):
            return answer.result()
        return _died(call.target, answer)  # type: ignore[arg-type]

    def _spawn(self) -> None:
        if self._closing:
            return
        parent, child = Pipe(duplex=True)
        sentinel, alive = os.pipe()
        # Started from the event loop's thread, which lives as long as the agent: a worker
        # dies when the thread that started it ends (pyworker.serve sets PR_SET_PDEATHSIG).
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_MAIN, str(child.fileno()), str(alive), self._work_dir,
                 str(os.getpid())],
                stdin=subprocess.DEVNULL, pass_fds=(child.fileno(), alive))
        except BaseException:
            os.close(sentinel)
            parent.close()
            raise
        finally:
            child.close()
            os.close(alive)
        if self._on_spawn is not None:
            self._on_spawn(process.pid)
        worker = _Worker(process, parent, sentinel)
        self._workers.add(worker)
        self._loop.add_reader(worker.fd, self._on_readable, worker)  # type: ignore[union-attr]

    def _on_readable(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            self._lost(worker)
            return
        if message == pyworker.READY:
            worker.ready = True
            self._idle.put_nowait(worker)  # type: ignore[union-attr]
        elif isinstance(message, pyworker.Checkpoint):
            if worker.on_checkpoint is not None:
                worker.on_checkpoint(message.checkpoint_json)
        elif worker.reply is not None and not worker.reply.done():
            worker.reply.set_result(message)

    def _lost(self, worker: _Worker) -> None:
        """A worker died on its own (crash, os._exit, killed from outside): replace it."""
        if not worker.alive:
            return
        pid = worker.process.pid
        self._retire(worker)
        reaped = self._reap(worker)
        if worker.ready:
            log.warning("python worker %d died; starting a replacement", pid)
            self._spawn()
        else:
            log.error("python worker %d died while starting; retrying in %.0f s",
                      pid, _RESPAWN_PAUSE)
            self._loop.call_later(_RESPAWN_PAUSE, self._spawn)  # type: ignore[union-attr]
        reply = worker.reply
        if reply is not None:
            # Its call fails once we know how the worker ended (the exit code).
            reaped.add_done_callback(partial(_answer_with_exit_code, reply))

    def _kill(self, worker: _Worker) -> None:
        """Kill a worker (and whatever its call started) and start a replacement."""
        if not worker.alive:
            return
        self._retire(worker)
        worker.killed = self._loop.run_in_executor(  # type: ignore[union-attr]
            None, _kill_worker, worker.process.pid)  # off the loop: it scans /proc
        self._reap(worker)
        self._spawn()

    def _kill_all(self) -> None:
        self._closing = True
        for worker in list(self._workers):
            if worker.reply is not None and not worker.reply.done():
                worker.reply.set_result(StopRequest.shutdown())
            self._retire(worker)
            _kill_worker(worker.process.pid)
            if self._loop is not None and not self._loop.is_closed():
                self._reap(worker)

    def _retire(self, worker: _Worker) -> None:
        """Stop listening to a worker and forget it."""
        worker.alive = False
        self._workers.discard(worker)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(worker.fd)
        worker.conn.close()

    def _reap(self, worker: _Worker) -> asyncio.Task[int | None]:
        task = asyncio.ensure_future(_wait_exit(worker), loop=self._loop)
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)
        return task


async def _wait_exit(worker: _Worker) -> int | None:
    """Wait (without blocking the loop) for a worker process to exit; its exit code."""
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(worker.sentinel, lambda: exited.done() or exited.set_result(None))
    try:
        await exited
    finally:
        loop.remove_reader(worker.sentinel)
        os.close(worker.sentinel)
    return worker.process.wait()


def _kill_worker(pid: int) -> None:
    """Kill a worker and everything its call started. The worker is their subreaper, so they
    are its descendants: they die first, while it is stopped."""
    procs.kill_tree(pid, time.monotonic() + KILL_DEADLINE)
    # A worker leads its own process group once it has started; before that it is alone.
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _from_reply(reply: pyworker.Reply) -> AttemptResult:
    if reply.status == "ok":
        return AttemptResult(
            outcome=Outcome.SUCCEEDED,
            result_json=reply.result_json,
            stdout_tail=reply.stdout_tail,
            stderr_tail=reply.stderr_tail,
            raw={"state": "returned"},
        )
    return AttemptResult(
        outcome=Outcome.FAILED,
        error=reply.error,
        stdout_tail=reply.stdout_tail,
        stderr_tail=reply.stderr_tail,
        raw={"state": "raised", "exception_type": reply.exception_type},
    )


def _answer_with_exit_code(reply: asyncio.Future[object], reaped: asyncio.Task) -> None:
    if not reply.done():
        failed = reaped.cancelled() or reaped.exception() is not None
        reply.set_result(None if failed else reaped.result())


def _died(target: str, exit_code: int | None) -> AttemptResult:
    if exit_code is not None and exit_code < 0:
        try:
            how = f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            how = f"was killed by signal {-exit_code}"
    else:
        how = f"exited with code {exit_code}"
    return AttemptResult(
        outcome=Outcome.FAILED,
        error=f"the python worker running {target} {how}",
        raw={"state": "crashed"},
    )
