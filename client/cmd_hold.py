"""`jobplane hold JOB [--reason TEXT]` and `jobplane release JOB`: keep a job from starting, by hand."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.v1 import job_pb2


def register(commands: argparse._SubParsersAction) -> None:
    hold = commands.add_parser(
        "hold", help="keep a job's tasks from starting until `jobplane release`",
        description="Hold a job by hand: none of its tasks starts (running ones carry on) until "
        "`jobplane release JOB`. A held job keeps its place in line.")
    hold.add_argument("job", metavar="JOB", help="job id")
    hold.add_argument("--reason", default="", metavar="TEXT", help="why; shown as the job's hold")
    hold.set_defaults(run=run_hold)

    release = commands.add_parser(
        "release", help="let a job held by hand start again",
        description="Release a job held with `jobplane hold`: its tasks may start again, unless a "
        "conflict rule or its run window still holds them (`jobplane conflicts check JOB` says which).")
    release.add_argument("job", metavar="JOB", help="job id")
    release.set_defaults(run=run_release)

    for parser in (hold, release):
        add_server_option(parser)
        add_output_option(parser)


def run_hold(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job = client.hold_job(args.job, reason=args.reason)
    print(output.json_document(job) if wants_json(args) else hold_summary("held", job))
    return EXIT_OK


def run_release(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job = client.release_job(args.job)
    print(output.json_document(job) if wants_json(args) else hold_summary("released", job))
    return EXIT_OK


def hold_summary(verb: str, job: job_pb2.Job) -> str:
    """`held job 42 "nightly": now ON_HOLD (QUEUED); hold: alice: waiting for the DBA`, plus the
    job's reason when something else (a conflict, its window) holds it."""
    text = (f'{verb} job {job.id} "{job.spec.name}": now {output.status(job.status)} '
            f'({output.job_state(job.state)}); hold: {job.hold or "none"}')
    return f"{text}; {job.reason}" if job.reason and job.reason != job.hold else text
