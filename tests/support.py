"""Real parts for tests: a jobplane-server and jobplane-agents as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import random
import socket
import subprocess
import sys
import tempfile
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


def jobplane(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the `jobplane` CLI as a user does, in a child process; its exit code and output."""
    return subprocess.run([sys.executable, "-m", "jobplane.client.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def start_up(home: Path, agents: int = 2, extra: list[str] = ()) -> subprocess.Popen:
    """`jobplane up --agents N [extra...]` with JOBPLANE_HOME=home, once it says it is up (up.json);
    stop it with SIGINT, as Ctrl-C does."""
    up = subprocess.Popen([sys.executable, "-m", "jobplane.client.cli", "up", "--listen", "127.0.0.1:0",
                           "--agents", str(agents), *extra], env={**os.environ, "JOBPLANE_HOME": str(home)},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_until(lambda: (home / "up.json").exists() or up.poll() is not None, 30, "up.json")
    assert up.poll() is None, up.stdout.read()
    return up


def submit_running(job_file: Path, env: dict) -> str:
    """`jobplane submit FILE` to the `up` that `env` points at, then wait until the job runs; its id."""
    r = jobplane("submit", str(job_file), "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    job_id = json.loads(r.stdout)["id"]
    wait_until(lambda: json.loads(jobplane("jobs", "get", job_id, "-o", "json", env=env).stdout)
               .get("state") == "RUNNING", 30, "the job to run")
    return job_id


_PORTS = Path(tempfile.gettempdir()) / f"jobplane-test-ports-{os.getuid()}"
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST, HIGHEST = 10000, 65535  # where free_port looks
ROOM = 1000  # fewer ports than this outside the ephemeral range: look in all of it


def free_port() -> int:
    """A free port, and the next one free too (a server's default agent port), for a server that
    may listen on it again after a restart.

    Outside the kernel's ephemeral range (when it leaves room), so no outgoing connection can take
    it as its source port while the server is down (which made a restart fail with "Address
    already in use" under load). Reserved for this process's life in a directory shared by the
    test workers, so another worker cannot pick it, or its own port's neighbour, between the pick
    and its server's bind (which made a replica fail to start in CI)."""
    spans = _port_spans()
    _PORTS.mkdir(exist_ok=True)
    for _ in range(200):
        span = random.choices(spans, weights=[len(s) for s in spans])[0]
        port = random.choice(span)
        if _reserve(port) and _reserve(port + 1) and _bindable(port) and _bindable(port + 1):
            return port
    raise AssertionError(f"no two free ports in a row in {spans}")


def _port_spans() -> list[range]:
    """Where a port and its neighbour may be picked: below and above the kernel's ephemeral
    range; all of LOWEST..HIGHEST if those leave fewer than ROOM ports (as "1024 65535" does)."""
    try:
        low, high = map(int, EPHEMERAL_RANGE.read_text().split()[:2])
    except (OSError, ValueError):
        low, high = 32768, 60999
    spans = [s for s in (range(LOWEST, low - 1), range(max(high + 1, LOWEST), HIGHEST)) if len(s) > 0]
    return spans if sum(map(len, spans)) >= ROOM else [range(LOWEST, HIGHEST)]


def _reserve(port: int) -> bool:
    """Claim `port` for this process unless it is already claimed (by any process, this one too:
    a port is given out once)."""
    try:
        fd = os.open(_PORTS / str(port), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True


def release_ports_of_the_dead() -> None:
    """Forget the ports reserved by processes that have ended (earlier runs' workers); called
    once by the run's first process, before its workers start."""
    for mark in _PORTS.glob("*") if _PORTS.is_dir() else ():
        try:
            holder = int(mark.read_text())
        except (OSError, ValueError):
            continue  # being written
        if not pid_alive(holder):
            mark.unlink(missing_ok=True)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):  # it vanished while we looked
        return False


def paused(pid: int) -> bool:
    """Stopped (SIGSTOP: state T) or in a frozen cgroup, as a keeper pauses a dead agent's attempt
    (False once it is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cgroup = Path(f"/proc/{pid}/cgroup").read_text().splitlines()[-1].split("::", 1)[-1]
    except (FileNotFoundError, ProcessLookupError):
        return False
    mount = next((line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                  if " - cgroup2 " in line), None)
    events = Path(f"{mount}{cgroup}/cgroup.events") if mount and cgroup != "/" else None
    return state == "T" or bool(events and events.exists() and "frozen 1" in events.read_text())


class Proc:
    """A child process whose output goes to a log file we can show when a test fails."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log = log
        self._out = open(log, "ab")
        self.p = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, **env} if env else None)

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
    """A jobplane-server, secure (TLS, tokens, mTLS for agents) unless `insecure`."""

    def __init__(self, workdir: Path, db_url: str, *, port: int = 0, grace: float = 1.0, extra: list[str] = (),
                 insecure: bool = False) -> None:
        self.workdir = workdir
        self.db_url = db_url
        self.port = port
        self.insecure = insecure
        self.data_dir = workdir / "data"
        self.address_file = workdir / f"server-{time.monotonic_ns()}.addr"
        argv = [sys.executable, "-m", "jobplane.server", "--listen", f"127.0.0.1:{port}",
                "--data-dir", str(self.data_dir), "--db", db_url, "--address-file", str(self.address_file),
                "--reconnect-grace", str(grace), *(["--insecure"] if insecure else []), *extra]
        super().__init__(argv, workdir / "server.log")
        try:
            self.address, self.agent_address = self._await_addresses()
        except BaseException:  # a server that never listened is no one's to stop later
            self.kill()
            raise
        self.ca = self.data_dir / "ca-bundle.crt"
        self.token = "" if insecure else (self.data_dir / "admin.token").read_text().strip()
        self._join_token_file: Path | None = None

    def _await_addresses(self) -> tuple[str, str]:
        def ready():
            if not self.alive():
                raise AssertionError(f"jobplane-server exited early:\n{self.output()}")
            return self.address_file.exists() and self.address_file.read_text().split()

        lines = wait_until(ready, 20, "the server to listen")
        return lines[0], lines[-1]

    def client(self, **options):
        """A Client with the bootstrap admin token (or plaintext for an insecure server)."""
        from jobplane.client import Client

        if self.insecure:
            return Client.connect(self.address, insecure=True, **options)
        return Client.connect(self.address, token=self.token, ca=self.ca, **options)

    def env(self) -> dict[str, str]:
        """What a `jobplane` CLI process needs in its environment to act as admin here."""
        if self.insecure:
            return {"JOBPLANE_INSECURE": "1"}
        return {"JOBPLANE_TOKEN": self.token, "JOBPLANE_CA": str(self.ca)}

    def agent_args(self) -> list[str]:
        """Flags that let an agent join: a many-use join token (made once) and the CA."""
        if self.insecure:
            return ["--insecure"]
        if self._join_token_file is None:
            with self.client() as admin:
                secret = admin.create_token("agent", uses=1000, ttl=3600).secret
            self._join_token_file = self.workdir / f"join-{time.monotonic_ns()}.token"
            fd = os.open(self._join_token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret + "\n")
        return ["--token-file", str(self._join_token_file), "--ca", str(self.ca)]


class AgentProc(Proc):
    """A jobplane-agent joined to `server` (enrolled with a join token unless it is insecure);
    `address` replaces the server's address (e.g. a proxy in front of an insecure server)."""

    def __init__(self, workdir: Path, server: ServerProc, name: str, *, slots: int = 2,
                 labels: dict[str, str] | None = None, extra: list[str] = (), address: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        argv = [sys.executable, "-m", "jobplane.agent", "--server", address or server.address, "--name", name,
                "--slots", str(slots), "--state-dir", str(workdir / f"agent-{name}.state"), *server.agent_args()]
        for k, v in (labels or {}).items():
            argv += ["--label", f"{k}={v}"]
        super().__init__(argv + list(extra), workdir / f"agent-{name}.log", env)


class TcpProxy:
    """A loopback TCP proxy whose connections a test can cut, to break an agent's
    stream without killing the agent (a network failure, not a crash), whose
    open connections can lose the server's answers while requests still go through,
    and whose requests can be held back while answers still arrive."""

    def __init__(self, target: str) -> None:
        import threading

        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._socks: list[socket.socket] = []
        self._clients: list[socket.socket] = []  # the client side of each open connection
        self._muted: set[socket.socket] = set()  # clients the server's answers no longer reach
        self._requests_flow = threading.Event()  # cleared: what clients send waits here (hold_requests)
        self._requests_flow.set()
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
                self._clients.append(client)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with self._lock:
            requests = src in self._clients  # this thread carries what a client sends
        try:
            while data := src.recv(65536):
                if requests:
                    self._requests_flow.wait()
                if dst not in self._muted:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def drop_answers(self) -> None:
        """From now on the connections open now lose whatever the server sends (requests still
        go through): the server does the work, its answer never arrives. New connections are
        not affected; `cut` ends the muted ones. Exact: nothing the proxy reads from the server
        after this returns reaches those clients, however soon `cut` follows."""
        with self._lock:
            self._muted.update(self._clients)

    def hold_requests(self) -> None:
        """From now on what clients send waits in the proxy, in order, until `let_requests_through`
        (the server hears nothing from them meanwhile; its answers still arrive): a one-way slow
        network, e.g. an agent's reports delayed while the server's messages reach it."""
        self._requests_flow.clear()

    def let_requests_through(self) -> None:
        """What waited goes on to the server, in order, and so does what follows."""
        self._requests_flow.set()

    def cut(self) -> None:
        """Break every connection through the proxy; new ones are still accepted. A muted
        client stays muted until its socket is shut (unmuting first let an answer that was on
        its way through in between)."""
        with self._lock:
            socks, self._socks = self._socks, []
            self._clients = []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        with self._lock:
            self._muted.difference_update(socks)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self._requests_flow.set()
        self.cut()


def agent_certificate(server: ServerProc, name: str, **options) -> tuple[bytes, bytes]:
    """(key, certificate) for provider `name` from the server's own CA (tests may read its key);
    `options` go to Authority.sign_csr (lifetime, now) plus `authority` for another CA."""
    from datetime import timedelta

    from jobplane.agent.keygen import make_key_and_csr

    authority = options.pop("authority", None) or server_authority(server)
    key, csr = make_key_and_csr(name)
    options.setdefault("lifetime", timedelta(hours=1))
    return key, authority.sign_csr(csr, identity=name, role="agent", **options)


def server_authority(server: ServerProc):
    """The CA `server` signs with (tests may read its key): in DATA_DIR/pki on SQLite, in the
    database the replicas share on PostgreSQL."""
    from jobplane.server.security.authorities import stored_authority
    from jobplane.server.security.pki import Authority
    from jobplane.server.store.db import open_database
    from jobplane.server.store.repo import Store
    from jobplane.server.store.security import SecurityStore

    if server.db_url.startswith("sqlite"):
        return Authority.load_or_create(server.data_dir / "pki")
    store = Store(open_database(server.db_url))
    try:
        return stored_authority(SecurityStore(store.db))
    finally:
        store.close()


def agent_channel(server: ServerProc, key: bytes | None, cert: bytes | None):
    """A channel to the server's agent (mutual TLS) address, presenting `cert` if given."""
    import grpc

    return grpc.secure_channel(server.agent_address, grpc.ssl_channel_credentials(server.ca.read_bytes(), key, cert))


def admin_channel(server: ServerProc):
    """A raw channel to the main address with the admin token (plaintext for an insecure server)."""
    import grpc

    if server.insecure:
        return grpc.insecure_channel(server.address)
    creds = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(server.ca.read_bytes()),
                                               grpc.access_token_call_credentials(server.token))
    return grpc.secure_channel(server.address, creds)


def recorded_command(log: Path, seconds: float) -> list[str]:
    """A command task that records its run in `log`: a start line, then after `seconds` an end
    line, each with the task's name, the attempt and the time on this machine's clock."""
    line = 'echo "$1 $JOBPLANE_TASK_NAME $JOBPLANE_ATTEMPT $(date +%s.%N)" >> ' + str(log)
    return ["sh", "-c", f"{line.replace('$1', 'start')}; sleep {seconds}; {line.replace('$1', 'end')}"]


class RunLog:
    """What recorded tasks actually did: each attempt's start and end, from the log they append to."""

    def __init__(self, log: Path) -> None:
        self.starts: dict[str, list[tuple[int, float]]] = {}
        self.ends: dict[str, list[tuple[int, float]]] = {}
        text = log.read_text() if log.exists() else ""
        # A line still being appended as this reads has no newline yet: it is left for later.
        for line in text.splitlines()[:None if text.endswith("\n") else -1]:
            what, name, attempt, when = line.split()
            (self.starts if what == "start" else self.ends).setdefault(name, []).append((int(attempt), float(when)))

    def runs(self, name: str) -> int:
        """How many times the task's body ran to its end."""
        return len(self.ends.get(name, []))

    def started(self, name: str) -> int:
        return len(self.starts.get(name, []))

    def overlaps(self) -> list[str]:
        """Tasks two of whose attempts ran at the same moment (an attempt with no end runs on)."""
        found = []
        for name, starts in self.starts.items():
            ends = dict(self.ends.get(name, []))
            spans = sorted((start, ends.get(attempt, float("inf"))) for attempt, start in starts)
            if any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])):
                found.append(name)
        return found


