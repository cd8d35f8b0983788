"""`jobplane summary [--filter F]`: how many jobs are in each normalized status."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "summary",
        help="count jobs per normalized status (the dashboard)",
        description="Count the jobs matching a filter in each normalized status.",
    )
    parser.add_argument("--filter", default="", metavar="F",
                        help="as for `jobs list`, e.g. `name=nightly*` (default: every job you can see)")
    parser.set_defaults(run=run)
    add_server_option(parser)
    add_output_option(parser)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        summary = client.summarize_jobs(filter=args.filter)
    if wants_json(args):
        print(output.json_document(summary))
    elif summary.total:
        rows = [(output.status(c.status), c.count) for c in summary.counts] + [("TOTAL", summary.total)]
        print(output.table(("STATUS", "JOBS"), rows))
    else:
        print("no jobs" + (f" match {args.filter!r}" if args.filter else ""))
    return EXIT_OK
