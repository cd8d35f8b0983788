"""A control plane on this machine: one server and N agents as supervised child processes.

Used by `jobplane up` and `jobplane demo`. Each child runs in its own process group, so a
Ctrl-C at the terminal reaches only this process, which then stops the agents before the
server (SIGTERM, a grace period, then SIGKILL). Child output goes to DATA_DIR/logs/.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

ADDRESS_FILE = "server.addr"
_POLL_SECONDS = 0.05
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}


class LocalPlaneError(Exception):
    """The local server or an agent could not start, or stopped on its own."""


@dataclass(frozen=True)
class LocalConfig:
    """What `jobplane up` runs: where the server listens, how many agents with how many slots."""

    data_dir: Path
    listen: str = "127.0.0.1:7070"
    agents: int = 2
    slots: int = 2
    startup_timeout: float = 20.0
    stop_grace: float = 5.0


@dataclass
class Child:
    """One supervised process and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)  # its group: whatever it started goes too
        except ProcessLookupError:
            pass

    def describe_exit(self) -> str:
        code = self.process.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        return f"{self.name} {how}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


class LocalPlane:
    """Starts the server, waits until it listens, starts the agents; `stop` undoes it all."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.address: str | None = None
        self._server: Child | None = None
        self._agents: list[Child] = []

    @property
    def agent_names(self) -> list[str]:
        return [f"local-{number}" for number in range(1, self.config.agents + 1)]

    @property
    def log_dir(self) -> Path:
        return self.config.data_dir / "logs"

    def __enter__(self) -> LocalPlane:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> str:
        """Start everything; returns the server's address. Raises LocalPlaneError on failure."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        address_file = self.config.data_dir / ADDRESS_FILE
        address_file.unlink(missing_ok=True)
        self._server = self._spawn(
            "server",
            ["-m", "jobplane.server", "--listen", self.config.listen,
             "--data-dir", str(self.config.data_dir), "--address-file", str(address_file)],
        )
        self.address = self._wait_for_address(self._server, address_file)
        for name in self.agent_names:
            arguments = ["--server", self.address, "--name", name, "--slots", str(self.config.slots),
                         "--state-dir", str(self.config.data_dir / "agents" / name)]
            self._agents.append(self._spawn(f"agent {name}", ["-m", "jobplane.agent", *arguments]))
        return self.address

    def wait_for_agents(self, client, timeout: float = 20.0) -> list:
        """The ACTIVE providers, once every local agent is one: until then the server
        refuses jobs (no provider could run them). Raises LocalPlaneError past the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child := self.exited():
                raise LocalPlaneError(exit_report(child))
            active = list(client.list_providers(filter="state=ACTIVE"))
            if len(active) >= self.config.agents:
                return active
            time.sleep(0.1)
        raise LocalPlaneError(f"the agents did not become ACTIVE providers within {timeout:g}s")

    def exited(self) -> Child | None:
        """The first child that has stopped, if any."""
        return next((child for child in self._children() if child.process.poll() is not None), None)

    def wait_for_exit(self) -> Child:
        """Block until a child stops and return it (Ctrl-C raises KeyboardInterrupt meanwhile)."""
        while (child := self.exited()) is None:
            time.sleep(0.2)
        return child

    def stop(self) -> None:
        """Stop the agents, then the server; a second Ctrl-C skips the grace period."""
        self._terminate(self._agents)
        self._terminate([self._server] if self._server else [])
        for child in self._children():
            child.log_file.close()

    def _children(self) -> list[Child]:
        return ([self._server] if self._server else []) + self._agents

    def _spawn(self, name: str, arguments: list[str]) -> Child:
        log_path = self.log_dir / f"{name.split()[-1]}.log"
        log_file = log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log.info("starting %s: %s", name, " ".join(arguments))
        process = subprocess.Popen(
            [sys.executable, *arguments],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            process_group=0,
        )
        return Child(name, process, log_path, log_file)

    def _wait_for_address(self, server: Child, address_file: Path) -> str:
        """The address the server wrote once listening ("host:port\\n"; a partial line is not yet it)."""
        deadline = time.monotonic() + self.config.startup_timeout
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise LocalPlaneError(exit_report(server, "before it was listening"))
            try:
                text = address_file.read_text()
            except FileNotFoundError:
                text = ""
            if text.endswith("\n") and text.strip():
                return dialable(text.strip())
            time.sleep(_POLL_SECONDS)
        raise LocalPlaneError(
            f"the server did not report an address within {self.config.startup_timeout:g}s "
            f"(expected in {address_file}); its log is {server.log_path}"
        )

    def _terminate(self, children: list[Child]) -> None:
        running = [child for child in children if child.process.poll() is None]
        for child in running:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.stop_grace
        try:
            for child in running:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            pass
        for child in running:
            if child.process.poll() is None:
                log.warning("%s did not stop within %gs; killing it", child.name, self.config.stop_grace)
                child.signal(signal.SIGKILL)
                child.process.wait()


def dialable(address: str) -> str:
    """An address clients can dial: a wildcard listen host (0.0.0.0, [::]) becomes loopback."""
    host, _, port = address.rpartition(":")
    return f"{_WILDCARD_HOSTS.get(host, host)}:{port}"


def exit_report(child: Child, when: str = "unexpectedly") -> str:
    """What to tell the user when a child stopped on its own: who, how, and its last log lines."""
    tail = child.log_tail()
    shown = f"\n--- last lines of {child.log_path} ---\n{tail}" if tail else f" (log: {child.log_path})"
    return f"{child.describe_exit()} {when}{shown}"


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt, so both signals take the same way out."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
