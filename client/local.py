"""A control plane on this machine: one server and N agents as supervised child processes.

Used by `jobplane up` and `jobplane demo`. Each child runs in its own process group, so a
Ctrl-C at the terminal reaches only this process, which then stops the agents before the
server (SIGTERM, a grace period, then SIGKILL): a stopping agent hands its running tasks on
through the server, which queues them again. Child output goes to DATA_DIR/logs/. `up` starts
again an agent that is killed (LocalPlane.restartable), so that it takes back its attempts.

Secure by default: the server makes its CA, certificate and bootstrap admin token in DATA_DIR;
this process uses the admin token to create one join token for the local agents
(DATA_DIR/agents/join.token), which they enroll with. `insecure` runs everything in plaintext.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from jobplane.client.credentials import ADMIN_TOKEN_FILE, CA_BUNDLE_FILE
from jobplane.client.errors import JobplaneError
from jobplane.client.sync import Client

log = logging.getLogger(__name__)

ADDRESS_FILE = "server.addr"
HTTP_ADDRESS_FILE = "http.addr"  # the server writes where its console listens (--http) here
JOIN_TOKEN_FILE = "join.token"
AGENT_NAME_PREFIX = "local-"
JOIN_TOKEN_TTL = 600.0  # long enough for the agents to start, short enough not to linger
INSECURE_WARNING = (
    "WARNING: --insecure: the server speaks plaintext and asks for no credentials; anyone who can reach {address} "
    "acts as admin. Use it only for debugging, on a machine you trust."
)
_POLL_SECONDS = 0.05
# An agent killed by a signal is started again (`jobplane up` keeps its N agents), unless it
# died this soon after it started: then something is wrong that a restart does not cure.
RESTART_AFTER_SECONDS = 10.0
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
    # How long a stopping agent may take before it is killed: it hands its running tasks on
    # through the server (each stopped with SIGTERM, then SIGKILL after the agent's 3 s kill
    # grace) and waits for the server to acknowledge; it gives up by itself after about 14 s
    # at worst (shutdown.HAND_ON_MARGIN and the shutdown flush). The server is stopped only after.
    stop_grace: float = 15.0
    insecure: bool = False  # plaintext and no authentication, for debugging
    http: str = ""  # HOST:PORT of the web console and /metrics; empty: none
    http_tls: tuple[Path, Path] | None = None  # (certificate, key): the console over HTTPS
    agent_args: tuple[str, ...] = ()  # more flags for every agent (its capacity: --cpus, --resource, ...)


@dataclass
class Child:
    """One supervised process and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    arguments: list[str] = field(default_factory=list)  # what it was started with, to start it again
    started: float = field(default_factory=time.monotonic)

    def uptime(self) -> float:
        return time.monotonic() - self.started

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
        self.console_url = ""  # http://HOST:PORT of the console, when there is one
        self._server: Child | None = None
        self._agents: list[Child] = []
        self._names: list[str] = []

    @property
    def server(self) -> Child | None:
        return self._server

    @property
    def agent_names(self) -> list[str]:
        """local-1 … local-N, but for the names the server revoked (known once started)."""
        return self._names or [f"{AGENT_NAME_PREFIX}{number}" for number in range(1, self.config.agents + 1)]

    @property
    def log_dir(self) -> Path:
        return self.config.data_dir / "logs"

    @property
    def ca_bundle(self) -> Path:
        """The CA bundle the server writes for clients and agents to trust."""
        return self.config.data_dir / CA_BUNDLE_FILE

    @property
    def admin_token_file(self) -> Path:
        """The server's bootstrap admin token (mode 0600), which this process and local CLIs use."""
        return self.config.data_dir / ADMIN_TOKEN_FILE

    @property
    def join_token_file(self) -> Path:
        return self.config.data_dir / "agents" / JOIN_TOKEN_FILE

    def connect(self) -> Client:
        """A client of the local server with its admin credentials (or in plaintext if insecure)."""
        if self.address is None:
            raise LocalPlaneError("the server has not been started")
        if self.config.insecure:
            return Client.connect(self.address, insecure=True)
        return Client.connect(self.address, token=f"@{self.admin_token_file}", ca=self.ca_bundle)

    def __enter__(self) -> LocalPlane:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> str:
        """Start everything; returns the server's address. Raises LocalPlaneError on failure."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        address_file = self.config.data_dir / ADDRESS_FILE
        address_file.unlink(missing_ok=True)
        insecure = ["--insecure"] if self.config.insecure else []
        http = ["--http", self.config.http] if self.config.http else []
        if self.config.http and self.config.http_tls:
            http += ["--http-tls-cert", str(self.config.http_tls[0]), "--http-tls-key", str(self.config.http_tls[1])]
        self._server = self._spawn(
            "server",
            ["-m", "jobplane.server", "--listen", self.config.listen,
             "--data-dir", str(self.config.data_dir), "--address-file", str(address_file), *insecure, *http],
        )
        self.address = self._wait_for_address(self._server, address_file)
        if self.config.http:  # written before the address file
            scheme = "https" if self.config.http_tls else "http"
            self.console_url = f"{scheme}://{dialable(read_address(self.config.data_dir / HTTP_ADDRESS_FILE) or '')}"
        self._names = self._usable_agent_names()
        agent_credentials = insecure if self.config.insecure else self._enrollment()
        for name in self.agent_names:
            arguments = ["--server", self.address, "--name", name, "--slots", str(self.config.slots),
                         "--state-dir", str(self.config.data_dir / "agents" / name), *agent_credentials,
                         *self.config.agent_args]
            self._agents.append(self._spawn(f"agent {name}", ["-m", "jobplane.agent", *arguments]))
        return self.address

    def _usable_agent_names(self) -> list[str]:
        """The first N of local-1, local-2, … that the server has not revoked: a revoked provider
        may never connect again (`providers revoke local-2`), so local-3 takes its place."""
        if not self.config.agents:
            return []
        if not self.config.insecure:
            self._wait_for_file(self.admin_token_file)
        try:
            with self.connect() as client:
                revoked = {provider.id for provider in client.list_providers(filter="state=REVOKED")}
        except JobplaneError as error:
            raise LocalPlaneError(f"cannot list the providers: {error}") from error
        names = (f"{AGENT_NAME_PREFIX}{number}" for number in itertools.count(1))
        return list(itertools.islice((name for name in names if name not in revoked), self.config.agents))

    def _enrollment(self) -> list[str]:
        """The agents' flags to enroll with: one join token, good for each local agent once."""
        if not self.agent_names:
            return []
        self._wait_for_file(self.admin_token_file)
        try:
            with self.connect() as client:
                created = client.create_token("agent", uses=len(self.agent_names), ttl=JOIN_TOKEN_TTL,
                                              name_prefix=AGENT_NAME_PREFIX)
        except JobplaneError as error:
            raise LocalPlaneError(f"cannot create a join token for the local agents: {error}") from error
        write_secret(self.join_token_file, created.secret)
        return ["--token-file", str(self.join_token_file), "--ca", str(self.ca_bundle)]

    def wait_for_agents(self, client, timeout: float = 20.0) -> list:
        """The providers, once every local agent is ACTIVE (or drained: an operator's drain lasts
        until `providers resume`): until then the server refuses jobs (no provider could run
        them). Raises LocalPlaneError past the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child := self.exited():
                raise LocalPlaneError(exit_report(child))
            active = list(client.list_providers(filter="state=ACTIVE,DRAINING,DRAINED"))
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

    def restartable(self, child: Child) -> bool:
        """Whether `child`, which has stopped, is an agent to start again: one killed by a signal
        (or stopped cleanly) after it ran a while. An agent the server refused (revoked, its name
        taken: jobplane-agent exits with code 1) or that dies at once would only fail again."""
        return child in self._agents and child.process.returncode <= 0 and child.uptime() >= RESTART_AFTER_SECONDS

    def retire(self, child: Child) -> None:
        """Leave a stopped agent stopped: the server and the other agents go on without it."""
        self._agents.remove(child)
        child.log_file.close()

    def restart(self, child: Child) -> Child:
        """Start a stopped agent again with the same name, flags and state directory, so that it
        takes back the attempts it left running (its keeper holds them for the reconnect grace;
        past it they continue elsewhere). Its log goes on in the same file."""
        child.log_file.close()
        again = self._spawn(child.name, child.arguments, append=True)
        self._agents[self._agents.index(child)] = again
        return again

    def stop(self) -> None:
        """Stop the agents, then the server; a second Ctrl-C skips the grace period."""
        self._terminate(self._agents)
        self._terminate([self._server] if self._server else [])
        for child in self._children():
            child.log_file.close()

    def _children(self) -> list[Child]:
        return ([self._server] if self._server else []) + self._agents

    def _spawn(self, name: str, arguments: list[str], append: bool = False) -> Child:
        log_path = self.log_dir / f"{name.split()[-1]}.log"
        log_file = log_path.open("ab" if append else "wb")
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
        return Child(name, process, log_path, log_file, arguments)

    def _wait_for_address(self, server: Child, address_file: Path) -> str:
        """The main address the server wrote once listening: the first line, once complete
        ("host:port\\n"); a second line (the agent address) is for the agents to learn on enrollment."""
        deadline = time.monotonic() + self.config.startup_timeout
        while time.monotonic() < deadline:
            self._check_server(server, "before it was listening")
            if address := read_address(address_file):
                return dialable(address)
            time.sleep(_POLL_SECONDS)
        raise LocalPlaneError(
            f"the server did not report an address within {self.config.startup_timeout:g}s "
            f"(expected in {address_file}); its log is {server.log_path}"
        )

    def _wait_for_file(self, path: Path) -> None:
        """Until the server has written `path` (it does so before listening; this is a safety net)."""
        deadline = time.monotonic() + self.config.startup_timeout
        while not path.exists():
            self._check_server(self._server, "before it wrote " + path.name)
            if time.monotonic() > deadline:
                raise LocalPlaneError(f"the server did not write {path}; its log is {self._server.log_path}")
            time.sleep(_POLL_SECONDS)

    @staticmethod
    def _check_server(server: Child, when: str) -> None:
        if server.process.poll() is not None:
            raise LocalPlaneError(exit_report(server, when))

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


def read_address(path: Path) -> str | None:
    """The main address in a server's address file: its first line, once complete; else None."""
    try:
        first, newline, _ = path.read_text().partition("\n")
    except FileNotFoundError:
        return None
    return first.strip() if newline and first.strip() else None


def write_secret(path: Path, secret: str) -> None:
    """Write `secret` to `path`, created with mode 0600 so that only this user can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a file left by an earlier run may have other permissions
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")


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
