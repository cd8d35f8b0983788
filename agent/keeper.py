"""The agent's keeper: it starts command attempts and holds them to the agent's lease.

One keeper per state directory, started by the agent (`python -m jobplane.agent.keeper
[--log-format json] [--provider NAME] DIR`) when none runs there; it outlives the agent. It logs
to DIR/keeper.log, in the agent's --log-format. Stdlib only and single-threaded, so that it may
fork: each attempt's wrapper (wrapper.py) is a fork of it. It is a subreaper too: if a wrapper
is killed, what it contained falls to the keeper, which kills it.

The lease: an agent process connected to the keeper's socket (a holder) renews it every
RENEW_INTERVAL. When a holder's connection closes (the agent died, the kernel closed it), its
attempts wait the reconnect grace (the server's, passed on by the agent) for a new agent
process to adopt them; when a holder stops renewing (frozen) for the grace plus two of its
heartbeat intervals, its attempts go at once. Attempts nobody adopts are killed, process tree
and cgroup, within KILL_DEADLINE, and their directory says why (LOST_FILE), so that no agent
process reports them: the server continues them elsewhere. Python workers a holder registered
are killed as soon as it is gone. The keeper exits once it holds nothing for nobody.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path

from jobplane.files import write_atomic
from jobplane.logs import LOG_FORMATS, configure as configure_logging, ids

from . import cgroups, keeper_wire as wire, procs, wrapper
from .keeper_holders import Holder, holder_for

log = logging.getLogger("jobplane.agent.keeper")


class _Attempt:
    """A wrapper the keeper forked: its directory, cgroup, holder and what waits on it."""

    def __init__(self, pid: int, directory: Path, cgroup: Path | None, holder: Holder,
                 request_id: int, report: int) -> None:
        self.pid = pid
        self.directory = directory
        self.cgroup = cgroup
        self.holder: Holder | None = holder
        self.orphaned_until: float | None = None
        self.request_id = request_id
        self.report: int | None = report  # the pipe on which the wrapper says it started
        self.settles: list[tuple[Holder, int]] = []
        self.killed = False
        self.stopped: list[int] | None = None  # frozen while it waits for a new agent process
        # Suspended at the server's request (a hold, a lost condition): what was stopped. An
        # adoption does not thaw it; only a `suspend` request with `resume` does.
        self.suspended: list[int] | None = None


class Keeper:
    """The keeper's state and its single-threaded loop."""

    def __init__(self, listener: socket.socket, lock: int) -> None:
        self.listener = listener
        self.lock = lock
        self.selector = selectors.DefaultSelector()
        self.holders: list[Holder] = []
        self.attempts: dict[int, _Attempt] = {}
        self.grace = wire.DEFAULT_GRACE
        self.containments: dict[str, cgroups.Containment] = {}
        self.started = time.monotonic()
        self.ever_held = False
        self.serial = 0
        wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        self.selector.register(wake_r, selectors.EVENT_READ, self._drain_wakeups)
        self.selector.register(listener, selectors.EVENT_READ, self._accept)

    def serve(self) -> None:
        while not self._finished():
            timeout = max(0.0, self._next_deadline() - time.monotonic())
            for key, events in self.selector.select(timeout):
                key.data(key.fileobj, events)
            self._reap()
            self._expire()
        self._kill_until_gone([])  # strays of wrappers killed from outside, if any are left
        for found in self.containments.values():
            if found.base is not None:
                cgroups.remove(cgroups.keeper_dir(found.base))
        log.info("nothing left to keep; exiting")

    def _finished(self) -> bool:
        if self.holders or self.attempts:
            return False
        return self.ever_held or time.monotonic() - self.started > wire.STARTUP_WAIT

    def _next_deadline(self) -> float:
        deadlines = [] if self.ever_held else [self.started + wire.STARTUP_WAIT]
        deadlines += [h.expires(self.grace) for h in self.holders]
        deadlines += [a.orphaned_until for a in self.attempts.values() if a.orphaned_until]
        return min(deadlines, default=time.monotonic() + wire.STARTUP_WAIT)

    # Connections.

    def _accept(self, listener: socket.socket, _: int) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        holder = holder_for(conn, self._on_message, self._on_gone)
        if holder is None:
            return
        self.holders.append(holder)
        holder.register(self.selector)

    def _drain_wakeups(self, fd: int, _: int) -> None:
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass

    def _on_message(self, holder: Holder, message: dict) -> None:
        op = message.get("op")
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            log.warning("ignoring an unknown request %r from pid %s", op, holder.pid)
            return
        try:
            handler(holder, message)
        except (KeyError, TypeError, ValueError) as exc:  # a bad request must not end the keeper
            log.error("refusing a malformed %r request from pid %s: %r", op, holder.pid, exc)
            if "id" in message:
                holder.send({"op": "refused", "id": message["id"], "errno": 0,
                             "error": f"malformed {op} request: {exc!r}"})

    def _op_hello(self, holder: Holder, message: dict) -> None:
        holder.greet(message)
        self.ever_held = True
        found = self._containment(holder.containment)
        holder.send({"op": "welcome", "containment": found.kind, "why": found.why,
                     "kill_deadline": wire.KILL_DEADLINE, "keeper_pid": os.getpid(),
                     "grace": self.grace})
        log.info("agent process %s holds the lease (heartbeat %gs, containment %s)",
                 holder.pid, holder.heartbeat, found.describe())

    def _op_renew(self, holder: Holder, message: dict) -> None:
        pass  # any message renews (Holder.receive)

    def _op_grace(self, holder: Holder, message: dict) -> None:
        self.grace = max(0.0, float(message.get("seconds", self.grace)))

    def _op_worker(self, holder: Holder, message: dict) -> None:
        holder.add_worker(int(message["pid"]))

    def _op_settle(self, holder: Holder, message: dict) -> None:
        attempt = self.attempts.get(int(message["pid"]))
        if attempt is None:
            holder.send({"op": "settled", "id": message["id"]})
        else:
            attempt.settles.append((holder, message["id"]))

    def _op_adopt(self, holder: Holder, message: dict) -> None:
        """A new agent process takes over attempts whose holder is gone; with `only`, it is
        the only agent of this directory, so orphans it does not name are killed now."""
        wanted = {os.path.realpath(d) for d in message.get("dirs", ())}
        adopted, unclaimed = [], []
        for attempt in self.attempts.values():
            if attempt.holder is not None or attempt.killed:
                continue
            if os.path.realpath(attempt.directory) in wanted:
                attempt.holder, attempt.orphaned_until = holder, None
                self._thaw(attempt)
                adopted.append(str(attempt.directory))
            elif message.get("only"):
                unclaimed.append(attempt)
        if unclaimed:
            self._kill(unclaimed, "the agent started again without it")
        holder.send({"op": "adopted", "id": message["id"], "dirs": adopted})

    def _op_suspend(self, holder: Holder, message: dict) -> None:
        """Pause (or, with `resume`, continue) what an attempt runs: its cgroup frozen, or every
        process below its wrapper stopped. Answers whether the attempt was found."""
        attempt = self.attempts.get(int(message["pid"]))
        found = attempt is not None and not attempt.killed
        if found:
            if message.get("resume"):
                self._resume(attempt)
            else:
                self._suspend(attempt)
        holder.send({"op": "suspended", "id": message["id"], "found": found})

    def _suspend(self, attempt: _Attempt) -> None:
        """Every process of the attempt SIGSTOPped (so `ps` shows T): in a cgroup, frozen first, so
        that none forks while the others are stopped; else stopped round after round."""
        if attempt.suspended is not None:
            return
        deadline = time.monotonic() + wire.KILL_DEADLINE
        if attempt.cgroup is not None:
            cgroups.freeze(attempt.cgroup, True)
            cgroups.wait_frozen(attempt.cgroup, deadline)
            attempt.suspended = cgroups.members(attempt.cgroup)
            procs.send(attempt.suspended, signal.SIGSTOP)  # taken as they thaw, before they run on
            cgroups.freeze(attempt.cgroup, False)
        else:
            attempt.suspended = procs.stop_tree(attempt.pid, deadline)
        log.info("suspended the attempt in %s (%d processes stopped)", attempt.directory,
                 len(attempt.suspended))

    def _resume(self, attempt: _Attempt) -> None:
        if attempt.suspended is None:
            return
        stopped, attempt.suspended = attempt.suspended, None
        if attempt.stopped is None:  # not also paused for want of an agent process
            procs.send(stopped, signal.SIGCONT)
        log.info("resumed the attempt in %s", attempt.directory)

    def _op_bye(self, holder: Holder, message: dict) -> None:
        holder.leaving = True

    def _op_start(self, holder: Holder, message: dict) -> None:
        request = wrapper.Request(message["dir"], list(message["argv"]), dict(message["env"]),
                                  message.get("cwd", ""), float(message.get("timeout", 0)),
                                  int(message.get("log_max_bytes", 0)))
        found = self._containment(holder.containment)
        cgroup = None
        if found.base is not None:
            self.serial += 1
            try:
                cgroup = cgroups.create(cgroups.keeper_dir(found.base),
                                        f"{self.serial}-{Path(request.directory).name}")
            except OSError as exc:
                holder.send({"op": "refused", "id": message["id"], "errno": exc.errno or 0,
                             "error": f"cannot create the attempt's cgroup: {exc.strerror}"})
                return
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        keeper_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:  # the wrapper; never back into the keeper's loop, whatever happens
                os.close(report_r)
                self._forget_in_child()
                wrapper.run(request, cgroup=cgroup, report_fd=report_w, keeper_pid=keeper_pid)
            finally:
                os._exit(1)
        os.close(report_w)
        attempt = _Attempt(pid, Path(request.directory), cgroup, holder, message["id"], report_r)
        self.attempts[pid] = attempt
        self.selector.register(report_r, selectors.EVENT_READ,
                               lambda fd, _: self._on_report(attempt))

    def _forget_in_child(self) -> None:
        """In a freshly forked wrapper: let go of the keeper's sockets, pipes and handlers."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for key in list(self.selector.get_map().values()):
            fileobj = key.fileobj
            if isinstance(fileobj, int):
                os.close(fileobj)
            else:
                fileobj.close()
        self.selector.close()
        os.close(self.wake_w)
        os.close(self.lock)  # a new keeper must be able to start while this attempt ends

    def _on_report(self, attempt: _Attempt) -> None:
        """The wrapper says whether its command started (or died before it could say)."""
        fd, attempt.report = attempt.report, None
        if fd is None:
            return
        self.selector.unregister(fd)
        with os.fdopen(fd, "rb") as pipe:
            line = pipe.readline()
        message = wire.decode(line) if line else {
            "errno": 0, "error": "the attempt's wrapper died as it started", "stage": "wrapper"}
        holder = attempt.holder
        if holder is None:
            return
        if "pid" in message:
            holder.send({"op": "started", "id": attempt.request_id, "pid": attempt.pid})
        else:
            holder.send({"op": "refused", "id": attempt.request_id, **message})

    # The lease.

    def _on_gone(self, holder: Holder, frozen: bool) -> None:
        """A holder is gone: its workers die now, its attempts after the grace (at once if
        it froze, was already given the grace, or said goodbye)."""
        if holder not in self.holders:
            return
        self.holders.remove(holder)
        holder.close(self.selector)
        holder.kill_workers()
        now = time.monotonic()
        until = now if frozen or holder.leaving else now + self.grace
        mine = [a for a in self.attempts.values() if a.holder is holder]
        for attempt in mine:
            attempt.holder, attempt.orphaned_until = None, until
        if mine and until > now:  # while they wait, nothing they do is ever reported: pause them
            self._freeze(mine)
        if frozen:
            log.warning("agent process %s did not renew its lease for %.1fs (frozen?): killing "
                        "its %d attempts and its python workers", holder.pid,
                        now - holder.renewed, len(mine))
        elif mine and not holder.leaving:
            log.info("agent process %s is gone; its %d attempts wait %gs for a new one",
                     holder.pid, len(mine), self.grace)

    def _freeze(self, attempts: list[_Attempt]) -> None:
        """Pause what the attempts run (not their wrappers): a dead agent's attempt makes no
        progress (no side effect, no checkpoint) that its continuation would then redo."""
        deadline = time.monotonic() + wire.KILL_DEADLINE
        for attempt in attempts:
            if attempt.suspended is not None:
                attempt.stopped = []  # stopped already; stays so until it is resumed
            elif attempt.cgroup is not None:
                cgroups.freeze(attempt.cgroup, True)
                attempt.stopped = []
            else:
                attempt.stopped = procs.stop_tree(attempt.pid, deadline)

    def _thaw(self, attempt: _Attempt) -> None:
        if attempt.stopped is None:
            return
        if attempt.suspended is not None:  # suspended by request: it stays paused
            attempt.stopped = None
            return
        if attempt.cgroup is not None:
            cgroups.freeze(attempt.cgroup, False)
        procs.send(attempt.stopped, signal.SIGCONT)
        attempt.stopped = None

    def _expire(self) -> None:
        now = time.monotonic()
        for holder in [h for h in self.holders if h.expires(self.grace) <= now]:
            holder.send({"op": "lapsed"})
            holder.flush()
            self._on_gone(holder, frozen=True)
        due = [a for a in self.attempts.values()
               if a.orphaned_until is not None and a.orphaned_until <= now and not a.killed]
        if due:
            self._kill(due, f"no agent process held its lease (grace {self.grace:g}s)")

    def _kill(self, attempts: list[_Attempt], why: str) -> None:
        """Kill these attempts' wrappers, process trees and cgroups; mark them lost."""
        for attempt in attempts:
            attempt.killed = True
            try:
                write_atomic(attempt.directory / wire.LOST_FILE, why + "\n", durable=False)
            except OSError as exc:
                log.error("cannot mark %s as lost: %s", attempt.directory, exc)
        log.warning("killing %d attempts: %s", len(attempts), why)
        self._kill_until_gone(attempts)

    def _kill_until_gone(self, attempts: list[_Attempt]) -> None:
        def targets() -> list[int]:
            table = procs.parents()
            doomed = [a.pid for a in attempts if a.pid in self.attempts]
            for attempt in attempts:
                if attempt.cgroup is not None:
                    cgroups.kill(attempt.cgroup)
            return doomed + self._strays(table) + procs.descendants(doomed, table)

        deadline = time.monotonic() + wire.KILL_DEADLINE
        if not procs.kill_until_gone(targets, self._reap, deadline):
            log.error("some processes outlived SIGKILL for %gs", wire.KILL_DEADLINE)
        for attempt in attempts:
            if attempt.cgroup is not None:
                cgroups.remove(attempt.cgroup)

    def _strays(self, table: dict[int, int]) -> list[int]:
        """Processes below the keeper that no live wrapper contains: what a killed wrapper left."""
        live = [pid for pid, a in self.attempts.items() if not a.killed]
        return procs.descendants([os.getpid()], table, skip=live)

    def _reap(self) -> None:
        """Reap ended wrappers (and strays). A wrapper killed from outside left its exit file
        unwritten and its processes to us: kill them, then write it, then answer `settle`."""
        ended = [(self.attempts.pop(pid), status)
                 for pid, status in procs.reap_children().items() if pid in self.attempts]
        abnormal = [attempt for attempt, _ in ended
                    if not attempt.killed and not (attempt.directory / "exit").exists()]
        if abnormal:
            log.warning("wrappers %s were killed; killing what they contained",
                        [a.pid for a in abnormal])
            self._kill_until_gone(abnormal)
        for attempt, status in ended:
            if attempt.report is not None:
                self._on_report(attempt)
            if attempt in abnormal:
                _note_exit(attempt, status)
            elif attempt.cgroup is not None:
                cgroups.remove(attempt.cgroup)
            for holder, request_id in attempt.settles:
                holder.send({"op": "settled", "id": request_id})

    def _containment(self, wanted: str) -> cgroups.Containment:
        if wanted not in self.containments:
            found = cgroups.detect(wanted)
            if found.base is not None:
                cgroups.sweep(found.base)
            self.containments[wanted] = found
        return self.containments[wanted]


