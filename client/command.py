"""What every CLI command shares: the --server and -o options, the client they lead to, exit codes."""

from __future__ import annotations

import argparse

from jobplane.client.sync import Client

EXIT_OK = 0
EXIT_JOB_FAILED = 1  # the job ended FAILED or CANCELLED (submit --watch, jobs get --wait)
EXIT_BAD_INPUT = 2  # usage, a bad job file, INVALID_ARGUMENT
EXIT_SERVER_ERROR = 3  # NOT_FOUND, UNAVAILABLE and every other server error
EXIT_INTERRUPTED = 130


def add_server_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="ADDR",
        help="server address host:port (default: $JOBPLANE_SERVER, then the local `jobplane up`, "
        "then localhost:7070)",
    )


def add_output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default="table",
        help="`table` for people (default) or `json`: one document, or JSON lines for streams",
    )


def connect(args: argparse.Namespace) -> Client:
    return Client.connect(args.server)


def wants_json(args: argparse.Namespace) -> bool:
    return args.output == "json"
