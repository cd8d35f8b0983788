"""The server object: owns the store, engine, core and event hub, and serves the
jobplane.v1 services with health checking and reflection on one grpc.aio server."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import time

import grpc
from grpc_health.v1 import health

from jobplane.files import write_atomic
from jobplane import __version__
from peewee import DatabaseError, InterfaceError, PostgresqlDatabase

from .config import ServerConfig
from .core import Core
from .errors import ConfigError, Deposed
from .domain.engine import Engine
from .events import EventHub
from .hooks import CommandHooks, ProviderManager
from .metrics import ServerMetrics
from .notify import Notifier, load_secret, settle_through
from .http import Console, Gateway, HttpFront, MetricsPage
from .http.server import tls_context
from .security.access import CA_BUNDLE_FILE, Access
from .security.authorities import PKI_DIR, open_authority
from .security.interceptor import AuthInterceptor, Limits
from .serving import add_services, grpc_server, listen, set_health
from .security.pki import Authority
from .services import convert
from .services.base import Deps
from .services.finished import FinishedJobs
from .services.policies import PolicyBook
from .services.providers import ProviderService
from .services.views import ViewBook
from .services.watch import encode_event
from .store.db import open_database
from .store.failures import DatabaseThreads
from .store.lease import LeaseStore, Me, Term
from .store.locks import ServerClaims, claim_server
from .security.forwarding import encode_identity
from .tailer import Tailer
from .forward import LOCAL, Forwarder, Leader
from .replica import Leadership
from .services.security import SecurityService
from .services.servers import single
from .store.finished import FinishedJobStore
from .store.notifications import pending_deliveries
from .store.repo import Store, runtime_from_snapshot
from .store.security import PolicyStore, SecurityStore
from .store.views import ViewStore

log = logging.getLogger(__name__)

# The cyclic collector's thresholds: a young generation of 20,000 allocations, not 700. A job's
# tasks live until it ends, so with the default a 40,000-task run made 11 full passes over them
# (45 ms each) and 2,000 young ones: 0.81 s of the server's CPU, 0.44 s with this (one full
# pass), ~9 us per task (bench/server_cpu.py's runs, gc.callbacks timing). Garbage in cycles
# waits a little longer; most is freed by reference counting anyway.
GC_THRESHOLDS = (20_000, 10, 10)

WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
HTTP_ADDRESS_FILE = "http.addr"
# After a takeover, the restart grace's extra: an agent notices a frozen leader within about
# 2 s (its pings) and gives up connecting to a dead one within 3 s, then tries the replicas.
TAKEOVER_SLACK = 5.0  # in the data directory: where --http listens, once it does
# A supervision tick this many seconds late is logged: the server itself stalled. (Supervision
# credits its providers with every tick's lateness past supervision.BEHIND, logged or not.)
STALL = 0.5


class Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.address = ""
        self.agent_address = ""
        self.ca_bundle = config.data_dir / CA_BUNDLE_FILE
        self._grpc: grpc.aio.Server | None = None
        self.store = Store(open_database(config.database_url, lease=config.lease))
        self._writer = DatabaseThreads(self.store.db, 1, "jobplane-writer")
        self._readers = DatabaseThreads(self.store.db, config.reader_threads, "jobplane-reader")
        self.hub = EventHub(to_message=convert.event_to_proto, encode=encode_event,
                            watcher_queue=config.watcher_queue)
        # Replicas share a PostgreSQL database (issue 16): one leads, by a lease; SQLite has one server.
        self.replicated = isinstance(self.store.db, PostgresqlDatabase)
        self.engine: Engine | None = None  # while leading: one engine per term, restored from the database
        self.core: Core | None = None
        self.deps: Deps | None = None
        self.leadership: Leadership | None = None
        self._tailer: Tailer | None = None  # while following: the leader's events, for this replica's watchers
        self._forwarder: Forwarder | None = None
        self._transition = asyncio.Lock()
        self._listening = False
        self._started = time.time()
        self.metrics = ServerMetrics()
        self._ticker: asyncio.Task | None = None
        self._compactor: asyncio.Task | None = None
        self._purger: asyncio.Task | None = None  # finished jobs past --job-retention
        self._failure_watch: asyncio.Task | None = None
        self._manager: ProviderManager = CommandHooks(config.scale_out_hook, config.scale_in_hook,
                                                      config.scale_out_interval, config.scale_in_after)
        self._health = health.aio.HealthServicer()
        self._providers: ProviderService | None = None
        self._front: HttpFront | None = None
        self.http_url = ""  # http(s)://HOST:PORT of the console and /metrics, once listening
        self._http_ssl: ssl.SSLContext | None = None  # --http-tls-cert/--http-tls-key
        self.access: Access | None = None
        self._claims: ServerClaims | None = None  # the data directory's lock (and the SQLite file's)
        self._notifier: Notifier | None = None  # while leading: the notifications being delivered
        self._notify_secret = b""
        self._server_files = None  # the server's key and certificate files (TLS)

    async def start(self) -> str:
        """Open the database, take the lead or follow, and listen; returns HOST:PORT. Built in
        dependency order: the database, the credentials, the services, the listening sockets,
        then the role: the leader restores the engine from the database and runs the core
        around it; a follower serves reads and watches and forwards the rest."""
        self._http_ssl = self._http_tls()  # a bad pair stops the start before anything else
        self._claims = claim_server(self.config.data_dir, self.config.database_url)
        await self._open()
        self.access = await self._security()
        self.deps = await self._services_deps()
        self._providers = ProviderService(self.deps, self.access)
        self.deps.agent_links = self._providers  # TaskService.StreamLogs asks agents through them
        limits = Limits(self.config.submit_rate, self.config.enroll_rate, self.config.max_streams)
        self._grpc = grpc_server(self.config, AuthInterceptor(self.access, self._audit, limits, lambda: self.failed,
                                                              self.metrics.rpcs, self._route))
        files = self._server_files
        port, agent_port = listen(self._grpc, self.config, files and files.key, files and files.cert,
                                  None if self.config.insecure else self.access.authority.trust_bundle())
        security = SecurityService(self.deps, self.access, SecurityStore(self.store.db), agent_port)
        add_services(self._grpc, self.deps, security, self._providers, self._health, self._replicas, self._single)
        self.address = f"{self.config.listen.rsplit(':', 1)[0]}:{port}"
        self.agent_address = f"{self.config.agent_address.rsplit(':', 1)[0]}:{agent_port}"
        await self._take_role()
        await self._grpc.start()
        self._listening = True
        await set_health(self._health, serving=True)
        if self.core is not None:  # agents may come back now
            await self.core.call(lambda engine: engine.arm_restart_grace(self._takeover_slack(self.core.term)))
        if self.leadership is not None:
            self.leadership.start()
        await self._start_http()
        # What start-up made (modules, the restored engine) lives as long as the server: kept out of
        # the cyclic collector's full passes, which otherwise walk it again each time the fleet grows.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self._write_address_file()
        log.info("jobplane-server listening on %s (database %s)", self.address, self.config.database_url)
        return self.address

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self.store.create_schema)
        self._notify_secret = await loop.run_in_executor(self._writer, load_secret, self.store.db,
                                                         self.config.data_dir)
        if self.replicated:
            await loop.run_in_executor(self._writer, LeaseStore(self.store.db).setup)

    async def _take_role(self) -> None:
        """SQLite: lead, always. PostgreSQL: lead if the lease is free, else follow."""
        if not self.replicated:
            await self._lead(None)
            return
        self.me = Me(self._claims.replica_id, *self._advertised(), __version__)
        self._forwarder = Forwarder(self.me.id, self.access.replica_channel_credentials(self.me.id),
                                    None if self.config.insecure else encode_identity,
                                    agent_port=int(self.agent_address.rsplit(":", 1)[1]))
        self.leadership = Leadership(LeaseStore(self.store.db), self.me, self.config.lease,
                                     lead=self._lead, follow=self._follow, seen=self._seen)
        await self.leadership.first()
        if self.core is None:
            await self._follow("another replica leads")

    async def _lead(self, term: Term | None) -> None:
        """Take over: what the previous leader committed is published first, then the engine
        is restored from the database exactly as after a restart, and the agents that were
        connected get the restart grace to come back with their running tasks."""
        async with self._transition:
            tailer, self._tailer = self._tailer, None  # should the takeover fail, `_follow` starts another
            if tailer is not None:
                await tailer.stop()
                await tailer.catch_up()
            await self.deps.policies.load()  # the default policy in force decides how tasks end
            await self._resume(term)
            self._notifier = Notifier(self.config.notify(), self._notify_secret, settle_through(self.core))
            self.core.start()
            await self.core.call(lambda engine: None)  # commit what the restore changed
            self._notifier.add(await asyncio.get_running_loop().run_in_executor(
                self._writer, pending_deliveries, self.store.db))
            await self._start_background()
            self.deps.core = self.core
            if self._listening:
                await self.core.call(lambda engine: engine.arm_restart_grace(self._takeover_slack(term)))
            if term is not None:
                log.info("leading at epoch %d", term.epoch)

    async def _follow(self, reason: str) -> None:
        """Stop leading (or start as a follower): the engine stops, and what it had not
        committed fails with UNAVAILABLE; the agents' streams close, so they go to the new
        leader; watchers stay, fed from the database from the last committed event on."""
        async with self._transition:
            core, self.core, self.engine = self.core, None, None
            if core is not None:
                self.deps.core = None
                self._stop_background()
                await self._stop_notifier()
                await core.stop(Deposed(f"this server replica stopped leading ({reason}); retry"))
                self._providers.close_all()
                log.warning("stepped down: %s; following", reason)
            if self._tailer is None:
                await self._follow_events(starting=not self._listening)

    async def _follow_events(self, starting: bool) -> None:
        """Feed this replica's watchers from the database: from the last event published here
        (by the leader's engine, or by a tailer before a takeover that failed), or (starting as
        a follower, with no watcher yet) from the newest."""
        loop = asyncio.get_running_loop()
        try:
            oldest, newest = await loop.run_in_executor(self._readers, self.store.event_id_range)
        except (DatabaseError, InterfaceError) as exc:  # PostgreSQL away: the tailer retries
            log.warning("reading the event ids: %s", exc)
            oldest = newest = None
        if starting and newest is not None:
            self.hub.last_id = max(self.hub.last_id, newest)
        self.hub.oldest_id = oldest if oldest is not None else self.hub.last_id + 1
        self._tailer = Tailer(self.store.reads, self.hub, self._readers, on_policy=self.deps.policies.load)
        self._tailer.start()

    def _takeover_slack(self, term: Term | None) -> float:
        """Extra restart grace when this replica takes over from another: its agents first have
        to notice the old leader is gone and find this one among the replicas."""
        if term is None or term.previous in ("", term.replica):
            return 0.0
        return TAKEOVER_SLACK + self.config.lease

    def _seen(self, found) -> None:
        """A follower's view of the lease: where calls are forwarded and agents sent."""
        if found is None:
            return
        row, now = found
        self._forwarder.follow(Leader(row.holder, row.address, row.agent_address, row.epoch)
                               if row.expires > now and row.holder else Leader())

    def _route(self, method: str) -> Forwarder | None:
        """The forwarder for a call this replica cannot answer itself (it follows), else None."""
        if self._forwarder is None or self.core is not None or method in LOCAL:
            return None
        return self._forwarder

    def _advertised(self) -> tuple[str, str]:
        """Where clients and agents reach this replica: --advertise, else the bound address (a
        wildcard host replaced by the host name)."""
        host = self.address.rsplit(":", 1)[0]
        if host in WILDCARD_HOSTS:
            host = socket.gethostname()
        address = self.config.advertise or f"{host}:{self.address.rsplit(':', 1)[1]}"
        agent = self.config.advertise_agent or f"{address.rsplit(':', 1)[0]}:{self.agent_address.rsplit(':', 1)[1]}"
        return address, agent

    async def _resume(self, term: Term | None) -> None:
        """The engine, as the database left it; and the core that will commit its batches."""
        snapshot = await asyncio.get_running_loop().run_in_executor(self._writer, self.store.load)
        counters, jobs, tasks, providers, waiting = runtime_from_snapshot(snapshot)
        self.engine = Engine(self.config.engine())
        self.engine.default_policy = self.deps.policies.default
        self.engine.ids = counters
        self.hub.last_id = counters.event - 1
        self.engine.begin(time.time())
        self.engine.schedules.restore(*snapshot.schedules)  # first: a job the restore ends may free a queued run
        self.engine.alerts.restore(*snapshot.alerts)  # and before any job's status changes
        self.engine.restore(jobs, tasks, providers, waiting, snapshot.rules)
        self.engine.reruns.restore(snapshot.together or {})
        self.core = Core(self.engine, self.store, self.hub, self._writer, self._deliver, self.metrics, term)

    def _deliver(self, cs) -> None:
        """After each commit: assignments and stops to the agents, and the provider manager."""
        if self._providers is not None:  # set before the core starts; None only if start failed early
            self._providers.deliver(cs)
        self._manager.scale_out(cs.demand)
        if cs.notifications and self._notifier is not None:
            self._notifier.add(cs.notifications)
        core = self.core
        self._manager.scale_in(core.providers_view if core is not None else tuple)

    async def _services_deps(self) -> Deps:
        deps = Deps(None, self.store, self.hub, self._readers, self.config, metrics=self.metrics)
        deps.policies = PolicyBook(PolicyStore(self.store.db), self._writer)
        await deps.policies.load()
        deps.views = ViewBook(ViewStore(self.store.db), self._writer, self._readers)
        deps.finished = FinishedJobs(FinishedJobStore(self.store.db), self._writer, self._readers)
        return deps

    async def _start_background(self) -> None:
        loop = asyncio.get_running_loop()
        self._ticker = loop.create_task(self._supervise(), name="jobplane-supervise")
        self._failure_watch = loop.create_task(self._on_failure(self.core), name="jobplane-failure")
        oldest = await loop.run_in_executor(self._writer, self.store.oldest_event_id)
        self.hub.oldest_id = oldest if oldest is not None else self.hub.last_id + 1
        self._compactor = (loop.create_task(self._compact(), name="jobplane-compact")
                           if self.config.event_retention > 0 else None)
        if self.config.job_retention > 0:
            purge = self.deps.finished.purge_every(self.config.job_retention, lambda: self.deps.core)
            self._purger = loop.create_task(purge, name="jobplane-purge")

    async def _stop_notifier(self) -> None:
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            await notifier.stop()

    def _stop_background(self) -> None:
        for task in (self._ticker, self._compactor, self._failure_watch, self._purger):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._ticker = self._compactor = self._failure_watch = self._purger = None

    async def _security(self) -> Access:
        """The CA and server certificate (created on first start), the token cache and,
        on first start, the bootstrap admin token."""
        loop = asyncio.get_running_loop()
        authority = None
        if not self.config.insecure:
            authority = await loop.run_in_executor(self._writer, self._authority)
        access = Access(SecurityStore(self.store.db), self._writer, authority,
                        agent_cert_ttl=self.config.agent_cert_ttl, reader=self._readers)
        await access.load()
        await access.bootstrap(self.config.data_dir)
        access.start_refresh()
        return access

    def _authority(self) -> Authority:
        pki = self.config.data_dir / PKI_DIR
        authority = open_authority(self.config, SecurityStore(self.store.db))
        advertised = [a.rsplit(":", 1)[0] for a in (self.config.advertise, self.config.advertise_agent) if a]
        hosts = [h for h in (self.config.listen.rsplit(":", 1)[0], self.config.agent_address.rsplit(":", 1)[0],
                             socket.gethostname(), *advertised, *self.config.tls_hosts) if h not in WILDCARD_HOSTS]
        self._server_files = authority.issue_server(pki, [h.strip("[]") for h in hosts])
        write_atomic(self.ca_bundle, authority.trust_bundle(), durable=False)
        return authority

    async def _start_http(self) -> None:
        """The console and /metrics (--http), written to DATA_DIR/http.addr for `jobplane up`."""
        path = self.config.data_dir / HTTP_ADDRESS_FILE
        if not self.config.http:
            path.unlink(missing_ok=True)
            return
        failed = lambda: self.failed  # noqa: E731
        self._gateway = Gateway(self.address, None if self.config.insecure else self.ca_bundle)
        self._gateway.open()
        console = Console(self._gateway, lambda: self.hub.last_id)
        metrics = MetricsPage(self.metrics, self.hub, self._readers, failed, self._leading,
                              lambda: self._manager.unplaceable, self._last_heard)
        self._front = HttpFront(failed, metrics, console)
        bound = await self._front.start(self.config.http, self._http_ssl)
        self.http_url = f"{'https' if self._http_ssl else 'http'}://{bound}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, bound + "\n", durable=False)
        log.info("console and /metrics on %s", self.http_url)

    def _http_tls(self) -> ssl.SSLContext | None:
        """--http-tls-cert/--http-tls-key, loaded (a bad pair stops the start, saying why)."""
        if self.config.http_tls_cert is None or self.config.http_tls_key is None:
            return None
        try:
            return tls_context(self.config.http_tls_cert, self.config.http_tls_key)
        except ValueError as exc:
            raise ConfigError(f"--http-tls-cert/--http-tls-key: {exc}; pass a PEM certificate and its "
                              "private key") from exc

    async def _compact(self) -> None:
        """Delete events past the retention, on the writer thread, every so often."""
        retention = self.config.event_retention
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(60.0, max(0.5, retention / 4)))
            oldest = await loop.run_in_executor(self._writer, self.store.compact_events, time.time() - retention)
            self.hub.oldest_id = oldest if oldest is not None else self.hub.last_id + 1

    async def _on_failure(self, core: Core) -> None:
        """The database refused a write, so the engine is ahead of it: it changes nothing more.
        A replica steps down (its lease loop takes the lead again, with an engine restored
        from the database, once the database takes writes). A single server on SQLite stays up
        to tell every caller why (UNAVAILABLE with the cause and the fix), health says
        NOT_SERVING, agents and watchers are let go; a restart resumes from the database once
        it accepts writes."""
        await core.dead.wait()
        if self.leadership is not None:
            await self.leadership.lost(str(core.failed), core.term.epoch if core.term is not None else None)
            return
        await set_health(self._health, serving=False)
        self.hub.close()
        if self._providers is not None:
            self._providers.close_all()

    async def _supervise(self) -> None:
        """Hold providers to their promised heartbeats and check on overdue tasks. Each tick
        says how late it came: the server was behind (busy, starved of CPU, or blocked) for that
        long, and no provider is blamed for the server's own silence; past STALL it is logged."""
        loop = asyncio.get_running_loop()
        interval = self.config.supervise_interval
        while True:
            due = loop.time() + interval
            await asyncio.sleep(interval)
            late = loop.time() - due
            if late > STALL:
                log.warning("the server did not run for %.1fs (starved of CPU, or blocked); providers' silences "
                            "over that time are not held against them", late)
            self.core.enqueue(lambda engine, late=late: engine.supervise(late))

    def _write_address_file(self) -> None:
        path = self.config.address_file
        if path is None:
            return
        write_atomic(path, self.address + "\n" + (self.agent_address + "\n" if not self.config.insecure else ""),
                     durable=False)

    async def wait(self) -> None:
        """Until the server stops (after a database failure too: it stays up to say why)."""
        if self._grpc is not None:
            await self._grpc.wait_for_termination()

    @property
    def failed(self) -> BaseException | None:
        """Why a single server stopped taking changes (a replica steps down instead)."""
        if self.replicated:
            return None
        return self.core.failed if self.core is not None else None

    @property
    def role(self) -> str:
        return "leader" if self.core is not None else "follower"

    def _last_heard(self) -> dict[str, float]:
        """When each connected provider was last heard from (only the leader has an engine)."""
        return self.core.last_heard() if self.core is not None else {}

    def _leading(self) -> tuple[bool, int]:
        core = self.core
        return core is not None, core.term.epoch if core is not None and core.term is not None else 0

    def _audit(self, row: dict) -> None:
        """Audit rows commit with the leader's next batch; a follower forwards what changes
        anything, and the leader records it."""
        if self.core is not None:
            self.core.audit(row)

    def _single(self):
        return single(self._claims.replica_id, self.address, self.agent_address, self._started)

    def _replicas(self):
        """For ServerService: the lease and the replicas, as the database has them (a
        single server on SQLite: this one, leading)."""
        if not self.replicated:
            return None
        store = LeaseStore(self.store.db)
        return store.leader(), store.replicas(), self.config.lease, self.me.id

    async def stop(self, grace: float = 1.0) -> None:
        await self._health.enter_graceful_shutdown()
        if self.access is not None:
            self.access.stop_refresh()
        self._stop_background()
        await self._stop_notifier()
        if self._tailer is not None:
            await self._tailer.stop()
        self.hub.close()
        if self._front is not None:
            await self._front.stop()
            await self._gateway.close()
        if self._grpc is not None:
            await self._grpc.stop(grace)
        if self.core is not None:
            await self.core.stop()
        if self.leadership is not None:
            await self.leadership.stop()  # lets the lease go: another replica leads at once
        if self._forwarder is not None:
            await self._forwarder.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self.store.close)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=False)
        if self._claims is not None:
            self._claims.release()
