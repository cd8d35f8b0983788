"""`jobplane-server`: run the control plane."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from jobplane.logs import LOG_FORMATS, configure as configure_logging

from .app import Server
from .config import ServerConfig, default_data_dir
from .domain.limits import MAX_TASKS_PER_JOB
from .domain.timing import Calendar
from .errors import ConfigError
from .events import WATCHER_QUEUE_BATCHES

log = logging.getLogger("jobplane.server")


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    p = argparse.ArgumentParser(prog="jobplane-server", description="Run the jobplane control plane.")
    p.add_argument("--listen", default="127.0.0.1:7070", help="HOST:PORT to serve on (port 0 picks a free one)")
    p.add_argument("--data-dir", type=Path, default=None, help="state directory (default $JOBPLANE_HOME or ~/.local/share/jobplane)")
    p.add_argument("--db", default="", help="database URL: sqlite:///PATH (default DATA_DIR/jobplane.db) or postgresql://USER@HOST/DB")
    p.add_argument("--reconnect-grace", type=float, default=1.0, help="seconds a disconnected agent has to come back with its tasks")
    p.add_argument("--restart-grace", type=float, default=0.0, metavar="SECONDS",
                   help="after a server restart, seconds the agents that were connected have to come back with "
                        "their tasks (default 0: twice each agent's longest reconnect pause plus two heartbeats "
                        "and a second; 7s for the jobplane agent's defaults)")
    p.add_argument("--heartbeat-tolerance", type=float, default=2.0,
                   help="a provider silent for longer than its promised heartbeat x this is probed")
    p.add_argument("--probe-deadline", type=float, default=1.0, help="seconds a probed provider has to answer")
    p.add_argument("--standby-idle", type=float, default=5.0, help="seconds an activated standby idles before standing by again")
    p.add_argument("--retry-backoff", type=float, default=1.0, help="first retry delay in seconds (doubles, with jitter)")
    p.add_argument("--retry-backoff-max", type=float, default=60.0, metavar="SECONDS",
                   help="the longest delay between retries (default %(default)s)")
    p.add_argument("--terminate-grace", type=float, default=5.0, metavar="SECONDS",
                   help="a task still running this long past its timeout is ended by the server, its agent "
                        "having failed to (default %(default)s)")
    p.add_argument("--scale-out-hook", default="", metavar="CMD",
                   help="shell command run while queued tasks wait that no provider can take ($JOBPLANE_UNMET_TASKS: "
                        "how many; $JOBPLANE_UNMET: the labels, prerequisites and conditions they want, as JSON)")
    p.add_argument("--scale-in-hook", default="", metavar="CMD",
                   help="shell command run when active providers have run nothing for --scale-in-after seconds and "
                        "no work waits ($JOBPLANE_IDLE_PROVIDERS: their names, space-separated)")
    p.add_argument("--scale-in-after", type=float, default=300.0, metavar="SECONDS",
                   help="idle time after which a provider is offered to the scale-in hook (default %(default)s)")
    p.add_argument("--scale-interval", type=float, default=30.0, metavar="SECONDS",
                   help="the least time between two runs of each scale hook (default %(default)s)")
    p.add_argument("--learn", type=int, default=0, metavar="N",
                   help="a pair of job classes seen together in N transient failures becomes an exclusive conflict "
                        "rule by itself, audited and announced as an event (default 0: never; `conflicts suggest` "
                        "shows the pairs either way)")
    p.add_argument("--max-attempts", type=int, default=1, help="default attempts per task when a job does not say")
    p.add_argument("--max-tasks-per-job", type=int, default=MAX_TASKS_PER_JOB, metavar="N",
                   help="refuse a job that expands to more tasks than this (default: %(default)s)")
    p.add_argument("--timezone", default="UTC",
                   help="IANA time zone continuation timing rules are read in (default: %(default)s)")
    p.add_argument("--period-end", dest="period_ends", action="append", default=[], metavar="MM-DD",
                   help="a fiscal period end for `end_of_period` rules: MM-DD every year or YYYY-MM-DD once; repeatable")
    p.add_argument("--insecure", action="store_true",
                   help="DEBUGGING ONLY: plaintext, no authentication, every caller is admin")
    p.add_argument("--agent-listen", default="", metavar="HOST:PORT",
                   help="mutual-TLS address agents connect to (default: the --listen port + 1)")
    p.add_argument("--tls-san", dest="tls_hosts", action="append", default=[], metavar="NAME",
                   help="another host name or IP clients use to reach the server; repeatable")
    p.add_argument("--ca-cert", type=Path, default=None, metavar="PEM",
                   help="use this existing CA certificate (with --ca-key) instead of the built-in CA")
    p.add_argument("--ca-key", type=Path, default=None, metavar="PEM", help="the existing CA's private key")
    p.add_argument("--rotate-ca", action="store_true",
                   help="start with a new built-in CA; certificates of the old one stay valid until they expire")
    p.add_argument("--agent-cert-ttl", type=float, default=86400.0, metavar="SECONDS",
                   help="lifetime of agent certificates; agents renew at 70%% of it (default: %(default)s)")
    p.add_argument("--max-message-bytes", type=int, default=64 * 1024 * 1024,
                   help="largest request accepted (default: %(default)s)")
    p.add_argument("--submit-rate", type=float, default=50.0, help="SubmitJob calls per second per identity")
    p.add_argument("--enroll-rate", type=float, default=5.0, help="Enroll calls per second per address")
    p.add_argument("--max-streams", type=int, default=64, help="open streams (watches, agent links) per identity")
    p.add_argument("--inventory-ttl", type=float, default=300.0, metavar="SECONDS",
                   help="how long a prerequisite scan result counts as fresh (default: %(default)s)")
    p.add_argument("--request-id-ttl", type=float, default=86400.0, metavar="SECONDS",
                   help="how long a submit's request id gets the same job back on a retry (default: %(default)s)")
    p.add_argument("--event-retention", type=float, default=0.0, metavar="SECONDS",
                   help="delete events older than this (0 = keep them all, the default)")
    p.add_argument("--job-retention", type=float, default=0.0, metavar="SECONDS",
                   help="purge finished jobs (their tasks, attempts and events) this long after they ended "
                        "(0 = keep them all, the default)")
    p.add_argument("--notify-attempts", type=int, default=8, metavar="N",
                   help="tries per job notification (webhook or command) before it is given up "
                        "(default: %(default)s)")
    p.add_argument("--notify-backoff", type=float, default=1.0, metavar="SECONDS",
                   help="pause before a notification's second try, doubling after each failure up to 300 s "
                        "(default: %(default)s)")
    p.add_argument("--watcher-queue", type=int, default=WATCHER_QUEUE_BATCHES, metavar="N",
                   help="batches a watcher may fall behind before it is cut off (default: %(default)s)")
    p.add_argument("--http", default="", metavar="HOST:PORT",
                   help="serve the web console and Prometheus /metrics here (port 0 picks one; default: off)")
    p.add_argument("--http-tls-cert", type=Path, default=None, metavar="PEM",
                   help="serve --http over HTTPS with this certificate (chain first the server's own); "
                        "with --http-tls-key. Cookies are then marked Secure")
    p.add_argument("--http-tls-key", type=Path, default=None, metavar="PEM",
                   help="the private key of --http-tls-cert")
    p.add_argument("--advertise", default="", metavar="HOST:PORT",
                   help="where clients and the other replicas reach this server (default: the bound --listen "
                        "address, a wildcard host replaced by the host name)")
    p.add_argument("--advertise-agent", default="", metavar="HOST:PORT",
                   help="where agents reach this server's mutual-TLS address (default: the --advertise host "
                        "and the bound agent port)")
    p.add_argument("--lease", type=float, default=2.0, metavar="SECONDS",
                   help="replicas on PostgreSQL: how long the leader's lease lasts; it is renewed every third "
                        "of it, and another replica takes over once it runs out (default: %(default)s)")
    p.add_argument("--address-file", type=Path, default=None, help="write HOST:PORT here once listening")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                   help="`text` for people, or `json`: one object per line with the job, task, attempt and "
                        "provider ids as fields (default: %(default)s)")
    a = p.parse_args(argv)
    if a.reconnect_grace < 0:
        p.error("--reconnect-grace must be >= 0")
    if not 0 <= a.restart_grace < float("inf"):
        p.error("--restart-grace must be a number of seconds >= 0 (0: sized from the agents' reconnect backoff)")
    if a.max_attempts < 1:
        p.error("--max-attempts must be >= 1")
    if a.max_tasks_per_job < 1:
        p.error("--max-tasks-per-job must be >= 1")
    for flag in ("heartbeat_tolerance", "probe_deadline"):
        if getattr(a, flag) <= 0:
            p.error(f"--{flag.replace('_', '-')} must be > 0")
    if (a.ca_cert is None) != (a.ca_key is None):
        p.error("--ca-cert and --ca-key go together")
    if a.rotate_ca and a.ca_cert is not None:
        p.error("--rotate-ca rotates the built-in CA; with --ca-cert, rotate your CA yourself")
    if a.agent_cert_ttl < 2:
        p.error("--agent-cert-ttl must be at least 2 seconds")
    if a.event_retention < 0:
        p.error("--event-retention must be >= 0 (0 = keep every event)")
    if not 0 <= a.job_retention < float("inf"):
        p.error("--job-retention must be a number of seconds >= 0 (0 = keep every finished job)")
    if a.http and not _is_address(a.http):
        p.error(f"--http: {a.http!r} is not HOST:PORT; e.g. 127.0.0.1:7080 (port 0 picks a free one)")
    if (a.http_tls_cert is None) != (a.http_tls_key is None):
        p.error("--http-tls-cert and --http-tls-key go together")
    if a.http_tls_cert is not None and not a.http:
        p.error("--http-tls-cert: there is no HTTP listener to serve over TLS; add --http HOST:PORT")
    for flag in ("advertise", "advertise_agent"):
        value = getattr(a, flag)
        if value and (not _is_address(value) or value.rsplit(":", 1)[1] == "0"):
            p.error(f"--{flag.replace('_', '-')}: {value!r} is not HOST:PORT with a port other than 0; "
                    "e.g. a.example.com:7070")
    if not 0.3 <= a.lease <= 600:
        p.error("--lease must be between 0.3 and 600 seconds")
    if a.notify_attempts < 1:
        p.error("--notify-attempts must be >= 1")
    if not 0 < a.notify_backoff <= 3600:
        p.error("--notify-backoff must be a number of seconds between 0 and 3600 (e.g. 1)")
    if a.watcher_queue < 1:
        p.error("--watcher-queue must be >= 1")
    if a.inventory_ttl <= 0:
        p.error("--inventory-ttl must be > 0")
    if a.request_id_ttl <= 0:
        p.error("--request-id-ttl must be > 0 (AIP-155 asks for at least 86400, a day)")
    if a.learn < 0:
        p.error("--learn must be >= 0 (0: never learn conflict rules), e.g. --learn 3")
    if not (a.scale_in_after > 0 and a.scale_interval > 0):
        p.error("--scale-in-after and --scale-interval must be > 0 seconds, e.g. --scale-in-after 300")
    if a.max_message_bytes < 1024 or a.max_streams < 1:
        p.error("--max-message-bytes must be >= 1024 and --max-streams >= 1")
    if a.standby_idle < 0 or a.retry_backoff < 0:
        p.error("--standby-idle and --retry-backoff must be >= 0")
    if not a.retry_backoff <= a.retry_backoff_max < float("inf") or not 0 < a.terminate_grace < float("inf"):
        p.error("--retry-backoff-max must be a number >= --retry-backoff, --terminate-grace a number > 0")
    try:
        Calendar.parse(a.timezone, a.period_ends)
    except ValueError as exc:
        p.error(f"--timezone/--period-end: {exc}")
    configure_logging(a.log_level, a.log_format)
    return ServerConfig(listen=a.listen, data_dir=a.data_dir or default_data_dir(), db_url=a.db,
                        reconnect_grace=a.reconnect_grace, restart_grace=a.restart_grace, heartbeat_tolerance=a.heartbeat_tolerance,
                        probe_deadline=a.probe_deadline, standby_idle=a.standby_idle, retry_backoff=a.retry_backoff, retry_backoff_max=a.retry_backoff_max,
                        terminate_grace=a.terminate_grace,
                        scale_out_hook=a.scale_out_hook, scale_in_hook=a.scale_in_hook,
                        scale_in_after=a.scale_in_after, scale_out_interval=a.scale_interval,
                        default_max_attempts=a.max_attempts, learn_conflicts=a.learn,
                        max_tasks_per_job=a.max_tasks_per_job,
                        address_file=a.address_file, log_format=a.log_format, timezone=a.timezone.strip(),
                        period_ends=tuple(e.strip() for e in a.period_ends), insecure=a.insecure,
                        agent_listen=a.agent_listen, ca_cert=a.ca_cert, ca_key=a.ca_key, rotate_ca=a.rotate_ca, tls_hosts=tuple(a.tls_hosts), agent_cert_ttl=a.agent_cert_ttl,
                        max_message_bytes=a.max_message_bytes, submit_rate=a.submit_rate,
                        enroll_rate=a.enroll_rate, max_streams=a.max_streams, inventory_ttl=a.inventory_ttl,
                        event_retention=a.event_retention, job_retention=a.job_retention,
                        watcher_queue=a.watcher_queue,
                        notify_attempts=a.notify_attempts, notify_backoff=a.notify_backoff,
                        request_id_ttl=a.request_id_ttl, http=a.http, advertise=a.advertise,
                        http_tls_cert=a.http_tls_cert, http_tls_key=a.http_tls_key,
                        advertise_agent=a.advertise_agent, lease=a.lease)


def _is_address(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    return bool(sep) and port.isascii() and port.isdigit() and int(port) <= 65535 and "/" not in host


async def serve(config: ServerConfig) -> int:
    server = Server(config)
    await server.start()
    if config.insecure:
        _tell(config, logging.WARNING, "WARNING: --insecure: plaintext, no authentication, everyone is admin. "
              "Never use this beyond a debugging session on a trusted machine.")
    print(f"jobplane-server listening on {server.address}"
          + ("" if config.insecure else f" (agents: {server.agent_address}, CA: {server.ca_bundle})"), flush=True)
    if server.http_url:
        print(f"jobplane-server: console and /metrics on {server.http_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = loop.create_task(server.wait())
    await asyncio.wait([waiter, loop.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    await server.stop()
    if server.failed is not None:  # the last line of the log says why and what to do
        _tell(config, logging.CRITICAL, f"stopped: {server.failed}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        return asyncio.run(serve(config))
    except ConfigError as exc:
        _tell(config, logging.ERROR, str(exc))
        return 2
    except OSError as exc:
        _tell(config, logging.ERROR, str(exc))
        return 1


def _tell(config: ServerConfig, level: int, message: str) -> None:
    """A line for the operator on stderr: `jobplane-server: MESSAGE`, or a log line when the log is JSON."""
    if config.log_format == "json":
        log.log(level, "%s", message)
    else:
        print(f"jobplane-server: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
