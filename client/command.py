"""What every CLI command shares: the --server, credential and -o options, the client they lead to, exit codes."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

from jobplane.arguments import whole_number
from jobplane.client.channel import locate_credentials, resolve_addresses
from jobplane.client.credentials import Credentials
from jobplane.client.flags import name_fields
from jobplane.client.sync import Client

EXIT_OK = 0
EXIT_JOB_FAILED = 1  # the job ended FAILED or CANCELLED (submit --watch, jobs get --wait)
EXIT_BAD_INPUT = 2  # usage, a bad job file, INVALID_ARGUMENT
EXIT_SERVER_ERROR = 3  # NOT_FOUND, UNAVAILABLE and every other server error
EXIT_INTERRUPTED = 130

T = TypeVar("T")


GLOBAL_PREFIX = "global_"  # where the options given before the subcommand land (see apply_global_options)


def add_server_option(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    """--server and the credentials to present to it; `top_level`: on `jobplane` itself, before
    the subcommand, where they are kept apart until apply_global_options merges them."""
    def where(name: str) -> dict:
        return {"dest": GLOBAL_PREFIX + name, "default": argparse.SUPPRESS} if top_level else {}

    parser.add_argument(
        "--server",
        metavar="ADDR",
        help="server address host:port, or the addresses of its replicas comma-separated "
        "(a:7070,b:7070,c:7070: a call goes on to the next when one is down) "
        "(default: $JOBPLANE_SERVER, then the local `jobplane up`, then localhost:7070)",
        **where("server"),
    )
    security = parser.add_argument_group(
        "credentials",
        "Default: $JOBPLANE_TOKEN, $JOBPLANE_CA, $JOBPLANE_INSECURE=1; then, for a server on this machine, "
        "the running `jobplane up` and the server's data directory (ca-bundle.crt, admin.token).",
    )
    token = security.add_mutually_exclusive_group()
    token.add_argument("--token", metavar="SECRET", help="API token (or @FILE to read it from FILE)",
                       **where("token"))
    token.add_argument("--token-file", metavar="FILE", help="read the API token from FILE", **where("token_file"))
    security.add_argument("--ca", metavar="FILE", help="PEM CA bundle to trust (the server's DATA_DIR/ca-bundle.crt)",
                          **where("ca"))
    security.add_argument("--cert", metavar="FILE", help="PEM client certificate (with --key) instead of a token",
                          **where("cert"))
    security.add_argument("--key", metavar="FILE", help="PEM private key of --cert", **where("key"))
    security.add_argument(
        "--insecure", action="store_true", help="plaintext, no credentials: only for a server run with --insecure",
        **where("insecure"),
    )


def apply_global_options(args: argparse.Namespace) -> argparse.Namespace:
    """Give the subcommand the options written before it (`jobplane --server H:P jobs list`);
    one written after the subcommand wins over the same one before it."""
    for name, value in list(vars(args).items()):
        if name.startswith(GLOBAL_PREFIX):
            delattr(args, name)
            own = name.removeprefix(GLOBAL_PREFIX)
            if getattr(args, own, None) in (None, False):
                setattr(args, own, value)
    if getattr(args, "output", "") is None:  # -o given neither after the subcommand nor before it
        args.output = DEFAULT_OUTPUT
    return args


FILTER_HELP = {
    "jobs": "keys: status, state, name, owner, environment, provider, priority, id, label.KEY, raw.KEY, "
            "submitted, started, ended",
    "tasks": "keys: status, state, name, group, job, provider, environment, attempt, exit_code, raw.KEY, "
             "owner, label.KEY, started, ended",
    "events": "keys: status, type, environment, provider, raw_status, raw.KEY, job, task, attempt, time, "
              "and the job's owner, name, priority, label.KEY",
}


def add_query_options(parser: argparse.ArgumentParser, what: str, *, sort: bool = True) -> None:
    """--filter, --sort and --view for commands that list or watch `what` (jobs, tasks, events)."""
    parser.add_argument(
        "--filter", default="", metavar="F",
        help=f"terms that must all hold, e.g. `status=FAILURE,UNKNOWN label.team=etl submitted>=-1d`; "
        f"ops = != < <= > >=, * and ? wildcards, \"quoted values\", times as 2026-11-21T09:00Z or -2h; "
        f"{FILTER_HELP[what]}")
    if sort:
        parser.add_argument("--sort", default="", metavar="KEYS",
                            help="sort keys, comma-separated, - for descending, e.g. `--sort=status,-submitted`")
    parser.add_argument("--view", default="", metavar="NAME",
                        help="apply your saved view NAME (`jobplane views list`); --filter narrows it")
    name_fields(parser, {"filter": "--filter", "order_by": "--sort", "view": "--view"})


def time_argument(text: str) -> float:
    """An ISO 8601 time on the command line (a date, or a date and time; local time unless it
    names a zone) as Unix seconds; argparse reports anything else as a usage error."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time like 2026-09-30T12:00+02:00, got {text!r}") from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


