"""`jobplane summary [--filter F]`: how many jobs are in each normalized status."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.command import (
    EXIT_OK,
    add_output_option,
    add_query_options,
    add_server_option,
    connect,
    wants_json,
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "summary",
        help="count jobs per normalized status (the dashboard)",
        description="Count the jobs matching a filter in each normalized status.",
    )
    add_query_options(parser, "jobs", sort=False)
    parser.set_defaults(run=run)
    add_server_option(parser)
    add_output_option(parser)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        summary = client.summarize_jobs(filter=args.filter, view=args.view)
    if wants_json(args):
        print(output.json_document(summary))
    elif summary.total:
        rows = [(output.status(c.status), c.count) for c in summary.counts] + [("TOTAL", summary.total)]
        print(output.table(("STATUS", "JOBS"), rows))
    else:
        print("no jobs" + (f" match {(args.view + ' ' + args.filter).strip()!r}" if args.filter or args.view else ""))
    return EXIT_OK
