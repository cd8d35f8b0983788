"""`jobplane submit FILE [--watch]`: check a job file, submit it, optionally follow it to the end."""

from __future__ import annotations

import argparse
import sys
import uuid
from contextlib import closing

from jobplane.client import cmd_schedules, output, progress
from jobplane.client.cmd_tasks import print_job_tasks
from jobplane.client.command import (
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    add_output_option,
    add_server_option,
    connect,
    wants_json,
)
from jobplane.client.errors import FailedPrecondition, InvalidArgument, JobFileError
from jobplane.client.flags import name_fields
from jobplane.client.jobfile import JobFile, load_job_file
from jobplane.client.sync import Client
from jobplane.v1 import job_pb2, task_pb2


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "submit",
        help="submit a job file (TOML or JSON)",
        description="Check a job file and submit it. Nothing is sent when the file has a problem; "
        "each problem is reported as FILE:LINE: field: what to fix.",
    )
    parser.add_argument("file", metavar="FILE", help="job file: .toml, or .json for the JSON form")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="follow the job until it ends, then show its tasks; exit 1 unless it succeeded. On a terminal: a "
        "live line of task counts with progress and ETA, and only the notable events; else every event",
    )
    parser.add_argument(
        "--request-id",
        type=request_id,
        metavar="UUID",
        help="submit at most once under this id (e.g. from `uuidgen`): running the command again with the "
        "same id and file within a day prints the job it made instead of making another",
    )
    add_server_option(parser)
    add_output_option(parser)
    parser.set_defaults(run=run)
    name_fields(parser, {"request_id": "--request-id"})


def request_id(text: str) -> str:
    """--request-id: a UUID, sent in the 36-character form the server takes."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is not a UUID; use one like "
                                         "3c1d0a4e-8f7b-4d2a-9e61-0b5f2a7c9d13 (`uuidgen` prints one)") from None


def run(args: argparse.Namespace) -> int:
    job_file = load_job_file(args.file)  # before connecting: a bad file never reaches a server
    if job_file.schedule is not None:
        return _schedule(args, job_file)
    with connect(args) as client:
        job, made_before = submit(client, job_file, request_id=args.request_id)
        if wants_json(args) and made_before:  # (stdout stays the job, as the first time)
            print(f"jobplane: {already_submitted(args.request_id, job)}", file=sys.stderr)
        if wants_json(args) and not args.watch:
            print(output.json_document(job))
            return EXIT_OK
        if not wants_json(args):
            print(already_submitted(args.request_id, job) if made_before else submitted(client, job))
        if not args.watch:
            print(f"follow it with `jobplane watch {job.id}`; see it with `jobplane jobs get {job.id}`")
            return EXIT_OK
        try:
            job = follow(client, job.id, as_json=wants_json(args))
        except KeyboardInterrupt:
            hint = f"stopped watching; job {job.id} keeps running (`jobplane cancel {job.id}` stops it)"
            print(f"\n{hint}", file=sys.stderr)
            return EXIT_INTERRUPTED
    return EXIT_OK if job.state == job_pb2.JOB_STATE_SUCCEEDED else EXIT_JOB_FAILED


def _schedule(args: argparse.Namespace, job_file: JobFile) -> int:
    """A file with `schedule = ...` makes a schedule, whose runs are the file's job."""
    if args.watch or args.request_id:
        raise InvalidArgument(f"{args.file}: has a schedule, so it makes a schedule, not one job: drop "
                              "--watch/--request-id (follow its runs with `jobplane watch`)")
    with connect(args) as client:
        schedule = cmd_schedules.create(client, job_file)
    print(output.json_document(schedule) if wants_json(args) else cmd_schedules.created(schedule))
    return EXIT_OK


def submit(client: Client, job_file: JobFile, *, request_id: str | None = None) -> tuple[job_pb2.Job, bool]:
    """Submit the file's spec (under `request_id`, else a fresh one): the job, and whether an
    earlier submit under `request_id` had made it. A rejected field is reported at its line in the file."""
    try:
        if request_id:
            answer = client.submit_job_once(job_file.spec, request_id=request_id)
            return answer.job, answer.already_submitted
        return client.submit_job(job_file.spec), False
    except InvalidArgument as error:
        raise JobFileError([job_file.locate(error.message)]) from error
    except FailedPrecondition as error:  # e.g. `spec.tasks[0].requires: no provider is connected`
        raise FailedPrecondition(str(job_file.locate(error.message))) from error


def already_submitted(request_id: str, job: job_pb2.Job) -> str:
    """A repeated `--request-id`: the job it made before (a retry that succeeded, so exit 0)."""
    return (f'request {request_id} was already submitted as job {job.id} "{job.spec.name}" '
            f"({output.age(job.submit_time)}); nothing new submitted")


def submitted(client: Client, job: job_pb2.Job) -> str:
    """`submitted job 12 "nightly" (5 tasks)`, counting tasks after sweeps and chunks expanded."""
    tasks = job.counts.total or sum(1 for _ in client.list_tasks(job.id))
    return f'submitted job {job.id} "{job.spec.name}" ({output.count(tasks, "task")})'


def follow(client: Client, job_id: str, *, as_json: bool = False, timeout: float | None = None) -> job_pb2.Job:
    """Print the job's events from its first until it ends, then its tasks; return the final job."""
    if as_json:
        view = progress.event_lines(output.json_line, sys.stdout)
    else:
        tasks = list(client.list_tasks(job_id, page_size=1000))
        lines = _event_lines(tasks)
        view = (progress.live_progress(client.get_job(job_id), tasks, lines, sys.stdout)
                if progress.is_terminal(sys.stdout) else progress.event_lines(lines, sys.stdout))
    with closing(client.watch(job_id, timeout=timeout)) as events, view as show:
        for event in events:
            show(event)
    job = client.get_job(job_id)  # the watch of one job ends with it
    if not as_json:
        print()
        print_job_tasks(client, job_id)
        print()
        print(outcome(job))
    return job


def _event_lines(tasks: list[task_pb2.Task]) -> output.EventLines:
    """Event lines whose task column fits the job's longest task name (`train[lr=0.1,batch=16]`)."""
    width = max((len(f"task {task.name}") for task in tasks), default=0)
    return output.EventLines(with_job=False, width=width)


def outcome(job: job_pb2.Job) -> str:
    """`job 12 SUCCEEDED after 3.2s` / `job 12 FAILED after 1m: task build exited with code 2`."""
    text = f"job {job.id} {output.job_state(job.state)} after {output.span(job.submit_time, job.end_time)}"
    return f"{text}: {job.reason}" if job.reason else text
