"""Real parts for tests: a jobplane-server and jobplane-agents as subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll an observable condition until it holds; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):  # it vanished while we looked
        return False


class Proc:
    """A child process whose output goes to a log file we can show when a test fails."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self._out = open(log, "ab")
        self.p = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.p.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()

    def kill(self) -> None:
        """kill -9 the process (and, for a server, nothing else: agents are separate)."""
        if self.alive():
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class ServerProc(Proc):
    def __init__(self, workdir: Path, db_url: str, *, port: int = 0, grace: float = 1.0, extra: list[str] = ()) -> None:
        self.workdir = workdir
        self.db_url = db_url
        self.port = port
        self.address_file = workdir / f"server-{time.monotonic_ns()}.addr"
        argv = [sys.executable, "-m", "jobplane.server", "--listen", f"127.0.0.1:{port}",
                "--data-dir", str(workdir / "data"), "--db", db_url, "--address-file", str(self.address_file),
                "--reconnect-grace", str(grace), *extra]
        super().__init__(argv, workdir / "server.log")
        self.address = self._await_address()

    def _await_address(self) -> str:
        def ready():
            if not self.alive():
                raise AssertionError(f"jobplane-server exited early:\n{self.output()}")
            return self.address_file.exists() and self.address_file.read_text().strip()

        return wait_until(ready, 20, "the server to listen")


class AgentProc(Proc):
    def __init__(self, workdir: Path, server: str, name: str, *, slots: int = 2,
                 labels: dict[str, str] | None = None, extra: list[str] = ()) -> None:
        self.name = name
        argv = [sys.executable, "-m", "jobplane.agent", "--server", server, "--name", name, "--slots", str(slots),
                "--state-dir", str(workdir / f"agent-{name}.state")]
        for k, v in (labels or {}).items():
            argv += ["--label", f"{k}={v}"]
        super().__init__(argv + list(extra), workdir / f"agent-{name}.log")


class TcpProxy:
    """A loopback TCP proxy whose connections a test can cut, to break an agent's
    stream without killing the agent (a network failure, not a crash)."""

    def __init__(self, target: str) -> None:
        import threading

        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self._closed:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Break every connection through the proxy; new ones are still accepted."""
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()