def _note_exit(attempt: _Attempt, status: int) -> None:
    """The exit file of a wrapper that died without writing it (killed from outside)."""
    try:
        write_atomic(attempt.directory / "exit", f"{procs.exit_status(status)}\n", durable=False)
    except OSError as exc:
        log.error("cannot write the exit status of %s: %s", attempt.directory, exc)


def _log_as(log_format: str, provider: str) -> None:
    """Log to stderr (the state directory's keeper.log) in the agent's --log-format."""
    if log_format == "json":
        configure_logging(logging.INFO, "json", fields=ids(provider_id=provider, keeper_pid=os.getpid()))
        return
    logging.basicConfig(level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s keeper %(process)d: %(message)s")


def main(argv: list[str] | None = None) -> int:
    """Start the keeper of a state directory in the background; 0 once it listens, 2 if
    another keeper has the directory already, 1 if it cannot start."""
    parser = argparse.ArgumentParser(prog="python -m jobplane.agent.keeper")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                        help="as the agent's: `json` writes one object per line")
    parser.add_argument("--provider", default="", help="the agent's name, a field of every JSON line")
    parser.add_argument("state_dir", type=Path)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    state_dir = args.state_dir
    _log_as(args.log_format, args.provider)
    lock = os.open(state_dir / wire.LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 2
    try:
        listener = wire.listen(state_dir)
    except OSError as exc:
        log.error("cannot listen in %s: %s", state_dir, exc)
        return 1
    if os.fork() != 0:
        os._exit(0)  # the caller may connect now; the keeper goes on in the background
    _log_as(args.log_format, args.provider)  # with the keeper's own pid now
    procs.become_subreaper()
    procs.set_name("jobplane-keeper")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log.info("keeping %s", state_dir)
    try:
        Keeper(listener, lock).serve()
    finally:
        wire.unlisten(state_dir, listener)
    return 0


if __name__ == "__main__":
    sys.exit(main())
