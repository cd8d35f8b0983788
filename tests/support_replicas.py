"""Real parts for the replica tests (issue 16): several jobplane-server processes on one
PostgreSQL, each optionally behind its own `Link` to the database (a TCP proxy a test can
partition), and what a test needs to find, kill, freeze and thaw the leader."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import grpc

from support import AgentProc, ServerProc, free_port, wait_until
from support_postgres import with_port

LEADER, FOLLOWER, GONE = 1, 2, 3  # jobplane.v1.ServerRole


class Link:
    """A TCP proxy between one replica and PostgreSQL that a test can cut as a network does.

    `cut()` (a partition): every byte in flight on every connection is held back and new
    connections are accepted but get no answer, so the replica's queries hang rather than fail;
    `cut(reset=True)`: every connection is closed and new ones are closed at once.
    `restore()`: the network is back; held bytes flow on (TCP retransmits them), so a commit
    sent before the partition reaches PostgreSQL after it, where fencing must refuse it.
    (support.TcpProxy loses bytes on purpose and never refuses a connection: another fault.)"""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._open = threading.Event()
        self._open.set()
        self._reset = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"link-{self.address}").start()

    def cut(self, *, reset: bool = False) -> None:
        self._reset = reset
        self._open.clear()
        if reset:
            self._close_all()

    def restore(self) -> None:
        self._reset = False
        self._open.set()

    @property
    def is_cut(self) -> bool:
        return not self._open.is_set()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self._open.set()
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._reset:
                client.close()
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        with self._lock:
            self._socks.append(client)
        self._open.wait()  # a connection opened during a partition hangs until it heals
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self._lock:
            self._socks.append(upstream)
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._open.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Replica:
    """One jobplane-server of the set, restartable on its port and data directory."""

    def __init__(self, rs: ReplicaSet, index: int) -> None:
        self.name = f"r{index}"
        self.workdir = rs.workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()  # and the next one: the agents' (mutual TLS) port, the default
        self.address = f"127.0.0.1:{self.port}"
        self.link = Link(rs.pg_address) if rs.links else None
        self.db_url = with_port(rs.db_url, self.link.address) if self.link else rs.db_url
        self.args = ["--advertise", self.address, "--lease", str(rs.lease), *rs.extra]
        self.proc: ServerProc | None = None
        self.frozen = False
        self._rs = rs

    def note(self, what: str) -> None:
        """Remember a fault done to this replica, with the time, for the logs of a failed test."""
        self._rs.faults.append(f"{time.time():.3f} {self.name}: {what}")

    def start(self) -> None:
        """Start (again) on its port and data directory. Secure replicas share the CA and the
        tokens through the database; the admin token's file is the first replica's."""
        self.note("start")
        first = self._rs.replicas[0] if self._rs.replicas else self
        if self._rs.secure and first is not self:
            token = self.workdir / "data" / "admin.token"
            token.parent.mkdir(exist_ok=True)
            token.write_text(first.proc.token)
        self.proc = ServerProc(self.workdir, self.db_url, port=self.port, insecure=not self._rs.secure,
                               extra=self.args)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def kill(self) -> None:
        """kill -9."""
        self.thaw()
        self.note("kill -9")
        self.proc.kill()

    def freeze(self) -> None:
        """SIGSTOP: the process stops in its tracks, sockets open, as a long GC pause or a VM stall."""
        self.note("SIGSTOP")
        self.proc.signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            self.note("SIGCONT")
            self.proc.signal(signal.SIGCONT)
            self.frozen = False

    def partition(self) -> None:
        """Cut this replica off from PostgreSQL (its Link: bytes held back, no error)."""
        self.note("cut off from PostgreSQL")
        self.link.cut()

    def heal(self) -> None:
        self.note("link to PostgreSQL restored")
        self.link.restore()

    def output(self) -> str:
        return self.proc.output() if self.proc else ""

    def __repr__(self) -> str:
        return f"<{self.name} {self.address}>"


class ReplicaSet:
    """`n` jobplane-server replicas on the database at `db_url`, each with --advertise its own
    127.0.0.1 address and --lease `lease`, secure (TLS, tokens, one CA) unless not `secure`;
    with `links`, each reaches PostgreSQL through its own Link."""

    def __init__(self, workdir: Path, db_url: str, *, n: int = 3, lease: float = 2.0, links: bool = False,
                 secure: bool = True, extra: list[str] = ()) -> None:
        self.workdir = workdir
        self.db_url = db_url
        self.pg_address = db_url.split("@", 1)[-1].split("/", 1)[0]
        self.lease = lease
        self.links = links
        self.secure = secure
        self.extra = list(extra)
        self.faults: list[str] = []
        self.replicas: list[Replica] = []
        self.agents: list[AgentProc] = []
        self.loads: list[Load] = []
        self._channels: dict[str, grpc.Channel] = {}
        for i in range(n):
            replica = Replica(self, i)
            replica.start()
            self.replicas.append(replica)

    # ----- who leads -----------------------------------------------------------------

    @property
    def addresses(self) -> str:
        """Every replica's address, comma-separated, as users give them to clients and agents."""
        return ",".join(r.address for r in self.replicas)

    def by_address(self, address: str) -> Replica | None:
        return next((r for r in self.replicas if r.address == address), None)

    def list_servers(self, replica: Replica, timeout: float = 2.0):
        """ServerService.ListServers asked of `replica`."""
        from jobplane.v1 import server_pb2, server_pb2_grpc

        stub = server_pb2_grpc.ServerServiceStub(self.channel(replica.address))
        return stub.ListServers(server_pb2.ListServersRequest(), timeout=timeout)

    def leader_seen_by(self, replica: Replica) -> tuple[Replica, int] | None:
        """The leader and its epoch as `replica` reports them, or None (no answer, nobody leads)."""
        try:
            answer = self.list_servers(replica)
        except grpc.RpcError:
            return None
        for s in answer.servers:
            if s.role == LEADER:
                leader = self.by_address(s.address)
                return (leader, s.epoch) if leader else None
        return None

    def reachable(self, ignore: Replica | None = None) -> list[Replica]:
        """Replicas running, not frozen, not cut off from the database (nor `ignore`)."""
        return [r for r in self.replicas if r.alive() and not r.frozen and not (r.link and r.link.is_cut)
                and r is not ignore]

    def leader(self, *, newer_than: int = 0, ignore: Replica | None = None,
               timeout: float = 20.0) -> tuple[Replica, int]:
        """The leader every reachable replica (but `ignore`) agrees on, itself reachable, with an
        epoch above `newer_than`: (replica, epoch)."""
        def agreed():
            running = self.reachable(ignore)
            seen = {self.leader_seen_by(r) for r in running}
            if len(seen) != 1 or None in seen:
                return None
            leader, epoch = seen.pop()
            return (leader, epoch) if leader in running and epoch > newer_than else None

        return wait_until(agreed, timeout, f"the replicas to agree on a leader past epoch {newer_than}",
                          interval=0.1)

    def role_of(self, replica: Replica, asked: Replica | None = None) -> int:
        """`replica`'s role as `asked` (default: itself) lists it; 0 when it gives no answer."""
        try:
            servers = self.list_servers(asked or replica).servers
        except grpc.RpcError:
            return 0
        return next((s.role for s in servers if s.address == replica.address), 0)

    def followers(self, leader: Replica) -> list[Replica]:
        return [r for r in self.replicas if r is not leader and r.alive()]

    # ----- clients and agents ---------------------------------------------------------

    @property
    def credentials(self) -> dict:
        """What Client.connect needs to act as admin on any replica."""
        first = self.replicas[0].proc
        return {"token": first.token, "ca": str(first.ca)} if self.secure else {"insecure": True}

    def channel(self, address: str) -> grpc.Channel:
        """A raw admin channel to one replica (kept for the set's life)."""
        from jobplane.client.channel import open_channel
        from jobplane.client.credentials import Credentials

        if address not in self._channels:
            self._channels[address] = open_channel(address, Credentials.from_options(**self.credentials))
        return self._channels[address]

    def client(self, replica: Replica, **options):
        from jobplane.client import Client

        return Client.connect(replica.address, **self.credentials, **options)

    def add_agent(self, name: str, *, slots: int = 4, extra: list[str] = ()) -> AgentProc:
        """A jobplane-agent given every replica's address (joined with a token made by the first)."""
        agent = AgentProc(self.workdir, self.replicas[0].proc, name, slots=slots, extra=list(extra),
                          address=self.addresses)
        self.agents.append(agent)
        return agent

    def close(self) -> None:
        for load in self.loads:
            load.close()
        for agent in self.agents:
            agent.stop()
        for replica in self.replicas:
            replica.thaw()
            if replica.proc:
                replica.proc.stop()
            if replica.link:
                replica.link.close()
        for channel in self._channels.values():
            channel.close()

    def logs(self, tail: int = 4000) -> str:
        parts = ["---- faults ----", *self.faults]
        parts += [f"---- {r.name} {r.address} ----\n{r.output()[-tail:]}" for r in self.replicas]
        parts += [f"---- agent {a.name} ----\n{a.output()[-tail:]}" for a in self.agents]
        return "\n".join(parts)


