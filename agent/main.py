"""The `jobplane-agent` command: parse flags, configure logging, run an Agent until a signal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from jobplane import __version__
from jobplane.arguments import whole_number
from jobplane.connect import CA_BUNDLE_FILE, default_data_dir, read_secret, resolve_target
from jobplane.logs import LOG_FORMATS, configure as configure_logging
from jobplane.replicas import split_addresses
from jobplane.resources import check_custom_name, parse_memory

from . import cgroups
from .agent import Agent
from .config import DEFAULT_LOG_RETENTION, AgentConfig, is_address
from .logstore import DEFAULT_MAX_BYTES, MIN_MAX_BYTES
from .credentials import ENROLL_HINT, identity_dir
from .environment import find_program
from .errors import AgentError
from .identity import IdentityStore

log = logging.getLogger("jobplane.agent")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; 0 after a clean shutdown, 1 if the server refused it."""
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format, fields={"provider_id": args.name})
    config = config_from_args(args)
    _watch_children_with_pidfds()
    try:
        asyncio.run(_serve(config))
    except AgentError as exc:
        log.error("%s", exc)
        return 1
    return 0


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's, told the terminal's width: left to find it, it imports shutil, which loads
    bz2 and lzma into the agent for good (argparse makes a formatter for every flag added)."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(sys.stdout.fileno()).columns
        except (ValueError, OSError):
            columns = 80
        super().__init__(prog, width=columns - 2)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, validated; argparse exits with a message naming a bad flag."""
    parser = argparse.ArgumentParser(
        prog="jobplane-agent",
        description="Connect to a jobplane server and run the tasks it assigns.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--server", default=resolve_target(None), type=_addresses,
                        help="HOST:PORT of the server, or of each of its replicas comma-separated "
                             "(a:7070,b:7070,c:7070: the agent streams to the one that leads and "
                             "moves on when it is gone) (default: $JOBPLANE_SERVER or %(default)s)")
    parser.add_argument("--name", default=socket.gethostname(),
                        help="unique agent name (default: the hostname, %(default)s)")
    parser.add_argument("--slots", type=_positive_int, default=os.cpu_count() or 1,
                        help="tasks run at once (default: CPU count, %(default)s)")
    parser.add_argument("--queue-ahead", type=_non_negative_int, default=None, metavar="N",
                        help="assigned tasks held queued beyond --slots, started as slots free; the server "
                             "queues only quick tasks ahead (under 0.1 s each, no more than this agent "
                             "finished in the last 0.25 s), so they need not wait for its round trip "
                             "(default: 8 per slot; 0: none)")
    parser.add_argument("--label", dest="labels", action="append", type=_label, default=[],
                        metavar="K=V", help="a label tasks can require; repeatable")
    parser.add_argument("--cpus", type=_non_negative_float, default=None, metavar="N",
                        help="CPUs tasks' requests are packed into (default: those this process may use)")
    parser.add_argument("--memory", type=_memory, default=None, metavar="SIZE",
                        help="memory tasks' requests are packed into, e.g. 16GiB (default: MemTotal)")
    parser.add_argument("--gpus", type=_non_negative_int, default=None, metavar="N",
                        help="GPUs to advertise (default: /dev/nvidiaN devices, else nvidia-smi -L, else 0)")
    parser.add_argument("--resource", dest="resources", action="append", type=_resource, default=[],
                        metavar="NAME=N", help="a custom countable resource tasks can request, e.g. "
                                               "license_x=2; repeatable")
    parser.add_argument("--heartbeat", type=_positive_float, default=1.0, metavar="SECONDS",
                        help="heartbeat interval promised to the server (default: %(default)s)")
    parser.add_argument("--kill-grace", type=_non_negative_float, default=3.0, metavar="SECONDS",
                        help="SIGTERM to SIGKILL delay when stopping a command (default: %(default)s)")
    parser.add_argument("--containment", choices=cgroups.CHOICES, default=cgroups.AUTO,
                        help="how each command attempt's processes are held together so that "
                             "none outlives it: a cgroup v2 per attempt, or the keeper's guard "
                             "as their subreaper; auto takes a cgroup where the machine "
                             "allows it (default: %(default)s; --version says which is in force)")
    parser.add_argument("--stop-wait", type=_non_negative_float, default=0.0, metavar="SECONDS",
                        help="on SIGTERM/SIGINT, let running tasks finish for up to this long "
                             "before the server hands them on to other agents (default: 0, "
                             "hand them on at once)")
    parser.add_argument("--log-max-bytes", type=_log_max_bytes, default=DEFAULT_MAX_BYTES, metavar="BYTES",
                        help="bytes of each command attempt's stdout and of its stderr kept on "
                             "disk (the newest; older output is rotated away) (default: %(default)s)")
    parser.add_argument("--log-retention", type=_positive_float, default=DEFAULT_LOG_RETENTION, metavar="SECONDS",
                        help="remove an attempt's kept output this long after it was last written "
                             "(default: %(default)s, 7 days)")
    parser.add_argument("--work-dir", default=os.getcwd(), metavar="DIR",
                        help="working directory of tasks without a cwd (default: current directory)")
    parser.add_argument("--state-dir", default="", metavar="DIR",
                        help="where running commands keep their pid, output and exit status, so "
                             "that the agent started again after a crash adopts them "
                             "(default: WORK_DIR/.jobplane-agent/NAME)")
    parser.add_argument("--standby", action="store_true",
                        help="take work only when the server's queued demand exceeds active capacity")
    parser.add_argument("--facts-file", default="", metavar="PATH",
                        help="JSON file of extra live facts (name -> number) sent with every "
                             "heartbeat, re-read each time; entries override "
                             "load_average/free_memory_bytes")
    parser.add_argument("--slurm", action="store_true",
                        help="submit tasks of the slurm environment to Slurm with sbatch (on the PATH) "
                             "and advertise the label slurm=true, which those tasks require; --slots is "
                             "then how many jobs it keeps in Slurm at once")
    parser.add_argument("--slurm-poll-interval", type=_positive_float, default=5.0, metavar="SECONDS",
                        help="seconds between the one squeue (and sacct) call that follows all this "
                             "agent's Slurm jobs (default: %(default)s)")
    parser.add_argument("--metrics", default=None, type=_metrics_address, metavar="HOST:PORT",
                        help="serve Prometheus metrics (slots busy, spawn latency, scan durations, …) at "
                             "http://HOST:PORT/metrics; port 0 picks one and the log says which "
                             "(default: off)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                        help="`text` for people, or `json`: one object per line with the provider (this agent), "
                             "task and attempt ids as fields (default: %(default)s)")
    parser.add_argument("--version", action="store_true",
                        help="print the version and the containment in force here, and exit")
    _add_security_flags(parser)
    args = parser.parse_args(argv)
    if args.version:
        print(version_text(args.containment))
        parser.exit()
    if not os.path.isdir(args.work_dir):
        parser.error(f"argument --work-dir: {args.work_dir!r} is not a directory")
    _check_security(parser, args)
    if args.slurm and find_program("sbatch") is None:
        parser.error("argument --slurm: sbatch is not on the PATH; install Slurm's client commands "
                     "(sbatch, squeue, sacct, scancel) or drop --slurm")
    return args


def version_text(containment: str = cgroups.AUTO) -> str:
    """The version, and how command attempts are contained on this machine (and why)."""
    found = cgroups.detect(containment)
    if containment == cgroups.CGROUP and found.kind != cgroups.CGROUP:
        return (f"jobplane-agent {__version__}\ncontainment: none ({found.why}; with "
                "--containment cgroup the agent does not start)")
    return f"jobplane-agent {__version__}\ncontainment: {found.describe()}"


def _add_security_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "security", "Agents enroll once with a join token and then connect with mutual TLS; the "
        "key and certificate are kept in the state directory and renewed, so a restarted agent "
        "needs no new token.")
    how = group.add_mutually_exclusive_group()
    how.add_argument("--token", metavar="SECRET",
                     help="join token from `jobplane tokens create --role agent`, used only if this "
                          "agent has no valid certificate yet; @PATH reads it from a file "
                          "(default: $JOBPLANE_TOKEN)")
    how.add_argument("--token-file", metavar="PATH", help="read the join token from this file")
    how.add_argument("--insecure", action="store_true",
                     help="plaintext to a server started with --insecure: no enrollment, no "
                          "encryption, no proof of who anyone is")
    group.add_argument("--ca", metavar="PATH",
                       help="CA bundle that verifies the server when enrolling (default: $JOBPLANE_CA, "
                            f"else {default_data_dir() / CA_BUNDLE_FILE} if it exists)")


def _check_security(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Resolve the token and CA into args.token and args.ca; refuse what cannot work."""
    if args.insecure:
        if args.ca:
            parser.error("argument --ca: not allowed with --insecure (plaintext verifies nothing)")
        args.token, args.ca = "", ""
        return
    args.token = _token(parser, args)
    args.ca = _ca_file(parser, args.ca)
    if IdentityStore(identity_dir(config_from_args(args))).exists():
        return  # whether it is still good (server, name, expiry) is checked on start
    if not args.token:
        parser.error(f"this agent is not enrolled yet: {ENROLL_HINT}")
    if not args.ca:
        parser.error("argument --ca: enrolling needs the CA that signed the server's certificate: "
                     "pass --ca PATH (the server's DATA_DIR/ca-bundle.crt) or set JOBPLANE_CA")


