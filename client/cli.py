"""`jobplane`: the command line. Parses arguments, dispatches to a cmd_* module, maps errors to exit codes.

Exit codes: 0 done; 1 the job did not succeed (submit --watch, jobs get --wait) or `up`/`demo`
failed; 2 bad input (usage, a bad job file, unreadable credentials, INVALID_ARGUMENT); 3 any other
server error (UNAUTHENTICATED and PERMISSION_DENIED included).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from jobplane import __version__
from jobplane.client import (
    cmd_alerts,
    cmd_audit,
    cmd_ca,
    cmd_completion,
    cmd_conflicts,
    cmd_continuations,
    cmd_demo,
    cmd_hold,
    cmd_inventory,
    cmd_jobs,
    cmd_logs,
    cmd_policy,
    cmd_providers,
    cmd_rerun,
    cmd_schedules,
    cmd_servers,
    cmd_submit,
    cmd_summary,
    cmd_tasks,
    cmd_tokens,
    cmd_up,
    cmd_version,
    cmd_views,
    cmd_watch,
    cmd_whoami,
)
from jobplane.client.channel import locate_server, transport_hint
from jobplane.client.command import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_SERVER_ERROR,
    add_output_option,
    add_server_option,
    apply_global_options,
    credentials,
)
from jobplane.client.credentials import Credentials
from jobplane.client.flags import in_flags
from jobplane.client.errors import (
    InvalidArgument,
    JobFileError,
    JobplaneError,
    Unauthenticated,
    Unavailable,
)
from jobplane.replicas import split_addresses

COMMAND_GROUPS = (
    cmd_submit, cmd_jobs, cmd_hold, cmd_rerun, cmd_summary, cmd_tasks, cmd_logs, cmd_views, cmd_watch,
    cmd_providers, cmd_inventory, cmd_continuations, cmd_conflicts, cmd_schedules, cmd_alerts, cmd_policy,
    cmd_tokens, cmd_audit, cmd_ca, cmd_whoami, cmd_servers, cmd_version, cmd_completion, cmd_up, cmd_demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobplane",
        description="Submit and follow batch jobs on a jobplane control plane. "
        "New here? `jobplane demo` shows it all in under a minute.",
    )
    parser.add_argument("--version", action="version", version=f"jobplane {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    parser.set_defaults(fields={})  # the request fields a command's flags fill (flags.name_fields)
    # The options every client command takes work before the subcommand too (`jobplane --server H:P jobs list`).
    add_server_option(parser, top_level=True)
    add_output_option(parser, top_level=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = apply_global_options(build_parser().parse_args(argv))
    _configure_logging(args.verbose)
    try:
        return args.run(args)
    except JobFileError as error:
        _complain(str(error))
        return EXIT_BAD_INPUT
    except InvalidArgument as error:
        _complain(f"jobplane: {in_flags(error.message, args.fields)}")
        return EXIT_BAD_INPUT
    except Unavailable as error:
        _complain(_unreachable(args, error))
        return EXIT_SERVER_ERROR
    except Unauthenticated as error:
        _complain(_unauthenticated(args, error))
        return EXIT_SERVER_ERROR
    except JobplaneError as error:
        # The typed errors' messages say what happened; an unexpected code is worth showing.
        _complain(f"jobplane: {error if type(error) is JobplaneError else in_flags(error.message, args.fields)}")
        return EXIT_SERVER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`jobplane watch | head`); say nothing more on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _unreachable(args: argparse.Namespace, error: Unavailable) -> str:
    target = locate_server(getattr(args, "server", None))
    hint = transport_hint(_credentials_used(args), error.message) or (
        "Start one on this machine with `jobplane up`, or point --server or $JOBPLANE_SERVER at a running one."
    )
    addresses = split_addresses(target.address)
    where = (f"any of the jobplane servers at {', '.join(addresses)}" if len(addresses) > 1
             else f"a jobplane server at {target.address}")
    return f"jobplane: cannot reach {where} (from {target.source}): {error.message}\n{hint}"


def _unauthenticated(args: argparse.Namespace, error: Unauthenticated) -> str:
    used = _credentials_used(args)
    sent = f"This client's credentials: {used.origin}." if used.token else "This client sent no token (none given or found)."
    return (
        f"jobplane: {error.message}\n{sent} Pass an API token with --token SECRET, --token-file FILE or "
        "$JOBPLANE_TOKEN; an admin creates one with `jobplane tokens create --role viewer --user NAME`."
    )


def _credentials_used(args: argparse.Namespace) -> Credentials:
    """The credentials the failed call used (none, should a token file have vanished since)."""
    try:
        return credentials(args)
    except InvalidArgument:  # CredentialsError, or a --server that names no address
        return Credentials()


def _complain(message: str) -> None:
    print(message, file=sys.stderr)


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    sys.exit(main())
