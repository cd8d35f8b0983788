"""`jobplane hold JOB [--suspend|--requeue] [--reason TEXT]` and `jobplane release JOB`: hold a job
by hand, its running tasks too if asked; `jobplane suspend JOB` and `jobplane resume JOB` are
`hold --suspend` and `release` under the names operators look for (not `providers resume`)."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.flags import name_fields
from jobplane.v1 import job_pb2


def register(commands: argparse._SubParsersAction) -> None:
    hold = commands.add_parser(
        "hold", help="keep a job's tasks from starting (and, if asked, pause or requeue those that run)",
        description="Hold a job by hand until `jobplane release JOB`: none of its tasks starts. Running "
        "tasks carry on, unless --suspend pauses them in place (SIGSTOP / cgroup freeze; slots kept; "
        "release continues them) or --requeue stops them (SIGTERM: they may checkpoint) and runs them "
        "again from their checkpoint on release. A plain hold of a job whose every unfinished task "
        "runs is refused: it would hold nothing. A held job keeps its place in line.")
    hold.add_argument("job", metavar="JOB", help="job id")
    hold.add_argument("--reason", default="", metavar="TEXT", help="why; shown as the job's hold")
    mode = hold.add_mutually_exclusive_group()
    mode.add_argument("--suspend", dest="mode", action="store_const", const="suspend",
                      help="pause running tasks in place (command tasks only)")
    mode.add_argument("--requeue", dest="mode", action="store_const", const="requeue",
                      help="stop running tasks and run them again from their checkpoint on release")
    hold.set_defaults(run=run_hold, mode="")
    name_fields(hold, {"reason": "--reason"})

    suspend = commands.add_parser(
        "suspend", help="pause a job's running tasks in place (hold --suspend)",
        description="Suspend a job: the same as `jobplane hold JOB --suspend`. Its running command tasks "
        "are paused (every process stopped, or their cgroup frozen), keeping their slots; tasks not "
        "started wait. `jobplane resume JOB` continues them.")
    suspend.add_argument("job", metavar="JOB", help="job id")
    suspend.add_argument("--reason", default="", metavar="TEXT", help="why; shown as the job's hold")
    suspend.set_defaults(run=run_hold, mode="suspend")
    name_fields(suspend, {"reason": "--reason"})

    release = commands.add_parser(
        "release", help="let a job held by hand go on",
        description="Release a job held with `jobplane hold` (or suspended): suspended tasks continue "
        "where they were paused, requeued ones start again from their checkpoint, and the others may "
        "start, unless a conflict rule or its run window still holds them (`jobplane conflicts check "
        "JOB` says which).")
    resume = commands.add_parser(
        "resume", help="continue a suspended job (release)",
        description="Resume a job suspended with `jobplane suspend` (or held): the same as `jobplane "
        "release JOB`. To take a drained provider back, use `jobplane providers resume`.")
    for parser in (release, resume):
        parser.add_argument("job", metavar="JOB", help="job id")
        parser.set_defaults(run=run_release)

    for parser in (hold, suspend, release, resume):
        add_server_option(parser)
        add_output_option(parser)


def run_hold(args: argparse.Namespace) -> int:
    with connect(args) as client:
        job = client.hold_job(args.job, reason=args.reason, mode=args.mode)
    verb = {"suspend": "suspended", "requeue": "held (running tasks requeued)"}.get(args.mode, "held")
    print(output.json_document(job) if wants_json(args) else hold_summary(verb, job))
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
