"""`jobplane logs TASK`: a task attempt's output, from the agent that keeps it, live with -f."""

from __future__ import annotations

import argparse
import json
import sys

from jobplane.client.command import EXIT_OK, EXIT_SERVER_ERROR, add_output_option, add_server_option, connect, wants_json
from jobplane.client.errors import Unavailable
from jobplane.client.flags import name_fields


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "logs",
        help="print a task's output (stdout, or --stderr), following it with -f",
        description="Print a task attempt's output as the agent that ran it keeps it (the whole of it, up "
                    "to the agent's --log-max-bytes per stream, for its --log-retention). With -f, keep "
                    "printing while the attempt runs and end when it ends, like `kubectl logs -f`.",
    )
    parser.add_argument("task_id", metavar="TASK", help="the task's id (`jobplane tasks list JOB` shows them)")
    parser.add_argument("--attempt", type=_attempt, default=0, metavar="N",
                        help="which attempt (default: the latest)")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="keep printing while the attempt runs; end when it ends")
    parser.add_argument("--stderr", action="store_true", help="print its stderr instead of its stdout")
    parser.set_defaults(run=run)
    name_fields(parser, {"attempt": "--attempt"})
    add_server_option(parser)
    add_output_option(parser)


def run(args: argparse.Namespace) -> int:
    shown = 0
    with connect(args) as client:
        try:
            for chunk in client.logs(args.task_id, attempt=args.attempt, follow=args.follow, stderr=args.stderr):
                if chunk.offset > shown and shown == 0:
                    print(f"jobplane: the first {chunk.offset} bytes of this output were rotated away on "
                          f"{chunk.provider_id} (its --log-max-bytes); showing the rest", file=sys.stderr)
                _show(chunk, wants_json(args))
                shown = chunk.offset + len(chunk.data)
        except Unavailable as error:
            if "provider" not in error.message:  # the server itself is out of reach: the CLI says so
                raise
            print(f"jobplane: {error.message}", file=sys.stderr)
            return EXIT_SERVER_ERROR
    return EXIT_OK


def _show(chunk, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"attempt": chunk.attempt, "provider_id": chunk.provider_id, "offset": chunk.offset,
                          "data": chunk.data.decode("utf-8", errors="replace")}), flush=True)
        return
    sys.stdout.buffer.write(chunk.data)
    sys.stdout.buffer.flush()


def _attempt(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an attempt number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value