DEFAULT_OUTPUT = "table"


def add_output_option(parser: argparse.ArgumentParser, *, top_level: bool = False, wide: bool = False) -> None:
    """-o table|json; `wide`: also -o wide, a table with more columns."""
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "wide", "json") if wide else ("table", "json"),
        # None after the subcommand: an explicit `-o table` there wins over `-o json` before it
        default=argparse.SUPPRESS if top_level else None,
        dest=GLOBAL_PREFIX + "output" if top_level else "output",
        help="`table` for people (default)" + (", `wide` (a table with more columns)" if wide else "")
        + " or `json`: one document, or JSON lines for streams",
    )


def credentials(args: argparse.Namespace) -> Credentials:
    """What `connect` presents (to the first replica listed): the command line's credentials,
    completed by discovery."""
    given = Credentials.from_options(
        token=_token_option(args),
        ca=getattr(args, "ca", None),
        cert=getattr(args, "cert", None),
        key=getattr(args, "key", None),
        insecure=getattr(args, "insecure", False),
    )
    return locate_credentials(resolve_addresses(getattr(args, "server", None))[0], given)


def connect(args: argparse.Namespace, *, timeout: float = 10.0) -> Client:
    """A client for the command's --server and credentials (CredentialsError, exit 2, if unusable);
    `timeout`: each call's deadline in seconds."""
    return Client.connect(args.server, token=_token_option(args), ca=args.ca, cert=args.cert, key=args.key,
                          insecure=args.insecure, timeout=timeout)


def _token_option(args: argparse.Namespace) -> str | None:
    token_file = getattr(args, "token_file", None)
    return f"@{token_file}" if token_file else getattr(args, "token", None)


def wants_json(args: argparse.Namespace) -> bool:
    return args.output == "json"


DEFAULT_LIMIT = 50


def add_limit_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--limit and --all for a list that may be long: the first page by default, like squeue."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--limit", type=_positive, default=DEFAULT_LIMIT, metavar="N",
                       help=f"show the first N {what} (default: %(default)s)")
    group.add_argument("--all", action="store_true", help=f"show every {what.rstrip('s')} that matches")


def first(items: Iterable[T], args: argparse.Namespace) -> tuple[list[T], bool]:
    """The first --limit items (all with --all), and whether more match."""
    if args.all:
        return list(items), False
    taken = list(itertools.islice(items, args.limit + 1))
    return taken[:args.limit], len(taken) > args.limit


def page_for(args: argparse.Namespace) -> int:
    """A page that holds --limit and the one after it (whether more match), in one call."""
    return 1000 if args.all else min(1000, args.limit + 1)


def more_note(shown: int, what: str) -> str:
    """`(the first 50 jobs; more match: ...)`; `what` is plural (`(the first job; ...)` for one)."""
    first = what.rstrip("s") if shown == 1 else f"{shown} {what}"
    return f"(the first {first}; more match: --limit N for more, --all for every one)"


_positive = whole_number(1, " (or --all for every one)")
