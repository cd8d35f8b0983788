"""`jobplane watch [JOB] [--from ID]`: follow the event stream."""

from __future__ import annotations

import argparse
import sys
from contextlib import closing

from jobplane.client import output, progress
from jobplane.client.command import (
    EXIT_OK,
    add_output_option,
    add_query_options,
    add_server_option,
    connect,
    wants_json,
)
from jobplane.client.errors import Unavailable


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "watch",
        help="follow events (statuses of jobs, tasks, providers; failovers)",
        description="Print events as they happen, until Ctrl-C; with JOB, only that job's, "
        "from its first event until it ends. Statuses are the normalized ones. Each line starts with "
        "the event's id (for --from). Following a JOB on a terminal (without --filter or --view), one live line counts its tasks per "
        "status, with a progress bar, elapsed time and ETA, and only failures, retries, continuations, "
        "holds and the end are printed above it; piped, or with -o json, every event is a line.",
    )
    parser.add_argument("job", metavar="JOB", nargs="?", default="", help="only this job; stop when it ends")
    parser.add_argument(
        "--from",
        dest="after",
        type=int,
        default=0,
        metavar="ID",
        help="start after event ID (with -o json each line carries its id, to resume from)",
    )
    add_query_options(parser, "events", sort=False)
    add_server_option(parser)
    add_output_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        lines = output.EventLines(with_job=not args.job)
        if args.job and not (args.filter or args.view or wants_json(args)) and progress.is_terminal(sys.stdout):
            view = progress.live_progress(client.get_job(args.job), client.list_tasks(args.job, page_size=1000),
                                          lines, sys.stdout)
        else:
            view = progress.event_lines(output.json_line if wants_json(args) else lines, sys.stdout)
        try:
            with closing(client.watch(args.job, after_event_id=args.after, filter=args.filter,
                                      view=args.view)) as events, view as show:
                for event in events:
                    show(event)
        except KeyboardInterrupt:
            return EXIT_OK  # Ctrl-C is how an open-ended watch ends
    if args.job:
        return EXIT_OK  # the watch of one job ends with it
    raise Unavailable("the server ended the event stream (is it shutting down?)")
