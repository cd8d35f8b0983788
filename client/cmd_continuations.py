"""`jobplane continuations list|get`: where the unfinished tasks of lost providers went."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.v1 import continuation_pb2


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "continuations",
        help="see how lost providers' tasks were handed on",
        description="Continuations: when a provider is lost, its unfinished tasks continue elsewhere.",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list continuations", description="List continuations.")
    listing.add_argument("--filter", default="", metavar="F", help="e.g. `provider=local-1`")
    listing.set_defaults(run=run_list)

    get = actions.add_parser("get", help="show one continuation and its tasks", description="Show a continuation.")
    get.add_argument("continuation", metavar="ID", help="continuation id")
    get.set_defaults(run=run_get)

    for parser in (listing, get):
        add_server_option(parser)
        add_output_option(parser)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        continuations = list(client.list_continuations(filter=args.filter))
    if wants_json(args):
        print(output.json_document(continuations))
    elif continuations:
        rows = (
            (c.id, c.provider_id, output.moment(c.failure_time), len(c.tasks), c.reason) for c in continuations
        )
        print(output.table(("ID", "LOST PROVIDER", "FAILED", "TASKS", "REASON"), rows))
    else:
        print("no continuations: no provider has been lost with work on it")
    return EXIT_OK


def run_get(args: argparse.Namespace) -> int:
    with connect(args) as client:
        continuation = client.get_continuation(args.continuation)
    print(output.json_document(continuation) if wants_json(args) else continuation_details(continuation))
    return EXIT_OK


def continuation_details(continuation: continuation_pb2.Continuation) -> str:
    summary = output.fields(
        [
            ("ID", continuation.id),
            ("Lost provider", continuation.provider_id),
            ("Failed", output.moment(continuation.failure_time)),
            ("Reason", continuation.reason),
        ]
    )
    rows = (
        (
            task.task_id,
            task.job_id,
            task.from_attempt,
            task.to_provider_id or "waiting for a slot",
            output.moment(task.dispatch_time),
        )
        for task in continuation.tasks
    )
    table = output.table(("TASK", "JOB", "LOST ATTEMPT", "CONTINUED ON", "DISPATCHED"), rows)
    return f"{summary}\n\nTasks\n{table}"
