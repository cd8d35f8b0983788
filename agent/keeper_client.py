"""The agent's end of its keeper (keeper.py): the lease it holds, and the attempts it starts.

`await keeper.open()` connects to the keeper of the state directory, starting one if none
runs, and holds the lease from then on: it is renewed from the event loop every
RENEW_INTERVAL, so an agent whose loop stops (frozen) stops renewing as it stops heartbeating.
If the keeper goes away, the next start opens a new one.

The keeper tells the agent when each attempt it started has ended (`ended`: its exit status,
whether it was killed as lost, its output's size), so no request and no file read is needed
per attempt; `start` returns a future of that news. A keeper of before (its welcome does not
say `ends`) is asked instead (`settle`), and the attempt's files say the rest.

The agent's own environment goes to the keeper once, in its hello (`env`); each start then
carries only how the command's environment differs from it (`env_set`, `env_unset`), unless
the keeper's welcome does not say `env` (a keeper of before: the whole environment each time).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import keeper_wire as wire
from .errors import KeeperUnavailable

log = logging.getLogger(__name__)

# How long opening may take: starting a keeper, or waiting for one that is exiting to end.
_OPEN_SECONDS = 20.0
_RETRY_PAUSE = 0.05
_LINE_LIMIT = 1 << 20
_READ_BYTES = 1 << 16
# Requests wait for the keeper to read what was written before once this much is unread
# (a keeper that stopped reading does not make the agent buffer without end).
_WRITE_BUFFER = 1 << 16
# In a `started` reply as `start` gets it: the future of the attempt's `ended` news.
_ENDED = "_ended"


class Keeper:
    """A connection to the keeper of one state directory, holding the agent's lease."""

    def __init__(self, state_dir: str | Path, *, containment: str = "auto",
                 heartbeat: float = 1.0, log_format: str = "text", provider: str = "",
                 env: Mapping[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir)
        # How a keeper this agent starts logs (the agent's --log-format, and its name as a field).
        self.log_options = ["--log-format", log_format, *(["--provider", provider] if provider else [])]
        self.wanted = containment
        self.heartbeat = heartbeat
        # The environment commands' environments are sent as differences from (its hello's).
        self.base_env = dict(os.environ if env is None else env)
        self._base_told = False  # the keeper took it (its welcome says `env`)
        # What the keeper said: its pid, the containment in force and why, its kill deadline.
        self.pid = 0
        self.guard = 0  # the keeper's parent: it ends the attempts if the keeper dies
        self.containment = ""
        self.why = ""
        self.kill_deadline = wire.KILL_DEADLINE
        # The reconnect grace in force at the keeper when we connected.
        self.grace = wire.DEFAULT_GRACE
        self._grace: float | None = None
        self._workers: set[int] = set()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict]] = {}
        # The keeper pushes `ended` (its welcome says `ends`): each started attempt's news.
        self.ends = False
        # The keeper makes each attempt's directory as it starts it (its welcome says `dirs`).
        self.makes_dirs = False
        self.takes_spares = False
        # The keeper adopts attempts paused until told they run on (its welcome says `paused_adopt`).
        self.adopts_paused = False
        self._ends: dict[int, asyncio.Future[dict | None]] = {}
        self._writer: asyncio.StreamWriter | None = None
        # Messages of this turn of the event loop, written together at its end (one write and one
        # keeper wake-up for all the starts an assignment batch makes).
        self._outgoing: list[bytes] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._opening: asyncio.Lock | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def open(self, *, spawn: bool = True) -> bool:
        """Connect (starting a keeper if none runs and `spawn`) and hold the lease. False if no
        keeper runs and `spawn` is off; raises KeeperUnavailable if one cannot be started."""
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.connected:
                return True
            self._closed = False
            deadline, pause = time.monotonic() + _OPEN_SECONDS, 0.0
            while True:
                try:
                    await self._connect()
                    return True
                except (OSError, EOFError) as exc:
                    if not spawn:
                        return False
                    if time.monotonic() > deadline:
                        raise KeeperUnavailable(self._trouble(f"cannot reach it: {exc}")) from None
                await asyncio.sleep(pause)  # none the first time; then a little longer each time
                pause = min(pause + _RETRY_PAUSE, 10 * _RETRY_PAUSE)
                await self._spawn()

    def set_grace(self, seconds: float) -> None:
        """The server's reconnect grace: how long attempts wait for a new agent process."""
        self._grace = seconds
        self._send({"op": "grace", "seconds": seconds})

    def add_worker(self, pid: int) -> None:
        """A Python worker of the agent's: the keeper kills it if the agent is gone or frozen."""
        self._workers = {p for p in self._workers if os.path.exists(f"/proc/{p}")}
        self._workers.add(pid)
        self._send({"op": "worker", "pid": pid})

    async def adopt(self, dirs: Iterable[str | Path], *, only: bool = False, paused: bool = False) -> set[str]:
        """Take over attempts an earlier agent process started; the directories adopted. With
        `only`, attempts of earlier processes not named are killed now (this is the only agent
        of the state directory, and it does not claim them). With `paused` (a keeper whose
        welcome said `paused_adopt`), they stay paused until `run_on` or a stop."""
        reply = await self._request({"op": "adopt", "dirs": [str(d) for d in dirs], "only": only, "paused": paused})
        return set(reply.get("dirs", ()))

    def run_on(self, dirs: Iterable[str | Path]) -> None:
        """Attempts adopted paused continue."""
        self._send({"op": "run_on", "dirs": [str(d) for d in dirs]})

    async def start(self, request: dict[str, Any]
                    ) -> tuple[int, int | None, asyncio.Future[dict | None] | None]:
        """Start a command attempt (the keeper spawns it; `env` is the command's whole
        environment). The command's pid, which names the attempt from then on, its start time
        (procs.start_time), and a future of its end: the keeper's `ended` message (`status`,
        `lost`, `output`, `segment`), or None if the keeper went away first; no future if this
        keeper does not say (ask `settle`, read the files). Raises OSError if the command cannot
        start, KeeperUnavailable if the keeper cannot be reached."""
        if not self.connected:
            await self.open()
        if "env" in request:
            env = request.pop("env")
            request.update(self._env_difference(env) if self._base_told else {"env": dict(env)})
        reply = await self._request({"op": "start", **request})
        if reply["op"] == "refused":
            error = OSError(reply.get("errno") or 0, reply.get("error", "refused"))
            if reply.get("stage") == "cwd":
                error.filename = request.get("cwd")
            raise error
        return int(reply["pid"]), reply.get("start"), reply.get(_ENDED)

    def _env_difference(self, env: Mapping[str, str]) -> dict[str, Any]:
        """How `env` differs from the base environment the keeper holds."""
        base = self.base_env
        missing = object()
        difference: dict[str, Any] = {"env_set": {k: v for k, v in env.items() if base.get(k, missing) != v}}
        if len(env) - len(difference["env_set"]) != len(base):  # some of the base is not in env
            difference["env_unset"] = [k for k in base if k not in env]
        return difference

    def signal(self, pid: int, *, kill: bool) -> None:
        """SIGTERM every process of attempt `pid` (with `kill`, SIGKILL them all)."""
        self._send({"op": "signal", "pid": pid, "kill": kill})

    async def suspend(self, pid: int, *, resume: bool = False) -> bool:
        """Pause what attempt `pid` runs (or, with `resume`, continue it); False if the keeper
        has no such attempt (it ended). Raises KeeperUnavailable."""
        reply = await self._request({"op": "suspend", "pid": pid, "resume": resume})
        return bool(reply.get("found"))

    async def settle(self, pid: int, guard: int) -> None:
        """Wait until attempt `pid` has ended (its exit file written); if its keeper is gone,
        until the keeper's `guard` has ended what it left (bounded)."""
        try:
            await self._request({"op": "settle", "pid": pid})
        except KeeperUnavailable:
            await self._gone(guard)

    async def _gone(self, guard: int) -> None:
        if not guard:
            return
        try:
            pidfd = os.pidfd_open(guard)
        except ProcessLookupError:
            return
        if _name(guard) != wire.GUARD_NAME:  # it ended long ago, and its pid is another's now
            os.close(pidfd)
            return
        loop = asyncio.get_running_loop()
        gone = loop.create_future()
        loop.add_reader(pidfd, lambda: gone.done() or gone.set_result(None))
        try:
            await asyncio.wait_for(gone, _OPEN_SECONDS)
        except asyncio.TimeoutError:
            log.error("the guard of the keeper of %s did not end in %gs", self.state_dir,
                      _OPEN_SECONDS)
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)

    async def close(self) -> None:
        """Let go of the lease: say bye, so that whatever is left goes at once, not after the
        grace, and the keeper exits when it has nothing left."""
        self._closed = True
        self._send({"op": "bye"})
        self._flush()
        await self._disconnect()

    # Inside.

    async def _connect(self) -> None:
        with wire.address(self.state_dir) as path:
            reader, writer = await asyncio.open_unix_connection(path, limit=_LINE_LIMIT)
        self._writer = writer
        hello = {"op": "hello", "heartbeat": self.heartbeat, "containment": self.wanted,
                 "pid": os.getpid(), "env": self.base_env}
        writer.write(wire.encode(hello))
        line = await reader.readline()
        if not line:
            await self._disconnect()
            raise EOFError("the keeper closed the connection (it is exiting)")
        welcome = wire.decode(line)
        self.pid = int(welcome.get("keeper_pid", 0))
        self.guard = int(welcome.get("guard_pid", 0))
        self.containment, self.why = welcome["containment"], welcome["why"]
        self.kill_deadline = float(welcome.get("kill_deadline", wire.KILL_DEADLINE))
        self.grace = float(welcome.get("grace", wire.DEFAULT_GRACE))
        self.ends = bool(welcome.get("ends"))
        self.makes_dirs = bool(welcome.get("dirs"))
        # It renames a start's `spare` (an emptied attempt directory) into place.
        self.takes_spares = bool(welcome.get("spares"))
        self.adopts_paused = bool(welcome.get("paused_adopt"))
        self._base_told = bool(welcome.get("env"))
        if self.wanted not in ("auto", self.containment):
            await self._disconnect()
            raise KeeperUnavailable(f"containment {self.wanted} is not available here: "
                                    f"{self.why}; run the agent with --containment auto")
        if self._grace is not None:
            self._send({"op": "grace", "seconds": self._grace})
        for pid in self._workers:
            self._send({"op": "worker", "pid": pid})
        self._tasks = [asyncio.create_task(self._read(reader, writer)), asyncio.create_task(self._renew())]

    async def _spawn(self) -> None:
        """Start a keeper for the state directory (off the event loop: it takes a Python start)."""
        code = await asyncio.to_thread(_start_keeper, self.state_dir, self.log_options)
        if code == 1:
            raise KeeperUnavailable(self._trouble("it could not start"))
        # 2: another keeper has the directory (it is exiting, or about to listen): try again.

    async def _read(self, reader: asyncio.StreamReader, mine: asyncio.StreamWriter) -> None:
        lapsed = False
        rest = b""  # the start of a line whose end has not come yet
        try:
            # What has come, whole lines taken at once: one await per read, not per line (each
            # attempt has a `started` and an `ended` line, and a read mostly holds several).
            while chunk := await reader.read(_READ_BYTES):
                *lines, rest = (rest + chunk).split(b"\n")
                if len(rest) > _LINE_LIMIT:
                    raise ValueError(f"a line from the keeper is over {_LINE_LIMIT} bytes")
                for line in lines:
                    lapsed = self._take(wire.decode(line)) or lapsed
        except (OSError, ValueError) as exc:
            log.error("the link to the keeper broke: %s", exc)
        if lapsed:
            log.error("the keeper killed this agent's attempts: it did not renew its lease in "
                      "time (was it stopped or stalled?)")
        elif not self._closed:
            log.error("the keeper of %s went away; its attempts were killed with it",
                      self.state_dir)
        if self._writer is not mine:  # a later connection's: not ours to close, clear or fail
            mine.close()
            return
        writer, self._writer = self._writer, None
        self._outgoing.clear()  # (never written to a connection made later)
        if writer is not None:
            writer.close()
        self._fail_pending()

    def _take(self, message: dict) -> bool:
        """Act on a message from the keeper; True if it says the lease lapsed."""
        op = message.get("op")
        if op == "ended":
            if (end := self._ends.pop(message.get("pid", 0), None)) and not end.done():
                end.set_result(message)
            return False
        if op == "started" and self.ends:  # before anything can say it ended
            end = self._ends[int(message["pid"])] = asyncio.get_running_loop().create_future()
            message[_ENDED] = end  # for `start` to return, however soon it ends
        if (future := self._pending.pop(message.get("id", 0), None)) and not future.done():
            future.set_result(message)
        return op == "lapsed"

    async def _renew(self) -> None:
        while self.connected:
            self._send({"op": "renew"})
            await asyncio.sleep(wire.RENEW_INTERVAL)

    async def _request(self, message: dict) -> dict:
        if not self.connected:
            raise KeeperUnavailable(self._trouble("the connection to it is closed"))
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._send({**message, "id": request_id})
        writer = self._writer
        if writer is not None and writer.transport.get_write_buffer_size() > _WRITE_BUFFER:
            self._flush()
            await writer.drain()
        return await future

    def _send(self, message: dict) -> None:
        """Queue a message, written with the others of this turn of the event loop."""
        if not self.connected:
            return
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(wire.encode(message))

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if outgoing and self.connected:
            self._writer.write(b"".join(outgoing))  # type: ignore[union-attr]

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(KeeperUnavailable(self._trouble("it went away")))
        ends, self._ends = self._ends, {}
        for end in ends.values():
            if not end.done():
                end.set_result(None)

    async def _disconnect(self) -> None:
        self._outgoing.clear()  # (what close says was flushed)
        writer, self._writer = self._writer, None
        tasks, self._tasks = self._tasks, []
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_pending()

    def _trouble(self, what: str) -> str:
        return (f"the agent's keeper for {self.state_dir}: {what}; see "
                f"{self.state_dir / wire.LOG_FILE}")


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_keeper(state_dir: Path, options: list[str]) -> int:
    """Run `python -m jobplane.agent.keeper`, which forks the keeper into the background and
    exits: 0 once it listens, 2 if another keeper has the directory, 1 if it failed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / wire.LOG_FILE, "ab") as log_file:
        try:
            return subprocess.run(
                [sys.executable, "-m", "jobplane.agent.keeper", *options, str(state_dir)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True, close_fds=True, check=False,
                timeout=_OPEN_SECONDS).returncode
        except subprocess.TimeoutExpired:
            return 1
