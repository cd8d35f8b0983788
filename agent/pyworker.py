"""The code of one Python worker process: import `module:function` once, call it on request.

This module runs in the worker, not in the agent; it talks to the pool over one pipe. The pool
starts a worker as `python -c` running `main()` (pyworkers.py), so that a worker imports only
this module and what it needs: not the agent, nor gRPC.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import os
import pickle
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from . import logstore, procs
from .checkpoint import TaskContext
from .results import TAIL_LIMIT


class Call(NamedTuple):
    """One Python-callable attempt, as the pool gets it and the worker runs it: "module:function",
    JSON arguments, env additions, cwd, timeout (the pool's), for whom. A tuple: made and pickled
    once per attempt, with no conversion between the agent's and the worker's view of it."""

    target: str
    args_json: str = ""
    # Never changed in place (the default is shared).
    env: Mapping[str, str] = {}
    cwd: str = ""
    timeout: float = 0.0
    task_id: str = ""
    job_id: str = ""
    attempt: int = 0
    # The checkpoint to resume from ("" = from the start): the task's `ctx.resume`.
    checkpoint_json: str = ""
    # Where the call's whole output is kept (logstore.py), at most this much of each stream;
    # "": only the tails.
    log_dir: str = ""
    log_max_bytes: int = 0


class Checkpoint(NamedTuple):
    """A message from a worker while its call runs: the task's latest state (ctx.checkpoint)."""

    checkpoint_json: str


class _Target(NamedTuple):
    """A resolved `module:function`, and whether it takes a `ctx` parameter."""

    function: Callable[..., Any]
    takes_ctx: bool


class Reply(NamedTuple):
    """A worker's answer: "ok" with the JSON result, or "error" with the exception."""

    status: str
    result_json: str = ""
    exception_type: str = ""
    error: str = ""
    stdout_tail: str = ""
    stderr_tail: str = ""
    # How long the function ran: the pool expects its next calls to take about as long.
    seconds: float = 0.0


# A call's number, before its pickle in the frame the pool sends, and alone as its ticket.
SEQ = struct.Struct("=Q")

# The first message a worker sends: it is up and can take calls.
READY = "ready"


# What the worker gets when the agent dies (PR_SET_PDEATHSIG).
AGENT_GONE = signal.SIGUSR2
# How long killing what a call left running may take (a process in uninterruptible sleep).
_KILL_SECONDS = 5.0


def main(argv: Sequence[str] | None = None) -> None:
    """A worker as the pool starts it: `CONN_FD TICKETS_FD ALIVE_FD WORK_DIR AGENT_PID` (see serve).

    CONN_FD is the worker's end of its pipe to the pool; TICKETS_FD the read end of the pipe of
    its tickets; ALIVE_FD is held open for as long as the worker lives (the pool's sentinel reads
    end-of-file once it is gone). None is passed on to programs a task runs.
    """
    conn_fd, tickets_fd, alive_fd, work_dir, agent_pid = sys.argv[1:] if argv is None else argv
    for fd in (int(conn_fd), int(tickets_fd), int(alive_fd)):
        os.set_inheritable(fd, False)
    if sys.path[:1] == [""]:  # from `python -c`: tasks import from the work dir, not wherever they chdir
        del sys.path[0]
    serve(Connection(int(conn_fd)), int(tickets_fd), work_dir, int(agent_pid))


def serve(conn: Connection, tickets: int, work_dir: str, agent_pid: int = 0) -> None:
    """The worker's main loop: answer calls until the pool closes the pipe.

    The pool may queue several calls: each comes as a frame on `conn` and an 8-byte ticket on
    `tickets`, a pipe the pool can read too. The worker takes a ticket (one read: the kernel gives
    it to the worker or to the pool, never both) only after it has sent the reply to its last
    call, and runs the call the ticket names; a call whose ticket the pool took back (withdrawn:
    cancelled, or moved to another worker) is skipped. So a call runs only if its ticket left
    the pipe by the worker's read, and when a worker dies, only the first call it did not answer
    may have run.
    """
    # The subreaper of whatever a call starts, so that nothing it starts leaves the worker's
    # tree: the pool and the keeper kill the worker as a tree, and so does the worker itself
    # when its call returns, or when the agent dies (it cannot be adopted: its task is
    # continued elsewhere).
    procs.become_subreaper()
    signal.signal(AGENT_GONE, _die_with_the_agent)
    procs.die_with_parent(AGENT_GONE)
    if agent_pid and os.getppid() != agent_pid:
        return  # the agent died before we could ask
    # Own session: the terminal's Ctrl-C reaches only the agent, and killing the group on
    # cancel also takes anything the function started.
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if work_dir and work_dir not in sys.path:
        sys.path.insert(0, work_dir)
    functions: dict[str, _Target] = {}
    conn.send(READY)
    while True:
        try:
            call = _next_call(conn, tickets)
        except (EOFError, OSError):
            return  # the agent has gone
        if call is None:
            return
        reply = run_call(functions, call, lambda text: _send(conn, Checkpoint(text)))
        _end_of_call()
        try:
            _send(conn, reply)
        except OSError:
            return  # the agent went away while the call ran


def _next_call(conn: Connection, tickets: int) -> Call | None:
    """Take the next ticket, and the call it names (skipping withdrawn calls); None once the
    pool has closed the tickets' pipe."""
    ticket = os.read(tickets, SEQ.size)
    if len(ticket) < SEQ.size:
        return None
    while True:
        frame = conn.recv_bytes()
        if frame[:SEQ.size] == ticket:
            return pickle.loads(memoryview(frame)[SEQ.size:])
        if SEQ.unpack_from(frame)[0] > SEQ.unpack(ticket)[0]:  # frames come in ticket order
            raise OSError(f"python worker: call {SEQ.unpack(ticket)[0]} never came")


def _send(conn: Connection, message: object) -> None:
    """conn.send with plain pickle (the pool's recv() unpickles it): Connection.send makes a
    ForkingPickler, and its reduction table, for each message."""
    conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def _end_of_call() -> None:
    """Kill whatever the call left running: nothing of an attempt outlives it."""
    if procs.has_children():
        procs.kill_tree(os.getpid(), time.monotonic() + _KILL_SECONDS, reap=procs.reap_children)
        procs.reap_children()


def _die_with_the_agent(signum: int, frame: object) -> None:
    procs.kill_tree(os.getpid(), time.monotonic() + _KILL_SECONDS, reap=procs.reap_children)
    os._exit(1)


def run_call(functions: dict[str, _Target], call: Call,
             send_checkpoint: Callable[[str], None]) -> Reply:
    """Resolve, call and JSON-encode, turning every failure into an "error" reply.

    A function with a `ctx` parameter gets a TaskContext whose checkpoints go to `send_checkpoint`.
    The call's env is set first: its module's import-time code sees it (and not the last call's).
    """
    _ENVIRONMENT.enter(call.env)
    if call.target not in functions:
        try:
            function = resolve(call.target)
        except BaseException as exc:  # ImportError, AttributeError, SyntaxError, SystemExit...
            return Reply("error", exception_type=type(exc).__name__,
                         error=f"cannot load {call.target!r}: {_describe(exc)}")
        functions[call.target] = _Target(function, _takes_ctx(function))
    target = functions[call.target]
    try:
        args, kwargs = parse_args(call.args_json)
        ctx = _context(call, send_checkpoint) if target.takes_ctx else None
    except ValueError as exc:
        return Reply("error", exception_type="ValueError", error=str(exc))
    stdout, stderr = _output(call)
    began = time.perf_counter()
    try:
        with _task_context(call.cwd, stdout, stderr):
            reply = _invoke(target.function, args, kwargs, ctx, call.target, stderr)
    except OSError as exc:  # entering the working directory failed; the function never ran
        return Reply("error", exception_type=type(exc).__name__,
                     error=f"cannot enter working directory {call.cwd!r}: {exc.strerror}")
    finally:
        _end_output(call, stdout, stderr)
    return reply._replace(stdout_tail=stdout.text(), stderr_tail=stderr.text(),
                          seconds=time.perf_counter() - began)


def _output(call: Call) -> tuple[_TailWriter, _TailWriter]:
    """Where the call's stdout and stderr go: tails, and the log store when the call names one."""
    if not call.log_dir:
        return _TailWriter(), _TailWriter()
    try:
        # Its directory is made at its first output: most calls print nothing, and a directory
        # and a file per call cost more than a no-op call itself.
        logstore.prepare(call.log_dir)
        return tuple(_TailWriter(logstore.SegmentWriter(call.log_dir, stream, call.log_max_bytes,  # type: ignore[return-value]
                                                        lazy=True))
                     for stream in logstore.STREAMS)
    except OSError:  # no room for it: the tails still go to the server
        return _TailWriter(), _TailWriter()


def _end_output(call: Call, stdout: _TailWriter, stderr: _TailWriter) -> None:
    """Close the call's output and, when the log store keeps it, say it is complete. A call that
    printed nothing made no directory (and _output removed any earlier one): it is listed
    silent at once, without logstore.complete's look for the directory (a syscall per call)."""
    wrote = stdout.wrote or stderr.wrote
    kept = [stream.end() for stream in (stdout, stderr)]
    if call.log_dir and all(kept):
        try:
            if wrote:
                logstore.complete(call.log_dir)
            else:
                logstore.note_empty(call.log_dir)
        except OSError:  # no room: a reader finds no output kept, as when it could not be written
            pass


def _takes_ctx(function: Callable[..., Any]) -> bool:
    """Whether the function has a parameter named `ctx` that can be passed by keyword."""
    try:
        parameter = inspect.signature(function).parameters.get("ctx")
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _context(call: Call, send_checkpoint: Callable[[str], None]) -> TaskContext:
    try:
        resume = json.loads(call.checkpoint_json) if call.checkpoint_json else None
    except ValueError as exc:
        raise ValueError(f"checkpoint_json: the state to resume from is not JSON: {exc}") from exc
    return TaskContext(task_id=call.task_id, job_id=call.job_id, attempt=call.attempt,
                       resume=resume, send=send_checkpoint)


def _invoke(
    function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any],
    ctx: TaskContext | None, target: str, stderr: io.TextIOBase,
) -> Reply:
    if ctx is not None:
        kwargs = {**kwargs, "ctx": ctx}
    try:
        value = function(*args, **kwargs)
    except BaseException as exc:  # SystemExit too: the task failed, the worker lives on
        # The traceback starts at the task's own code, not at this frame.
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next, file=stderr)
        return Reply("error", exception_type=type(exc).__name__, error=_describe(exc))
    finally:
        if ctx is not None:
            ctx.close()  # a thread the task left behind cannot checkpoint over the reply
    try:
        return Reply("ok", result_json=json.dumps(value))
    except Exception as exc:  # TypeError, ValueError (circular), RecursionError
        return Reply("error", exception_type=type(exc).__name__,
                     error=f"the return value of {target} is not JSON-serialisable: {exc}")


