"""`jobplane up`: a server and local agents on this machine, until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources
from pathlib import Path

from jobplane.client import output
from jobplane.client.channel import default_data_dir, read_up_state, up_state_path
from jobplane.arguments import whole_number
from jobplane.client.command import EXIT_BAD_INPUT, EXIT_JOB_FAILED, EXIT_OK
from jobplane.client.local import (
    INSECURE_WARNING,
    Child,
    LocalConfig,
    LocalPlane,
    LocalPlaneError,
    exit_report,
    sigterm_as_interrupt,
)
from jobplane.files import write_atomic
from jobplane.resources import check_custom_name, parse_memory

EXIT_PLANE_FAILED = EXIT_JOB_FAILED  # "what you asked for did not work"
DEFAULT_HTTP_PORT = 7080


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "up",
        help="run a server and local agents on this machine until Ctrl-C",
        description="Run an embedded control plane: a server (SQLite in DATA_DIR) and N local agents. "
        "Other jobplane commands on this machine find it through DATA_DIR/up.json.",
    )
    parser.add_argument(
        "--listen", default="127.0.0.1:7070", metavar="ADDR", help="server address; port 0 picks one (default: %(default)s)"
    )
    parser.add_argument(
        "--agents", type=whole_number(0), default=2, metavar="N", help="local agents to run (default: %(default)s)"
    )
    parser.add_argument(
        "--slots", type=whole_number(1), default=2, metavar="N", help="tasks each agent runs at once (default: %(default)s)"
    )
    parser.add_argument("--cpus", type=_amount(float), metavar="N",
                        help="CPUs each agent advertises for tasks' requests (default: detected)")
    parser.add_argument("--memory", type=_amount(parse_memory), metavar="SIZE",
                        help="memory each agent advertises, e.g. 16GiB (default: detected)")
    parser.add_argument("--gpus", type=_amount(int), metavar="N", help="GPUs each agent advertises (default: detected)")
    parser.add_argument("--resource", dest="resources", action="append", default=[], metavar="NAME=N", type=_resource,
                        help="a custom countable resource each agent advertises, e.g. license_x=2; repeatable")
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="database, CA, admin token, logs and up.json (default: $JOBPLANE_HOME or ~/.local/share/jobplane)",
    )
    parser.add_argument(
        "--http", metavar="ADDR", default=None,
        help="where the web console and Prometheus /metrics listen (default: port 7080 on the --listen host; "
        "a free port when --listen's port is 0)",
    )
    parser.add_argument("--no-http", action="store_true", help="no web console and no /metrics")
    parser.add_argument("--http-tls-cert", type=Path, metavar="PEM",
                        help="serve the console and /metrics over HTTPS with this certificate (chain); "
                        "with --http-tls-key")
    parser.add_argument("--http-tls-key", type=Path, metavar="PEM", help="the private key of --http-tls-cert")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext and no authentication (everyone is admin): only for debugging, e.g. with grpcurl -plaintext",
    )
    parser.set_defaults(run=run)


def _amount(parse):
    """An argparse type: a non-negative amount as `parse` reads it (kept as the text given)."""
    def check(text: str) -> str:
        try:
            value = parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return text
    return check


def _resource(text: str) -> str:
    name, _, count = text.partition("=")
    why = check_custom_name(name) or ("" if count.isdigit() and int(count) >= 1 else
                                      f"expected NAME=N with N at least 1 (e.g. license_x=2), got {text!r}")
    if why:
        raise argparse.ArgumentTypeError(why)
    return text


def _capacity_args(args: argparse.Namespace) -> tuple[str, ...]:
    """The capacity flags each local agent gets (jobplane-agent checks --resource's NAME=N)."""
    out = [arg for name in ("cpus", "memory", "gpus") if (value := getattr(args, name)) is not None
           for arg in (f"--{name}", value)]
    return tuple(out + [arg for r in args.resources for arg in ("--resource", r)])


def run(args: argparse.Namespace) -> int:
    if why := _http_tls_problem(args):
        print(f"jobplane up: {why}", file=sys.stderr)
        return EXIT_BAD_INPUT
    data_dir = args.data_dir or default_data_dir()
    state_path = up_state_path(data_dir)
    if state := read_up_state(state_path):
        print(
            f"jobplane up: already running for {data_dir} (pid {state['pid']}, server {state['server']}); "
            "stop it first, or pass another --data-dir",
            file=sys.stderr,
        )
        return EXIT_PLANE_FAILED
    config = LocalConfig(data_dir=data_dir, listen=args.listen, agents=args.agents, slots=args.slots,
                         insecure=args.insecure, http=_http_address(args), agent_args=_capacity_args(args),
                         http_tls=(args.http_tls_cert, args.http_tls_key) if args.http_tls_cert else None)
    with sigterm_as_interrupt():
        with LocalPlane(config) as plane:
            try:
                code = _serve(plane, state_path)
            finally:
                state_path.unlink(missing_ok=True)
            print("stopping the agents and the server...", flush=True)
        print("stopped")
    return code


def _serve(plane: LocalPlane, state_path: Path) -> int:
    try:
        address = plane.start()
        if plane.config.insecure:
            print(INSECURE_WARNING.format(address=address), file=sys.stderr, flush=True)
        with plane.connect() as client:
            plane.wait_for_agents(client)  # announce only once jobs can be accepted
        _write_state(state_path, up_state(plane))
        print(_banner(plane, state_path), flush=True)
        server = _supervise(plane)
    except KeyboardInterrupt:
        print()
        return EXIT_OK
    except LocalPlaneError as error:
        print(f"jobplane up: {error}", file=sys.stderr)
        return EXIT_PLANE_FAILED
    print(f"jobplane up: {exit_report(server)}", file=sys.stderr)
    return EXIT_PLANE_FAILED


def _supervise(plane: LocalPlane) -> Child:
    """Until the server stops (returned): start again each agent that is killed (or crashes on a
    signal), as a service manager would, so that it takes back its tasks; leave stopped one that
    the server refused (e.g. `providers revoke`) or that died at once, saying why."""
    while (child := plane.wait_for_exit()) is not plane.server:
        if plane.restartable(child):
            print(f"jobplane up: {child.describe_exit()}; starting it again (same name and state directory: it "
                  "takes back the tasks it left running, or they continue on another agent)", file=sys.stderr,
                  flush=True)
            plane.restart(child)
        else:
            print(f"jobplane up: {exit_report(child, f'{child.uptime():.1f}s after it started')}\n"
                  f"jobplane up: not starting {child.name} again; the server and the other agents go on "
                  "(Ctrl-C stops them)", file=sys.stderr, flush=True)
            plane.retire(child)
    return child


def _http_tls_problem(args: argparse.Namespace) -> str:
    """Why --http-tls-cert/--http-tls-key cannot be used as given ("" if they can, or are not)."""
    if (args.http_tls_cert is None) != (args.http_tls_key is None):
        return "--http-tls-cert and --http-tls-key go together; pass both"
    if args.http_tls_cert is not None and args.no_http:
        return "--http-tls-cert: --no-http leaves no console to serve over TLS; drop one of them"
    return ""


def _http_address(args: argparse.Namespace) -> str:
    """--http, else port 7080 on the --listen host (a free port if --listen picks one); "" for --no-http."""
    if args.no_http:
        return ""
    if args.http:
        return args.http
    host, _, port = args.listen.rpartition(":")
    return f"{host}:{DEFAULT_HTTP_PORT if port != '0' else 0}"


def up_state(plane: LocalPlane) -> dict:
    """What up.json tells other commands on this machine: the address, and how to authenticate."""
    state = {"server": plane.address, "pid": os.getpid(), "insecure": plane.config.insecure}
    if plane.console_url:
        state["console"] = plane.console_url
    if not plane.config.insecure:
        state.update(ca=str(plane.ca_bundle), token_file=str(plane.admin_token_file))
    return state


def _write_state(path: Path, state: dict) -> None:
    write_atomic(path, json.dumps(state) + "\n", durable=False)  # readers never see half a file


def _banner(plane: LocalPlane, state_path: Path) -> str:
    config = plane.config
    agents = ", ".join(plane.agent_names) or "none"
    if config.data_dir == default_data_dir():
        finding = f"other jobplane commands on this machine find it through {state_path}"
    else:
        finding = f"point other commands at it: export JOBPLANE_HOME={config.data_dir}"
    security = (
        "INSECURE: plaintext, no authentication"
        if config.insecure
        else f"TLS; CA {plane.ca_bundle}, admin token {plane.admin_token_file}"
    )
    return "\n".join(
        [
            f"jobplane is up: server on {plane.address}, {output.count(config.agents, 'agent')} ({agents}) "
            f"with {output.count(config.slots, 'slot')} each",
            f"  data and logs:  {config.data_dir} (logs in {plane.log_dir})",
            f"  security:       {security}",
            *([f"  console:        {plane.console_url} (sign in with "
               f"{'any token' if config.insecure else 'the token in ' + str(plane.admin_token_file)}); "
               f"Prometheus metrics at {plane.console_url}/metrics"] if plane.console_url else []),
            f"  submit a job:   jobplane submit {example_path('hello.toml')} --watch",
            "  look around:    jobplane jobs list | jobplane providers list | jobplane watch",
            f"  {finding}",
            "Press Ctrl-C to stop.",
        ]
    )


def example_path(name: str) -> str:
    """Where an example job file is on disk (just its name if the package is not on disk)."""
    example = resources.files("jobplane.examples") / name
    return str(example) if isinstance(example, Path) else name
