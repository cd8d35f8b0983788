"""The agent's keeper: it starts command attempts and holds them to the agent's lease.

One keeper per state directory, started by the agent (`python -m jobplane.agent.keeper
[--log-format json] [--provider NAME] DIR`) when none runs there; it outlives the agent. It logs
to DIR/keeper.log, in the agent's --log-format. Stdlib only and single-threaded: it spawns each
command itself (keeper_attempts.py: posix_spawn, no fork of Python), pumps their output into
the log store and writes their exit files from its one loop. Its parent is its guard
(keeper_guard.py), the subreaper of everything below: what outlives its parent (a double
fork) is reparented to the guard, where the keeper finds it (by cgroup, else by session,
group or the attempt's marker in its environment), and if the keeper dies (kill -9), the guard
kills every attempt and writes their exit files.

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
import collections
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

from . import cgroups, keeper_attempts, keeper_guard, keeper_pauses as pauses, keeper_wire as wire, procs
from .keeper_attempts import MARKER, Attempt, Launch, Request, StartFailed
from .keeper_cgroups import Pool
from .keeper_holders import Holder, holder_for

log = logging.getLogger("jobplane.agent.keeper")

# Once an attempt's processes are killed, how long its output pipes may stay open (a process
# in uninterruptible sleep, or one that passed them on) before it ends anyway.
_DRAIN_SECONDS = 10.0
# How long a new attempt runs before the keeper watches its output pipes (until then they fill
# the pipes' buffers, and are read as it ends): most commands end sooner, and are never watched.
_WATCH_AFTER = 0.02


class Keeper:
    """The keeper's state and its single-threaded loop."""

    def __init__(self, listener: socket.socket, lock: int) -> None:
        self.listener = listener
        self.lock = lock
        self.selector = selectors.DefaultSelector()
        self.holders: list[Holder] = []
        self.attempts: dict[int, Attempt] = {}  # by their command's pid
        self.markers: dict[str, Attempt] = {}
        self.grace = wire.DEFAULT_GRACE
        self.containments: dict[str, cgroups.Containment] = {}
        self.cgroups = Pool()
        # Attempts whose output pipes are not watched yet, oldest first (_WATCH_AFTER).
        self._unwatched: collections.deque[tuple[float, Attempt]] = collections.deque()
        self.started = time.monotonic()
        self.ever_held = False
        self.serial = 0
        self.guard = os.getppid()
        self.table = procs.Table(self.guard)
        self.selector.register(listener, selectors.EVENT_READ, self._accept)

    def serve(self) -> None:
        while not self._finished():
            timeout = max(0.0, self._next_deadline() - time.monotonic())
            if self._unwatched:
                timeout = min(timeout, max(0.0, self._unwatched[0][0] + _WATCH_AFTER - time.monotonic()))
            for key, events in self.selector.select(timeout):
                key.data(key.fileobj, events)
            self._expire()
            if self._unwatched:
                self._watch(time.monotonic() - _WATCH_AFTER)
            # What this round said, in one write to each holder.
            for holder in self.holders:
                holder.flush()
        self.cgroups.close([found.base for found in self.containments.values()])
        log.info("nothing left to keep; exiting")

    def _finished(self) -> bool:
        if self.holders or self.attempts:
            return False
        return self.ever_held or time.monotonic() - self.started > wire.STARTUP_WAIT

    def _next_deadline(self) -> float:
        deadlines = [] if self.ever_held else [self.started + wire.STARTUP_WAIT]
        deadlines += [h.expires(self.grace) for h in self.holders]
        for attempt in self.attempts.values():
            deadlines += [t for t in (attempt.orphaned_until, attempt.drain_until) if t]
        return min(deadlines, default=time.monotonic() + wire.STARTUP_WAIT)

    # Connections.

    def _accept(self, listener: socket.socket, _: int) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        holder = holder_for(conn, self._on_messages, self._on_gone)
        if holder is None:
            return
        self.holders.append(holder)
        holder.register(self.selector)

    def _on_message(self, holder: Holder, message: dict) -> None:
        op = message.get("op")
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            log.warning("ignoring an unknown request %r from pid %s", op, holder.pid)
            return
        try:
            handler(holder, message)
        except (KeyError, TypeError, ValueError) as exc:  # a bad request must not end the keeper
            self._malformed(holder, message, exc)

    def _on_messages(self, holder: Holder, messages: list[dict]) -> None:
        """Requests read at once, handled in order; a run of starts together (_start)."""
        starts: list[dict] = []
        for message in messages:
            if message.get("op") == "start":
                starts.append(message)
                continue
            if starts:
                self._start(holder, starts)
                starts = []
            self._on_message(holder, message)
            if holder.sock.fileno() < 0:
                return  # the message ended the connection
        if starts:
            self._start(holder, starts)

    def _malformed(self, holder: Holder, message: dict, exc: Exception) -> None:
        op = message.get("op")
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
                     "guard_pid": self.guard, "grace": self.grace, "ends": True, "dirs": True,
                     "env": True, "spares": True, "paused_adopt": True})
        log.info("agent process %s holds the lease (heartbeat %gs, containment %s)",
                 holder.pid, holder.heartbeat, found.describe())

    def _op_renew(self, holder: Holder, message: dict) -> None:
        pass  # any message renews (Holder.receive)

    def _op_grace(self, holder: Holder, message: dict) -> None:
        self.grace = max(0.0, float(message.get("seconds", self.grace)))

    def _op_worker(self, holder: Holder, message: dict) -> None:
        holder.add_worker(int(message["pid"]))

    def _op_settle(self, holder: Holder, message: dict) -> None:
        """Answer once the attempt has ended (an agent whose keeper's welcome did not say
        `ends`, which pushes `ended` to the attempt's holder instead)."""
        attempt = self.attempts.get(int(message["pid"]))
        if attempt is None:
            holder.send({"op": "settled", "id": message["id"]})
        else:
            attempt.settles.append((holder, message["id"]))

    def _op_adopt(self, holder: Holder, message: dict) -> None:
        """A new agent process takes over attempts whose holder is gone; with `only`, it is
        the only agent of this directory, so orphans it does not name are killed now. With
        `paused`, they stay paused until the agent says they run on (`run_on`: the server kept
        them with it) or stops them: a server that gave them up meanwhile runs them elsewhere."""
        wanted = {os.path.realpath(d) for d in message.get("dirs", ())}
        adopted, unclaimed = [], []
        for attempt in self.attempts.values():
            if attempt.holder is not None or attempt.killed:
                continue
            if os.path.realpath(attempt.directory) in wanted:
                attempt.holder, attempt.orphaned_until = holder, None
                if not message.get("paused"):
                    pauses.thaw(attempt)
                adopted.append(str(attempt.directory))
            elif message.get("only"):
                unclaimed.append(attempt)
        if unclaimed:
            self._kill(unclaimed, "the agent started again without it")
        holder.send({"op": "adopted", "id": message["id"], "dirs": adopted})

    def _op_run_on(self, holder: Holder, message: dict) -> None:
        """Attempts this holder adopted paused continue (the server kept them with it)."""
        wanted = {os.path.realpath(d) for d in message.get("dirs", ())}
        for attempt in self.attempts.values():
            if attempt.holder is holder and os.path.realpath(attempt.directory) in wanted:
                pauses.thaw(attempt)

    def _op_signal(self, holder: Holder, message: dict) -> None:
        """SIGTERM every process of an attempt (a timeout or a cancel), or with `kill`, SIGKILL
        them all (the kill grace is over); what the command leaves is killed as it ends. One
        adopted paused and not let run on is SIGKILLed, never thawed: nothing says the server
        still holds it (it stops those it gave up, which may already run elsewhere), and a
        command that carries on after SIGTERM (finishing its work first) would do again, beside
        the attempt that continues it, what the pause kept it from."""
        attempt = self.attempts.get(int(message["pid"]))
        if attempt is None or attempt.status is not None:
            return
        paused = attempt.stopped is not None  # (held by an agent: adopted paused, no run_on yet)
        if message.get("kill") or paused:
            if paused and not message.get("kill"):
                log.info("killing the attempt in %s: stopped while still paused since its adoption",
                         attempt.directory)
            if attempt.cgroup is not None:
                self.cgroups.kill(attempt.cgroup)
            procs.send(self._members(attempt), signal.SIGKILL)
        else:
            procs.send(self._members(attempt), signal.SIGTERM)

    def _op_suspend(self, holder: Holder, message: dict) -> None:
        """Pause (or, with `resume`, continue) what an attempt runs: its cgroup frozen, or every
        process of it stopped. Answers whether the attempt was found."""
        attempt = self.attempts.get(int(message["pid"]))
        found = attempt is not None and not attempt.killed and attempt.status is None
        log.info("%s request for the attempt of pid %s from agent process %s%s",
                 "resume" if message.get("resume") else "suspend", message["pid"], holder.pid,
                 "" if found else ": no such attempt running")
        if found:
            if message.get("resume"):
                pauses.resume(attempt)
            else:
                pauses.suspend(attempt, self._members)
        holder.send({"op": "suspended", "id": message["id"], "found": found})

    def _op_bye(self, holder: Holder, message: dict) -> None:
        holder.leaving = True

    def _op_start(self, holder: Holder, message: dict) -> None:
        self._start(holder, [message])

    def _start(self, holder: Holder, messages: list[dict]) -> None:
        """Start requests read at once, phase by phase: all readied (cgroup, directory, pipes),
        then all spawned, then all answered `started` or `refused`, in order. (Measured against
        request by request: 5% more `/bin/true` tasks a second with 2 agents x 8 slots.)"""
        found = self._containment(holder.containment)
        launches: list[tuple[dict, Request, Launch]] = []
        for message in messages:
            try:
                request_id = message["id"]
                request = Request.of(message, holder.env)
                launches.append((message, request, self._launch(request, found)))
            except StartFailed as exc:
                holder.send({"op": "refused", "id": request_id, **exc.args[0]})
            except (KeyError, TypeError, ValueError) as exc:
                self._malformed(holder, message, exc)
        spawned = [keeper_attempts.start(launch) for _, _, launch in launches]
        for (message, request, launch), result in zip(launches, spawned):
            try:
                self._started(holder, message, self._attempt(request, found, launch, result))
            except StartFailed as exc:
                holder.send({"op": "refused", "id": message["id"], **exc.args[0]})

    def _started(self, holder: Holder, message: dict, attempt: Attempt) -> None:
        attempt.holder = holder
        self.attempts[attempt.pid] = attempt
        if attempt.marker is not None:
            self.markers[attempt.marker] = attempt
        self.selector.register(attempt.pidfd, selectors.EVENT_READ,
                               lambda fd, _: self._on_exit(attempt))
        self._unwatched.append((time.monotonic(), attempt))
        try:
            attempt.note_pid()
        except OSError as exc:
            log.error("cannot write the pid of %s: %s", attempt.directory, exc)
            self._kill([attempt], f"its pid could not be written: {exc}")
        holder.send_line(wire.started(message["id"], attempt.pid, attempt.start))

    def _launch(self, request: Request, found: cgroups.Containment, *, again: bool = False) -> Launch:
        """Ready the command's start, in a cgroup of its own where there are cgroups (a new one
        if `again`). Raises StartFailed."""
        self.serial += 1
        cgroup, joiner = None, None
        if found.base is not None:
            try:
                cgroup = self.cgroups.take(found, lambda: f"{self.serial}-{os.path.basename(request.directory)}",
                                           new=again)
                joiner = self.cgroups.joiner(cgroup)
            except OSError as exc:
                raise StartFailed({"errno": exc.errno or 0, "stage": "cgroup",
                                   "error": f"cannot create the attempt's cgroup: {exc.strerror}"}) from None
        marker = None if cgroup is not None else f"{os.getpid()}.{self.serial}"
        try:
            return Launch(request, cgroup, marker, joiner)
        except Exception:  # StartFailed, or a malformed request's ValueError (a NUL in `dir`)
            if cgroup is not None:
                self.cgroups.give_back(cgroup)
            raise

    def _attempt(self, request: Request, found: cgroups.Containment, launch: Launch,
                 spawned: Attempt | StartFailed, *, again: bool = False) -> Attempt:
        """The attempt `launch` spawned, or (raised) why it did not start. A command that could
        not join the cgroup it took (removed from outside while it was spare?) starts again: the
        cgroup is let go, and the start `again` takes a new one, not a spare (a sweep of empty
        cgroups removes them all), and is refused if it cannot join that either."""
        if isinstance(spawned, Attempt):
            return spawned
        joined = spawned.args[0].get("stage") != "cgroup"
        if launch.cgroup is not None:  # one the command could not join is not reused
            self.cgroups.give_back(launch.cgroup, reuse=joined)
        if joined or launch.cgroup is None or again:
            raise spawned
        launch = self._launch(request, found, again=True)
        return self._attempt(request, found, launch, keeper_attempts.start(launch), again=True)

    # An attempt's output.

    def _watch(self, started_before: float) -> None:
        """Watch the output pipes of the attempts that started before this (monotonic) and run on."""
        while self._unwatched and self._unwatched[0][0] <= started_before:
            self._watch_pipes(self._unwatched.popleft()[1])

    def _watch_pipes(self, attempt: Attempt) -> None:
        if attempt.watched or not attempt.pipes:  # (no pipes: it has ended)
            return
        attempt.watched = True
        for fd in attempt.pipes:
            self.selector.register(fd, selectors.EVENT_READ,
                                   lambda fd, _: self._on_output(attempt, fd))

    def _drain(self, attempt: Attempt) -> bool:
        """Read what the output pipes of an attempt whose processes are all gone hold, to their
        end; whether every one ended (else what still holds one open is waited for, watched)."""
        for fd in list(attempt.pipes):
            if attempt.drain(fd):
                if attempt.watched:
                    self.selector.unregister(fd)
                attempt.close_pipe(fd)
        if attempt.pipes:
            self._watch_pipes(attempt)
        return not attempt.pipes

    # An attempt's end.

    def _on_output(self, attempt: Attempt, fd: int) -> None:
        if fd not in attempt.pipes:  # drained to its end and closed earlier in this round
            return
        if attempt.pump(fd):
            self.selector.unregister(fd)
            attempt.close_pipe(fd)
            if attempt.status is not None and not attempt.pipes:
                self._end(attempt)

    def _on_exit(self, attempt: Attempt) -> None:
        """The command has exited: kill what it left, then end once its output is drained."""
        status = procs.wait_status(attempt.pidfd, reap=False)
        if status is None:
            return
        self.selector.unregister(attempt.pidfd)
        attempt.status = status
        if attempt.cgroup is not None and not self.cgroups.populated(attempt.cgroup):
            attempt.emptied = True  # (most commands leave nothing: one read, and no kill round)
        else:
            self._kill_rest([attempt])
        if self._drain(attempt):
            self._end(attempt)
        else:  # held by what was just killed: closed as soon as it is gone
            attempt.drain_until = time.monotonic() + _DRAIN_SECONDS

    def _end(self, attempt: Attempt) -> None:
        """Complete its output, write its exit status, reap it, and tell its holder (`ended`:
        the status, and how much output each stream has) and whoever waits in `settle`."""
        if attempt.watched:
            for fd in attempt.pipes:
                self.selector.unregister(fd)
        try:
            attempt.finish()
        except OSError as exc:
            log.error("cannot write the exit status of %s: %s", attempt.directory, exc)
        if attempt.cgroup is not None:
            # Reused unless it may still be frozen (killed while its agent was away).
            self.cgroups.give_back(attempt.cgroup, reuse=attempt.stopped is None, empty=attempt.emptied)
        del self.attempts[attempt.pid]
        self.markers.pop(attempt.marker or "", None)
        if attempt.holder is not None:
            attempt.holder.send_line(wire.ended(attempt.pid, attempt.summary()))
        for holder, request_id in attempt.settles:
            holder.send({"op": "settled", "id": request_id})

    def _kill_rest(self, attempts: list[Attempt]) -> None:
        """SIGKILL every process of these attempts until none is left (within KILL_DEADLINE)."""
        def targets() -> list[int]:
            found: list[int] = []
            for attempt in attempts:
                if attempt.cgroup is None:
                    found += self._members(attempt)
                elif self.cgroups.populated(attempt.cgroup):  # (mostly not: one read, and done)
                    self.cgroups.kill(attempt.cgroup)
                    found += cgroups.members(attempt.cgroup)
            return found

        deadline = time.monotonic() + wire.KILL_DEADLINE
        if procs.kill_until_gone(targets, lambda: None, deadline):
            for attempt in attempts:
                attempt.emptied = True
        else:
            log.error("some processes outlived SIGKILL for %gs", wire.KILL_DEADLINE)

    def _members(self, attempt: Attempt) -> list[int]:
        """Every living process of the attempt: its cgroup's; else its command (until it exits),
        and what the guard inherited from it (the orphans it left), with their descendants."""
        if attempt.cgroup is not None:
            return cgroups.members(attempt.cgroup) if self.cgroups.populated(attempt.cgroup) else []
        rows = self.table.read()
        roots = [attempt.pid] if attempt.pid in rows else []
        roots += [pid for pid, row in rows.items()
                  if row.ppid == self.guard and pid != os.getpid() and self._owns(attempt, pid, row)]
        return roots + procs.descendants(roots, {pid: row.ppid for pid, row in rows.items()})

    def _owns(self, attempt: Attempt, pid: int, row: procs.Row) -> bool:
        """Whether an orphan (a process the guard inherited) is the attempt's: by its session or
        group, which an attempt's command leads; else by the attempt's marker in its
        environment; else (it left both and cleared its environment) it goes with any attempt
        that started before it."""
        for leader in (row.sid, row.pgid):
            if leader in self.attempts:
                return self.attempts[leader] is attempt
        marker = procs.environ_value(pid, MARKER)
        if marker is not None and marker.startswith(f"{os.getpid()}."):
            return self.markers.get(marker) is attempt
        return row.start >= attempt.start

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
            pauses.freeze(mine, self._members)
        if frozen:
            log.warning("agent process %s did not renew its lease for %.1fs (frozen?): killing "
                        "its %d attempts and its python workers", holder.pid,
                        now - holder.renewed, len(mine))
        elif mine and not holder.leaving:
            log.info("agent process %s is gone; its %d attempts wait %gs for a new one",
                     holder.pid, len(mine), self.grace)

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
        for attempt in [a for a in self.attempts.values() if a.drain_until and a.drain_until <= now]:
            log.warning("the output of %s is still held open after its processes were killed; "
                        "ending it anyway", attempt.directory)
            self._end(attempt)

    def _kill(self, attempts: list[Attempt], why: str) -> None:
        """Kill these attempts' processes and cgroups; mark them lost. Each then ends as any
        attempt does (its exit file written once its command is reaped)."""
        for attempt in attempts:
            attempt.killed = why
            try:
                write_atomic(Path(attempt.directory, wire.LOST_FILE), why + "\n", durable=False)
            except OSError as exc:
                log.error("cannot mark %s as lost: %s", attempt.directory, exc)
        log.warning("killing %d attempts: %s", len(attempts), why)
        self._kill_rest(attempts)

    def _containment(self, wanted: str) -> cgroups.Containment:
        if wanted not in self.containments:
            found = cgroups.detect(wanted)
            if found.base is not None:
                cgroups.sweep(found.base)
            self.containments[wanted] = found
        return self.containments[wanted]


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
    # This process becomes the guard (the subreaper of everything below), its child the keeper.
    procs.become_subreaper()
    keeper = os.fork()
    if keeper != 0:
        os.close(lock)  # a new keeper may start as soon as this one is gone
        listener.close()
        keeper_guard.run(state_dir.absolute(), keeper)  # never returns
    _log_as(args.log_format, args.provider)  # with the keeper's own pid now
    procs.set_name("jobplane-keeper")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log.info("keeping %s (spawning commands with %s)", state_dir, keeper_attempts.spawner())
    keeper_attempts.more_files()
    try:
        Keeper(listener, lock).serve()
    finally:
        wire.unlisten(state_dir, listener)
    return 0

if __name__ == "__main__":
    sys.exit(main())