# A task that starts processes meant to outlive it, in one of four ways; each process it starts
# appends "PID CGROUP" to PIDS; READY appears once all run. Its main process then sleeps (the
# "daemon" one ignoring SIGTERM, as does its daemon). Run: python ESCAPES VARIANT PIDS READY.
ESCAPES = r'''
import ctypes, os, signal, subprocess, sys, time
variant, pids, ready = sys.argv[1:4]

def note():
    cgroup = open("/proc/self/cgroup").read().splitlines()[-1]
    with open(pids, "a") as f:
        f.write(f"{os.getpid()} {cgroup}\n")

note()
if variant == "setsid":  # the shell's way: sh -c 'setsid sleep 1000 & sleep 1000'
    subprocess.Popen(["sh", "-c", "setsid sh -c 'echo $$ - >> \"$1\"; exec sleep 1000' sh \"$0\" & "
                                  "echo $$ - >> \"$0\"; exec sleep 1000", pids])
    while len(open(pids).read().splitlines()) < 3:
        time.sleep(0.01)
elif variant == "setpgid":  # a Python child in a process group of its own
    if os.fork() == 0:
        os.setpgid(0, 0)
        note()
        time.sleep(1000)
        os._exit(0)
elif variant == "double-fork":  # fork, setsid, fork, and the middle one exits: an orphan
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            note()
            time.sleep(1000)
        os._exit(0)
    os.wait()
elif variant == "daemon":  # daemon(3), deaf to SIGTERM and SIGHUP, as is the task itself
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        ctypes.CDLL(None).daemon(0, 0)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        note()
        time.sleep(1000)
        os._exit(0)
while len(open(pids).read().splitlines()) < 2:
    time.sleep(0.01)
open(ready, "w").close()
time.sleep(1000)
'''
ESCAPE_VARIANTS = ["setsid", "setpgid", "double-fork", "daemon"]


def escapes_command(directory: Path, variant: str) -> tuple[list[str], Path, Path]:
    """argv of an ESCAPES task in `directory`, and its PIDS and READY files (absolute paths:
    a daemon changes directory to /)."""
    script = directory / "escapes.py"
    script.write_text(ESCAPES)
    pids, ready = directory / f"{variant}.pids", directory / f"{variant}.ready"
    return [sys.executable, str(script), variant, str(pids), str(ready)], pids, ready


def noted_pids(path: Path) -> dict[int, str]:
    """The pids (and cgroups) an ESCAPES task noted."""
    lines = path.read_text().splitlines() if path.exists() else []
    return {int(line.split()[0]): line.split(" ", 1)[1] for line in lines}


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes whose environment has name=value: every process a task started, however
    it left the task's process group or session (unless it cleared its environment)."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