def resolve(target: str) -> Callable[..., Any]:
    """The callable named by "package.module:function" (the function may be dotted: Class.method)."""
    module_name, sep, qualname = target.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"expected 'module:function', got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for attr in qualname.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise TypeError(f"{target} is a {type(obj).__name__}, not a callable")
    return obj


def parse_args(args_json: str) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments from args_json: an array, an object, or nothing."""
    if not args_json.strip():
        return [], {}
    try:
        value = json.loads(args_json)
    except ValueError as exc:
        raise ValueError(f"args_json: {exc}") from exc
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict):
        return [], value
    raise ValueError(f"args_json: must be a JSON object or array, got {type(value).__name__}")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Environment:
    """os.environ as calls change it. A call's variables are set as it starts; what they replaced
    is put back when a later call does not set the same variable (no code of ours runs between
    calls), so that calls of one job, which differ in a variable or two, cost a change or two
    rather than a set and a restore of each (os.environ encodes every key and value it sees)."""

    def __init__(self) -> None:
        # What each variable a call set was before the calls set it (None: unset).
        self._original: dict[str, str | None] = {}

    def enter(self, env: Mapping[str, str]) -> None:
        environ = os.environ
        for key in [key for key in self._original if key not in env]:
            value = self._original.pop(key)
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        for key, value in env.items():
            current = environ.get(key)
            if key not in self._original:
                self._original[key] = current
            if current != value:
                environ[key] = value


# The worker's one environment (os.environ is the process's).
_ENVIRONMENT = _Environment()


@contextlib.contextmanager
def _task_context(cwd: str, stdout: io.TextIOBase, stderr: io.TextIOBase) -> Iterator[None]:
    """Run in the task's working directory with its output captured, both restored after (its
    environment is set by run_call, and put back when the next call starts: _Environment)."""
    # Most calls run in the agent's work dir, where the worker already is: no chdir then.
    saved_cwd = os.getcwd()
    moved = bool(cwd) and cwd != saved_cwd
    saved_out, saved_err = sys.stdout, sys.stderr
    try:
        if moved:
            os.chdir(cwd)
        sys.stdout, sys.stderr = stdout, stderr
        yield
    finally:
        sys.stdout, sys.stderr = saved_out, saved_err
        if moved or os.getcwd() != saved_cwd:  # the function may have moved, too
            os.chdir(saved_cwd)


class _TailWriter(io.TextIOBase):
    """A text stream that keeps the last TAIL_LIMIT characters written to it, and passes all of
    them to `kept` (the log store), UTF-8 encoded, if given."""

    def __init__(self, kept: logstore.SegmentWriter | None = None) -> None:
        super().__init__()
        self._parts: list[str] = []
        self._size = 0
        self._kept = kept

    def writable(self) -> bool:
        return True

    @property
    def wrote(self) -> bool:
        """Whether the log store's stream was given output (its directory was made, or tried)."""
        return self._kept is not None and self._kept.wrote

    def end(self) -> bool:
        """Close the log store's stream; whether the log store kept it."""
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()
        return kept is not None

    def write(self, text: str) -> int:
        if self._kept is not None:
            self._kept.write(text.encode("utf-8", errors="replace"))
        self._parts.append(text)
        self._size += len(text)
        if self._size > 4 * TAIL_LIMIT:
            self._parts = [self.text()]
            self._size = len(self._parts[0])
        return len(text)

    def text(self) -> str:
        """What is left: the last TAIL_LIMIT characters."""
        return "".join(self._parts)[-TAIL_LIMIT:]
