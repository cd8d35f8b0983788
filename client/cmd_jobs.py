"""`jobplane jobs list|get|purge` and `jobplane cancel JOB`."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

from jobplane.client import output
from jobplane.client.command import (
    EXIT_JOB_FAILED,
    EXIT_OK,
    add_limit_options,
    add_output_option,
    add_query_options,
    add_server_option,
    connect,
    first,
    more_note,
    page_for,
    time_argument,
    wants_json,
)
from jobplane.client.flags import name_fields
from jobplane.v1 import job_pb2

PURGE_TIMEOUT = 3600.0  # seconds: a purge of many jobs takes a while (it answers once it is done)


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("jobs", help="list and inspect jobs", description="Jobs.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list jobs, newest first", description="List jobs.")
    add_query_options(listing, "jobs")
    add_limit_options(listing, "jobs")
    listing.set_defaults(run=run_list)

    get = actions.add_parser("get", help="show one job and its task counts", description="Show one job.")
    get.add_argument("job", metavar="JOB", help="job id")
    get.add_argument("--wait", action="store_true", help="wait until the job ends; exit 1 unless it succeeded")
    get.set_defaults(run=run_get)

    purge = actions.add_parser(
        "purge", help="delete finished jobs that ended before a time (admin)",
        description="Delete the jobs that finished before --before, with their tasks, attempts and events; "
        "jobs that have not finished are skipped. Ids are never reused. jobplane-server --job-retention "
        "SECONDS does this by itself.")
    purge.add_argument("--before", required=True, type=time_argument, metavar="TIME",
                       help="ISO 8601 date or time, local unless it names a zone (e.g. 2026-01-31 or "
                       "2026-01-31T12:00Z); at most now")
    purge.set_defaults(run=run_purge)
    name_fields(purge, {"finished_before": "--before"})

    cancel = commands.add_parser(
        "cancel",
        help="cancel a job",
        description="Cancel every unfinished task of a job; running attempts are killed.",
    )
    cancel.add_argument("job", metavar="JOB", help="job id")
    cancel.add_argument("--reason", default="", help="why, recorded on the job and its tasks")
    cancel.set_defaults(run=run_cancel)
    name_fields(cancel, {"reason": "--reason"})

    for parser in (listing, get, purge, cancel):
        add_server_option(parser)
        add_output_option(parser)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        jobs, more = first(client.list_jobs(filter=args.filter, order_by=args.sort, view=args.view,
                                            page_size=page_for(args)), args)
    if wants_json(args):
        print(output.json_document(jobs))
    elif jobs:
        print(job_table(jobs))
        if more:
            print(more_note(len(jobs), "jobs"))
    elif args.filter or args.view:
        print(f"no jobs match `{' '.join(filter(None, (args.view and 'view ' + args.view, args.filter)))}`")
    else:
        print("no jobs yet; submit one with `jobplane submit FILE`")
    return EXIT_OK


def run_get(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job = client.wait_job(args.job) if args.wait else client.get_job(args.job)
    print(output.json_document(job) if wants_json(args) else job_details(job))
    if args.wait and job.state != job_pb2.JOB_STATE_SUCCEEDED:
        return EXIT_JOB_FAILED
    return EXIT_OK


def run_cancel(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job = client.cancel_job(args.job, reason=args.reason)
    if wants_json(args):
        print(output.json_document(job))
    else:
        print(f'cancelled job {job.id} "{job.spec.name}": now {output.job_state(job.state)}, {progress(job.counts)}')
    return EXIT_OK


def run_purge(args: argparse.Namespace) -> int:
    with connect(args, timeout=PURGE_TIMEOUT) as client:
        purged = client.purge_jobs(datetime.fromtimestamp(args.before, timezone.utc))
    if wants_json(args):
        print(json.dumps({"purged_count": purged}))
    else:
        print(f"purged {purged} job{'' if purged == 1 else 's'} that finished before "
              f"{datetime.fromtimestamp(args.before).astimezone().isoformat(timespec='seconds')}")
    return EXIT_OK


def job_table(jobs: list[job_pb2.Job]) -> str:
    rows = (
        (
            job.id,
            job.spec.name,
            output.status(job.status),
            job.spec.priority,
            progress(job.counts),
            output.age(job.submit_time),
        )
        for job in jobs
    )
    return output.table(("ID", "NAME", "STATUS", "PRIORITY", "TASKS", "SUBMITTED"), rows)


def job_details(job: job_pb2.Job) -> str:
    counts = job.counts
    return output.fields(
        [
            ("ID", job.id),
            ("Name", job.spec.name),
            ("Owner", job.owner),
            ("Schedule", job.schedule_id or "-"),
            ("Status", f"{output.status(job.status)} ({output.job_state(job.state)})"),
            ("Priority", job.spec.priority),
            ("Labels", output.labels(job.spec.labels)),
            ("Submitted", output.moment(job.submit_time)),
            ("Started", output.moment(job.start_time)),
            ("Ended", output.moment(job.end_time)),
            ("Took", output.span(job.start_time, job.end_time)),
            ("Reason", job.reason),
            ("Hold", job.hold),  # held by hand (or by a conflict rule's --apply-to-running): by whom, why
            (
                "Tasks",
                f"{counts.total} total: {counts.waiting} waiting, {counts.running} running, "
                f"{counts.success} succeeded, {counts.failure} failed, {counts.cancel} cancelled",
            ),
        ]
    )


def progress(counts: job_pb2.TaskCounts) -> str:
    """`3 of 5 succeeded` plus failures and cancellations when there are any (`1 of 2 succeeded,
    1 failed`): read alone, as a finished job's summary, it still says what happened."""
    text = f"{counts.success} of {counts.total} succeeded"
    if counts.failure:
        text += f", {counts.failure} failed"
    if counts.cancel:
        text += f", {counts.cancel} cancelled"
    return text
