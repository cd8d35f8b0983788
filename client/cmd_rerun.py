"""`jobplane rerun JOB [--failed] [--wait]`: run a finished job's unsuccessful tasks again."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.command import (
    EXIT_JOB_FAILED, EXIT_OK, add_output_option, add_server_option, connect, wants_json)
from jobplane.v1 import job_pb2


def register(commands: argparse._SubParsersAction) -> None:
    rerun = commands.add_parser(
        "rerun", help="run a finished job's failed (or cancelled) tasks again",
        description="Rerun a finished job: its failed and cancelled tasks (only the failed ones with --failed) "
        "run again as new attempts of the same tasks, each with its full max_attempts; the tasks cancelled "
        "because of them wait for them again. The job is RUNNING again and ends again (like `scontrol "
        "requeue` or a Temporal reset). Refused while the job runs, or when it has nothing to rerun.")
    rerun.add_argument("job", metavar="JOB", help="job id")
    rerun.add_argument("--failed", action="store_true",
                       help="only the failed tasks (and their dependents); cancelled ones stay cancelled")
    rerun.add_argument("--wait", action="store_true", help="wait until the job ends again; exit 1 unless it succeeded")
    add_server_option(rerun)
    add_output_option(rerun)
    rerun.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        rerun = client.rerun_job(args.job, failed_only=args.failed)
        job = client.wait_job(args.job) if args.wait else rerun.job
    print(output.json_document(rerun if not args.wait else job) if wants_json(args) else summary(rerun, job))
    if args.wait and job.state != job_pb2.JOB_STATE_SUCCEEDED:
        return EXIT_JOB_FAILED
    return EXIT_OK


def summary(rerun: job_pb2.RerunJobResponse, job: job_pb2.Job) -> str:
    """`rerun job 7 "nightly": 2 tasks run again (14, 15); now RUNNING`."""
    n = len(rerun.task_ids)
    return (f'rerun job {job.id} "{job.spec.name}": {n} task{"" if n == 1 else "s"} run again '
            f'({", ".join(rerun.task_ids)}); now {output.job_state(job.state)}')
