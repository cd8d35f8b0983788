"""`jobplane tasks list JOB` and `jobplane tasks get TASK`."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterable

from jobplane.client import output
from jobplane.client.command import (
    EXIT_OK,
    add_limit_options,
    add_output_option,
    add_query_options,
    add_server_option,
    connect,
    first,
    more_note,
    page_for,
    wants_json,
)
from jobplane.client.sync import Client
from jobplane.v1 import job_pb2, task_pb2

TAIL_LINES = 20


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("tasks", help="list and inspect the tasks of a job", description="Tasks of jobs.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list the tasks of a job, or of every job",
                                 description="List the tasks of a job (or, without JOB, of every job you may see).")
    listing.add_argument("job", metavar="JOB", nargs="?", default="", help="job id (default: every job)")
    add_query_options(listing, "tasks")
    add_limit_options(listing, "tasks")
    add_server_option(listing)
    add_output_option(listing, wide=True)
    listing.set_defaults(run=run_list)

    get = actions.add_parser("get", help="show one task: spec, attempts, output tails", description="Show one task.")
    get.add_argument("task", metavar="TASK", help="task id")
    add_server_option(get)
    add_output_option(get)
    get.set_defaults(run=run_get)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        tasks, more = first(client.list_tasks(args.job, filter=args.filter, order_by=args.sort, view=args.view,
                                              page_size=page_for(args)), args)
    if wants_json(args):
        print(output.json_document(tasks))
    elif tasks:
        print(task_table(tasks, with_job=not args.job, wide=args.output == "wide"))
        if more:
            print(more_note(len(tasks), "tasks"))
    else:
        print(f"no tasks{' of job ' + args.job if args.job else ''} match `{args.filter or args.view or '*'}`")
    return EXIT_OK


def run_get(args: argparse.Namespace) -> int:
    with connect(args) as client:
        task = client.get_task(args.task)
    print(output.json_document(task) if wants_json(args) else task_details(task))
    return EXIT_OK


def print_job_tasks(client: Client, job_id: str) -> None:
    """The per-task summary that follows a watched job."""
    print(task_table(client.list_tasks(job_id)))


def task_table(tasks: Iterable[task_pb2.Task], *, with_job: bool = False, wide: bool = False) -> str:
    """`wide` (-o wide): also where the raw status comes from and the priority class."""
    rows = (
        (
            *((task.job_id,) if with_job else ()),
            task.id,
            task.name,
            output.status(task.status),
            *((task.environment, task.priority_class) if wide else ()),
            task.provider_id,
            task.attempt or None,
            output.exit_code(task),
            _clip(task.reason or task.error),
            _clip(task.result_json),
        )
        for task in tasks
    )
    headers = ("ID", "NAME", "STATUS", *(("ENVIRONMENT", "PRIORITY_CLASS") if wide else ()), "PROVIDER", "ATTEMPT",
               "EXIT", "REASON", "RESULT")
    return output.table((("JOB",) if with_job else ()) + headers, rows)


def task_details(task: task_pb2.Task) -> str:
    blocks = [
        output.fields(
            [
                ("ID", task.id),
                ("Job", task.job_id),
                ("Name", task.name),
                ("Group", task.group if task.group != task.name else None),
                ("Status", f"{output.status(task.status)} ({output.task_state(task.state)})"),
                ("Raw", _raw(task.environment, task.raw)),
                ("Priority class", task.priority_class),
                ("Provider", task.provider_id),
                ("Attempt", task.attempt or None),
                ("Exit code", output.exit_code(task)),
                ("Reason", task.reason),
                ("Error", task.error if task.error != task.reason else None),
                ("Result", task.result_json),
                ("Runs", _program(task.spec)),
                ("Requests", output.resource_request(task.spec.resources)),
            ]
        )
    ]
    if task.attempts:
        blocks.append("Attempts\n" + _attempt_table(task.attempts))
    for name, tail in (("stdout", task.stdout_tail), ("stderr", task.stderr_tail)):
        if tail:
            lines = tail.rstrip("\n").splitlines()[-TAIL_LINES:]
            blocks.append(f"{name} (last lines)\n" + "\n".join(f"  {line}" for line in lines))
    return "\n\n".join(blocks)


def _attempt_table(attempts: Iterable[task_pb2.Attempt]) -> str:
    rows = (
        (
            attempt.number,
            attempt.provider_id,
            output.moment(attempt.start_time if attempt.HasField("start_time") else attempt.assign_time),
            output.span(attempt.start_time, attempt.end_time),
            output.exit_code(attempt),
            output.status(attempt.status),
            _raw(attempt.environment, attempt.raw),
            attempt.reason,
        )
        for attempt in attempts
    )
    return output.table(("#", "PROVIDER", "STARTED", "TOOK", "EXIT", "STATUS", "RAW", "REASON"), rows)


def _raw(environment: str, raw) -> str:
    """`external: queue=PRINT status=ABEND`: the raw properties a status was normalized from."""
    return f"{environment}: " + " ".join(f"{k}={v}" for k, v in sorted(raw.items())) if raw else environment


def _program(spec: job_pb2.TaskSpec) -> str | None:
    if spec.command:
        return shlex.join(spec.command)
    if spec.python:
        return f"{spec.python}({spec.args_json})" if spec.args_json else f"{spec.python}()"
    return None


def _clip(text: str, width: int = 40) -> str:
    text = text.strip().replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