class Load:
    """A few thousand short marked tasks (support_history) run by `agents` real agents on a
    ReplicaSet while `watchers` raw streams follow the event log (the i-th first on
    `first[i % len(first)]`) and a Submitter hands in `jobs` jobs of `tasks` tasks, `pause`
    seconds apart, each to the next replica. Agents and clients are given every replica's
    address: they find the leader themselves."""

    def __init__(self, rs: ReplicaSet, *, jobs: int = 20, tasks: int = 100, seconds: float = 0.02,
                 pause: float = 0.25, agents: int = 2, slots: int = 8, watchers: int = 4,
                 first: list[Replica] | None = None) -> None:
        from support_history import History, Submitter, Watchers, install_marks, marked_job

        self.rs = rs
        rs.loads.append(self)
        work = rs.workdir / "work"
        self.log = install_marks(work)
        for i in range(agents):
            rs.add_agent(f"a{i}", slots=slots, extra=["--work-dir", str(work)])
        addresses = [r.address for r in rs.replicas]
        self.watchers = Watchers(addresses, watchers, rs.credentials, first=[r.address for r in first] if first else None)
        specs = [marked_job(f"j{j}", tasks, self.log, seconds) for j in range(jobs)]
        self.submitter = Submitter(addresses, specs, rs.credentials, pause=pause)
        self.history = History(self.log, self.submitter, self.watchers)

    def start(self) -> Load:
        self.wait_agents()
        self.submitter.start()
        return self

    def wait_agents(self, timeout: float = 30.0) -> None:
        """Until the leader lists every agent ACTIVE."""
        leader, _ = self.rs.leader()
        with self.rs.client(leader, timeout=5) as client:
            wait_until(lambda: sum(p.state == 1 for p in client.list_providers()) == len(self.rs.agents), timeout,
                       "every agent to be ACTIVE")

    def ended(self) -> int:
        from support_history import Runs

        return Runs(self.log).ended()

    def wait_progress(self, more: int, timeout: float = 60.0) -> None:
        """Until `more` further tasks have ended (by their own records)."""
        goal = self.ended() + more
        wait_until(lambda: self.ended() >= goal, timeout, f"{more} more tasks to end", interval=0.1)

    def check(self, timeout: float = 90.0) -> list[str]:
        """What the history says is broken (see History.check), asked of the current leader."""
        leader, _ = self.rs.leader(timeout=timeout)
        with self.rs.client(leader, timeout=10) as client:
            return self.history.check(client, self.rs.db_url, timeout)

    def close(self) -> None:
        self.watchers.close()