def _token(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """--token-file, else --token, else $JOBPLANE_TOKEN; the latter two may be `@PATH` too."""
    if args.token_file:
        source, value = "argument --token-file", f"@{args.token_file}"
    elif args.token:
        source, value = "argument --token", args.token
    else:
        source, value = "$JOBPLANE_TOKEN", os.environ.get("JOBPLANE_TOKEN", "")
    try:
        return read_secret(value) if value else ""
    except ValueError as exc:
        parser.error(f"{source}: {exc}")


def _ca_file(parser: argparse.ArgumentParser, flag: str | None) -> str:
    """--ca, else $JOBPLANE_CA, else the local data directory's bundle if there is one."""
    for path, source in ((flag, "argument --ca"), (os.environ.get("JOBPLANE_CA"), "$JOBPLANE_CA")):
        if path:
            if not os.path.isfile(path):
                parser.error(f"{source}: no such file: {path}")
            return os.path.abspath(path)
    default = default_data_dir() / CA_BUNDLE_FILE
    return str(default) if default.is_file() else ""


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    """The AgentConfig the flags describe."""
    return AgentConfig(
        server=args.server,
        name=args.name,
        slots=args.slots,
        queue_ahead=args.queue_ahead,
        labels=dict(args.labels),
        heartbeat_interval=args.heartbeat,
        kill_grace=args.kill_grace,
        containment=args.containment,
        stop_wait=args.stop_wait,
        work_dir=os.path.abspath(args.work_dir),
        standby=args.standby,
        state_dir=os.path.abspath(args.state_dir) if args.state_dir else "",
        facts_file=os.path.abspath(args.facts_file) if args.facts_file else "",
        token=args.token or "",
        ca_file=args.ca or "",
        insecure=args.insecure,
        slurm=args.slurm,
        slurm_poll_interval=args.slurm_poll_interval,
        log_max_bytes=args.log_max_bytes,
        log_retention=args.log_retention,
        metrics=args.metrics or "",
        log_format=args.log_format,
        cpus=args.cpus,
        memory=args.memory,
        gpus=args.gpus,
        resources=dict(args.resources),
    )


async def _serve(config: AgentConfig) -> None:
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def on_signal(signum: signal.Signals) -> None:
        if stopping:
            log.info("already shutting down")
            return
        log.info("received %s; shutting down", signum.name)
        stopping.append(loop.create_task(agent.stop()))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await agent.run()


def _watch_children_with_pidfds() -> None:
    """On Python 3.11, reap command tasks through pidfds instead of one thread per child.

    It spawns commands about a third faster; Python 3.12 does this by itself (and deprecates
    setting a watcher), and kernels before Linux 5.3 have no pidfds.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return
    asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


_positive_int, _non_negative_int = whole_number(1), whole_number(0)


def _log_max_bytes(text: str) -> int:
    value = _positive_int(text)
    if value < MIN_MAX_BYTES:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_MAX_BYTES} bytes, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None


def _addresses(text: str) -> str:
    if not split_addresses(text):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, or several comma-separated, got {text!r}")
    return text


def _metrics_address(text: str) -> str:
    if not is_address(text):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:9100 (port 0 picks one), got {text!r}")
    return text


def _memory(text: str) -> int:
    try:
        return parse_memory(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _resource(text: str) -> tuple[str, int]:
    name, sep, count = text.partition("=")
    why = check_custom_name(name) if sep else f"expected NAME=N (e.g. license_x=2), got {text!r}"
    if why:
        raise argparse.ArgumentTypeError(why)
    try:
        value = int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected a whole number, got {count!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{name}: must be at least 1, got {value}")
    return name, value


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected K=V, got {text!r}")
    return key, value


if __name__ == "__main__":
    # `python -m jobplane.agent.main` has loaded asyncio with ssl already, importing this module:
    # it runs as `python -m jobplane.agent` does (startup.py), in the same process, exec'd anew.
    os.execv(sys.executable, [sys.executable, "-m", "jobplane.agent", *sys.argv[1:]])
