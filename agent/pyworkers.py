"""A pool of worker processes that run Python-callable tasks, bridged to asyncio.

Each worker holds one pipe to the agent and runs one call at a time; short calls may wait in a
busy worker's queue (pyqueue.py), so that few workers stay busy and warm. The agent learns of a
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
import itertools
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Pipe

from . import procs, pyqueue, pyresults, pyworker
from .keeper_wire import KILL_DEADLINE
from .pyqueue import Job, Worker
from .results import AttemptResult, Started, StopRequest, request_stop

log = logging.getLogger(__name__)

# A worker that dies before it is ready is respawned after this pause, not in a tight loop.
_RESPAWN_PAUSE = 1.0
# How a worker starts: pyworker imported by its name (not run as __main__), so that the calls
# and replies pickled between pool and worker name the same classes on both sides.
_WORKER_MAIN = "from jobplane.agent.pyworker import main; main()"
# A call is queued behind a busy worker's calls only if those are expected to take less than
# this in all (each its function's moving average, _WEIGHT the weight of the newest call): a
# call that would wait longer goes to an idle worker, in parallel, however cold ...
_WAIT = 0.0005
_WEIGHT = 0.3
# ... at most this many calls on one worker, their frames no bigger than this (the worker does
# not read them while it runs a call: they must fit in the socket's buffer) ...
_DEPTH = 8
_QUEUED_BYTES = 8192
# ... and those still queued behind a call that has run for this long go to idle workers (and
# none is queued behind it any more: the frames of calls moved away stay unread in its socket).
_PATIENCE = 0.02
# The functions whose calls' durations are kept, at most (the oldest is forgotten first).
_TIMED = 1024


# What `WorkerPool.run` runs: the call as the worker gets it (pyworker.Call).
PyCall = pyworker.Call


class WorkerPool:
    """Up to `size` spawned worker processes, started when calls need them. A call of a function
    may be queued behind the calls a busy worker has (up to `depth` calls on one worker) when
    those are expected to take less than `wait` seconds in all, so that the few workers kept
    busy stay warm and the others sleep; any other call goes to an idle worker. A worker killed
    (cancel, timeout) or dead is replaced; the calls queued behind its last one, which never
    started, go to other workers."""

    def __init__(self, size: int, *, work_dir: str = "", depth: int = 0, wait: float = _WAIT,
                 patience: float = _PATIENCE, on_spawn: Callable[[int], None] | None = None) -> None:
        self._size = size
        self._depth = depth or _DEPTH
        self._wait = wait
        self._patience = patience
        self._work_dir = os.path.abspath(work_dir) if work_dir else ""
        # Told the pid of each worker started (the agent registers them with its keeper).
        self._on_spawn = on_spawn
        self._workers: set[Worker] = set()
        # Calls no worker can take yet (the workers are starting, or all are full).
        self._waiting: deque[Job] = deque()
        # How long the last calls of each function ran, in seconds (a moving average).
        self._seconds: dict[str, float] = {}
        self._numbers = itertools.count(1)
        self._watching: asyncio.TimerHandle | None = None
        # The busy worker a call was last queued on: tried first.
        self._warm: Worker | None = None
        self._reaping: set[asyncio.Task] = set()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Ready the pool; call it from the event loop that will use the pool. Workers start
        on demand: an agent that runs only commands never pays for Python interpreters."""
        self._loop = asyncio.get_running_loop()
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
        """Run the call in a worker until it returns, raises, times out or is stopped.

        `on_start` is told when the call reaches the head of its worker's queue; `on_checkpoint`
        gets the JSON of each `ctx.checkpoint(state)` the call makes.
        """
        assert self._loop is not None, "WorkerPool.start() was not called"
        stop = stop if stop is not None else self._loop.create_future()
        if stop.done():
            return stop.result().result()
        job = Job(call, _pickled(call), stop, self._loop.create_future(), on_start, on_checkpoint)
        if self._closing:
            return StopRequest.shutdown().result()
        self._place(job)
        on_stop = partial(self._on_stop, job)
        stop.add_done_callback(on_stop)
        try:
            return await job.result
        except asyncio.CancelledError:  # our caller was cancelled: the call must not run on
            self._stop_job(job, StopRequest.shutdown())
            raise
        finally:
            stop.remove_done_callback(on_stop)

    async def close(self) -> None:
        """Kill every worker and wait until they are reaped."""
        self._kill_all()
        atexit.unregister(self._kill_all)
        if self._reaping:
            await asyncio.wait(self._reaping, timeout=5.0)

    # Placing calls on workers.

    def _place(self, job: Job) -> None:
        worker = self._choose(job)
        if worker is None:
            self._waiting.append(job)
            self._spawn_for_waiting()
        else:
            self._send(worker, job)

    def _choose(self, job: Job) -> Worker | None:
        """The busy worker to queue the call on (the one with the most queued: the others
        sleep), else the idle worker that answered last (the warmest); None if none can take it."""
        queued = not job.alone and len(job.pickled) <= _QUEUED_BYTES
        warm = self._warm
        if queued and warm is not None and self._queues_on(warm):
            return warm  # the usual case under load: no scan of the workers
        idle: Worker | None = None
        busy: Worker | None = None
        for worker in self._workers:
            if not worker.ready or worker.broken:
                continue
            n = len(worker.queue)
            if n == 0:
                if idle is None or worker.last_reply > idle.last_reply:
                    idle = worker
            elif queued and (busy is None or n > len(busy.queue)) and self._queues_on(worker):
                busy = worker
        if busy is not None:
            self._warm = busy
        return busy or idle

    def _queues_on(self, worker: Worker) -> bool:
        """Whether a call may wait on this busy worker: it has room, and what it has is expected
        to be over soon."""
        if not (worker.alive and not worker.broken and not worker.full
                and 0 < len(worker.queue) < self._depth):
            return False
        if time.monotonic() - worker.head_since >= self._patience:  # its call overran: stuck?
            return False
        seconds, wait = self._seconds, 0.0
        for job in worker.queue:
            wait += seconds.get(job.call.target, self._wait)
            if wait >= self._wait:
                return False
        return True

    def _send(self, worker: Worker, job: Job) -> None:
        """Send the call to the worker: at once to an idle worker (it reads it now); to a busy
        one only if its socket takes it now, else the call goes elsewhere."""
        try:
            if not worker.queue:
                worker.send(job, next(self._numbers))
            elif not worker.offer(job, next(self._numbers)):
                self._place(job)  # that worker is `full` now: another one
                return
        except OSError:  # it died: its end of file comes to _on_readable, and then _finish
            worker.broken = True
            if job.worker is None:  # withdrawn: it never reached the worker
                self._place(job)
            return
        if len(worker.queue) == 1:
            self._begin(worker, job)
        elif self._watching is None:
            self._watching = self._loop.call_later(self._patience, self._watch)  # type: ignore[union-attr]

    def _begin(self, worker: Worker, job: Job) -> None:
        """The call is at the head of its worker's queue: it runs (or is about to)."""
        worker.head_since = time.monotonic()
        if not job.started:
            job.started = True
            if job.on_start is not None:
                job.on_start(Started(worker.pid))
        if job.call.timeout > 0 and job.timer is None:
            job.timer = self._loop.call_later(  # type: ignore[union-attr]
                job.call.timeout, request_stop, job.stop, StopRequest.timeout(job.call.timeout))

    def _feed(self) -> None:
        """Place the waiting calls that workers can take now."""
        while self._waiting:
            worker = self._choose(self._waiting[0])
            if worker is None:
                break
            self._send(worker, self._waiting.popleft())
        self._spawn_for_waiting()

    def _spawn_for_waiting(self) -> None:
        starting = sum(not worker.ready for worker in self._workers)
        if starting < len(self._waiting) and len(self._workers) < self._size:
            self._spawn()

    def _watch(self) -> None:
        """Move the calls queued behind a call that has run for long to idle workers."""
        self._watching = None
        now = time.monotonic()
        again = False
        for worker in list(self._workers):
            if len(worker.queue) < 2:
                continue
            if now - worker.head_since < self._patience:
                again = True
                continue
            moved = worker.withdraw(list(worker.queue)[1:])
            again = again or len(worker.queue) > 1
            for job in moved:
                job.alone = True
                self._requeue(job)
        if again:
            self._watching = self._loop.call_later(self._patience, self._watch)  # type: ignore[union-attr]

    def _requeue(self, job: Job) -> None:
        """A call withdrawn before it started: placed again, its timeout not yet counting."""
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        if job.result.done():  # its caller was cancelled
            job.worker = None
        elif job.stopping is not None:  # stopped while its worker was being killed
            job.resolve(job.stopping.result())
        elif job.stop.done():
            job.resolve(job.stop.result().result())
        elif self._closing:
            job.resolve(StopRequest.shutdown().result())
        else:
            self._place(job)

    # What workers say.

    def _on_readable(self, worker: Worker) -> None:
        try:
            messages = worker.receive()
        except OSError:
            messages = None
        if messages is None:
            self._lost(worker)
            return
        for message in messages:
            self._on_message(worker, message)

    def _on_message(self, worker: Worker, message: object) -> None:
        if isinstance(message, pyworker.Reply):
            self._answered(worker, message)
        elif isinstance(message, pyworker.Checkpoint):
            if worker.queue and worker.queue[0].on_checkpoint is not None:
                worker.queue[0].on_checkpoint(message.checkpoint_json)  # type: ignore[misc]
        elif message == pyworker.READY:
            worker.ready = True
            worker.last_reply = time.monotonic()
            self._feed()

    def _answered(self, worker: Worker, reply: pyworker.Reply) -> None:
        job = worker.queue.popleft()
        worker.full = False  # it reads the frames before its next call's
        if reply.seconds:
            self._timed(job.call.target, reply.seconds)
        job.resolve(job.stopping.result() if job.stopping is not None else pyresults.from_reply(reply))
        if not worker.alive:  # read after its death: its other calls are settled by _finish
            return
        worker.last_reply = time.monotonic()
        if worker.queue:
            self._begin(worker, worker.queue[0])
        if self._waiting:
            self._feed()

    def _timed(self, target: str, seconds: float) -> None:
        """A call of `target` took this long (or was stopped, or died, after this long)."""
        timings = self._seconds
        last = timings.get(target)
        if last is None:
            if len(timings) >= _TIMED:
                del timings[next(iter(timings))]
            timings[target] = seconds
        else:
            timings[target] = _WEIGHT * seconds + (1 - _WEIGHT) * last

    # Stops, kills and deaths.

    def _on_stop(self, job: Job, stop: asyncio.Future[StopRequest]) -> None:
        if not job.result.done():
            self._stop_job(job, stop.result())

    def _stop_job(self, job: Job, request: StopRequest) -> None:
        """Stop a call: withdrawn if it has not started; if its worker has taken a later call,
        it answered this one (its reply is not read yet): nothing is killed; else its worker is
        killed (and the call's result waits until all of it is gone), and the calls queued
        behind it go to other workers. Never a kill that takes another call with it."""
        worker = job.worker
        if worker is None:
            if job in self._waiting:
                self._waiting.remove(job)
                job.resolve(request.result())
            return
        if not worker.alive:  # being killed, or dead: _finish settles it
            job.stopping = job.stopping or request
            return
        behind = worker.withdraw()  # from here on the worker takes no other call
        if job in behind:  # not started: withdrawn, and the others wait again
            behind.remove(job)
            worker.restore(behind)
            job.resolve(request.result())
            return
        job.stopping = request  # the result it gets, whatever the worker answers
        if worker.queue[-1] is not job:  # it took a later call: it answered this one (unread yet)
            worker.restore(behind)
            return
        self._kill(worker)  # running (or about to, or answered with nothing after it)
        for other in behind:  # they never started: elsewhere
            self._requeue(other)

    def _lost(self, worker: Worker) -> None:
        """A worker died on its own (crash, os._exit, killed from outside): replace it."""
        if not worker.alive:
            return
        pid = worker.pid
        self._retire(worker)
        reaped = self._reap(worker)
        if worker.ready:
            log.warning("python worker %d died; starting a replacement", pid)
            self._spawn()
        else:
            log.error("python worker %d died while starting; retrying in %.0f s",
                      pid, _RESPAWN_PAUSE)
            self._loop.call_later(_RESPAWN_PAUSE, self._spawn)  # type: ignore[union-attr]
        # Its calls are settled once we know how it ended (the exit code).
        reaped.add_done_callback(lambda task: self._finish(worker, _exit_code(task)))

    def _kill(self, worker: Worker) -> None:
        """Kill a worker (and whatever its call started) and start a replacement."""
        if not worker.alive:
            return
        self._retire(worker)
        worker.killed = self._loop.run_in_executor(  # type: ignore[union-attr]
            None, _kill_worker, worker.pid)  # off the loop: it scans /proc
        reaped = self._reap(worker)
        self._spawn()

        async def then() -> None:
            await asyncio.gather(worker.killed, reaped, return_exceptions=True)
            self._finish(worker, _exit_code(reaped))

        self._track(asyncio.ensure_future(then(), loop=self._loop))

    def _finish(self, worker: Worker, exit_code: int | None) -> None:
        """Settle the calls of a worker that is gone: those it answered get their answers, those
        whose tickets are still in the pipe never started and go to other workers, and the one it
        took but did not answer (at most one) failed with the worker, or was stopped."""
        head = worker.queue[0] if worker.queue else None
        ran = time.monotonic() - worker.head_since
        try:
            while worker.conn.poll(0) and (messages := worker.receive()) is not None:
                for message in messages:
                    self._on_message(worker, message)
        except OSError:
            pass
        for job in worker.withdraw():
            self._requeue(job)
        if worker.queue and worker.queue[0] is head:  # it was stopped or died after this long:
            self._timed(head.call.target, ran)  # its function may not be quick any more
        while worker.queue:
            job = worker.queue.popleft()
            job.resolve(job.stopping.result() if job.stopping is not None
                        else pyresults.died(job.call.target, exit_code))
        worker.close()
        if self._waiting and not self._closing:
            self._feed()

    def _kill_all(self) -> None:
        self._closing = True
        shutdown = StopRequest.shutdown().result()
        while self._waiting:
            self._waiting.popleft().resolve(shutdown)
        for worker in list(self._workers):
            while worker.queue:
                worker.queue.popleft().resolve(shutdown)
            self._retire(worker)
            _kill_worker(worker.pid)
            if self._loop is not None and not self._loop.is_closed():
                self._reap(worker).add_done_callback(lambda _, w=worker: w.close())
            else:
                worker.close()

    def _spawn(self) -> None:
        if self._closing:
            return
        parent, child = Pipe(duplex=True)
        sentinel, alive = os.pipe()
        theirs, ours, feed = pyqueue.tickets_pipe()
        # Started from the event loop's thread, which lives as long as the agent: a worker
        # dies when the thread that started it ends (pyworker.serve sets PR_SET_PDEATHSIG).
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_MAIN, str(child.fileno()), str(theirs), str(alive),
                 self._work_dir, str(os.getpid())],
                stdin=subprocess.DEVNULL, pass_fds=(child.fileno(), theirs, alive))
        except BaseException:
            for fd in (sentinel, ours, feed):
                os.close(fd)
            parent.close()
            raise
        finally:
            child.close()
            os.close(alive)
            os.close(theirs)
        if self._on_spawn is not None:
            self._on_spawn(process.pid)
        worker = Worker(process, parent, ours, feed, sentinel)
        worker.open_socket()
        self._workers.add(worker)
        self._loop.add_reader(worker.fd, self._on_readable, worker)  # type: ignore[union-attr]

    def _retire(self, worker: Worker) -> None:
        """Stop listening to a worker and forget it (its pipes stay open for _finish)."""
        worker.alive = False
        self._workers.discard(worker)
        if self._warm is worker:
            self._warm = None
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(worker.fd)

    def _reap(self, worker: Worker) -> asyncio.Task[int | None]:
        return self._track(asyncio.ensure_future(_wait_exit(worker), loop=self._loop))

    def _track(self, task: asyncio.Task) -> asyncio.Task:
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)
        return task


def _pickled(call: PyCall) -> bytes:
    """The call as a worker gets it, pickled once with plain pickle (Connection.send would make a
    ForkingPickler, and its reduction table, for each call)."""
    return pickle.dumps(call if type(call.env) is dict else call._replace(env=dict(call.env)),
                        pickle.HIGHEST_PROTOCOL)


def _exit_code(reaped: asyncio.Task) -> int | None:
    return None if reaped.cancelled() or reaped.exception() is not None else reaped.result()


async def _wait_exit(worker: Worker) -> int | None:
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
