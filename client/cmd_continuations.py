"""`jobplane continuations list|get|plan|watch`: where the unfinished tasks of failed or
drained providers went (or would go), in what order, from which checkpoint."""

from __future__ import annotations

import argparse
from contextlib import closing

from jobplane.client import output
from jobplane.client.command import (
    EXIT_OK, add_output_option, add_server_option, connect, time_argument, wants_json)
from jobplane.client.errors import Unavailable
from jobplane.client.flags import name_fields
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
    name_fields(listing, {"filter": "--filter"})

    get = actions.add_parser("get", help="show one continuation and its tasks", description="Show a continuation.")
    get.add_argument("continuation", metavar="ID", help="continuation id")
    get.set_defaults(run=run_get)

    plan = actions.add_parser("plan", help="what would happen if a provider failed now",
                              description="A what-if: if PROVIDER failed now (or at --at), which of its tasks "
                              "would continue where, in what order, and which would wait. Changes nothing.")
    plan.add_argument("provider", metavar="PROVIDER", help="provider id (the agent's name)")
    plan.add_argument("--at", type=time_argument, default=None, metavar="TIME",
                      help="evaluate timing rules at this ISO 8601 time (e.g. 2026-09-30T12:00+02:00)")
    plan.set_defaults(run=run_plan)

    watch = actions.add_parser("watch", help="follow failover events", description="Print failover events "
                               "as they happen, until Ctrl-C.")
    watch.add_argument("--from", dest="after", type=int, default=0, metavar="ID", help="start after event ID")
    watch.set_defaults(run=run_watch)
    name_fields(watch, {"after_event_id": "--from"})

    for parser in (listing, get, plan, watch):
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
        print(output.table(("ID", "PROVIDER", "FAILED", "TASKS", "REASON"), rows))
    else:
        print("no continuations: no provider has failed or been drained with work on it")
    return EXIT_OK


def run_get(args: argparse.Namespace) -> int:
    with connect(args) as client:
        continuation = client.get_continuation(args.continuation)
    print(output.json_document(continuation) if wants_json(args) else continuation_details(continuation))
    return EXIT_OK


def run_plan(args: argparse.Namespace) -> int:
    with connect(args) as client:
        plan = client.plan_continuation(args.provider, at=args.at)
    if wants_json(args):
        print(output.json_document(plan))
    elif plan.tasks:
        rows = ((t.position, t.task_id, t.job_id, t.task_name, _priority(t), t.to_provider_id or "would wait",
                 t.checkpoint_json or "-", "" if t.from_provider else "already waiting") for t in plan.tasks)
        print(output.table(("#", "TASK", "JOB", "NAME", "PRIORITY", "WOULD GO TO", "FROM CHECKPOINT", ""), rows))
    else:
        print(f"nothing would continue: {args.provider} runs no tasks")
    return EXIT_OK


def run_watch(args: argparse.Namespace) -> int:
    with connect(args) as client:
        line = output.json_line if wants_json(args) else output.EventLines(with_job=True)
        try:
            with closing(client.watch_continuations(after_event_id=args.after)) as events:
                for event in events:
                    print(line(event), flush=True)
        except KeyboardInterrupt:
            return EXIT_OK
    raise Unavailable("the server ended the event stream (is it shutting down?)")


def continuation_details(continuation: continuation_pb2.Continuation) -> str:
    summary = output.fields(
        [
            ("ID", continuation.id),
            ("Provider", continuation.provider_id),
            ("Failed", output.moment(continuation.failure_time)),
            ("Reason", continuation.reason),
        ]
    )
    rows = (
        (
            task.position,
            task.task_id,
            task.job_id,
            _priority(task),
            task.from_attempt,
            task.to_provider_id or "waiting for a slot",
            task.checkpoint_json or "-",
            output.duration(task.seconds_to_restart) if task.seconds_to_restart else "",
        )
        for task in continuation.tasks
    )
    headers = ("#", "TASK", "JOB", "PRIORITY", "LOST ATTEMPT", "CONTINUED ON", "FROM CHECKPOINT", "RUNNING AFTER")
    return f"{summary}\n\nTasks, in continuation order\n{output.table(headers, rows)}"


def _priority(task: continuation_pb2.ContinuedTask | continuation_pb2.PlannedTask) -> str:
    return f"{task.effective_priority} ({task.rule})" if task.rule else str(task.effective_priority)
