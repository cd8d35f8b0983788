"""`jobplane schedules list|get|pause|resume|run-now|delete`: recurring jobs. A job file with
`schedule = "0 2 * * *"` makes one (`jobplane submit FILE`, or `jobplane schedules create FILE`)."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.errors import FailedPrecondition, InvalidArgument, JobFileError
from jobplane.client.jobfile import JobFile, load_job_file
from jobplane.client.sync import Client
from jobplane.v1 import schedule_pb2

HEADERS = ("ID", "NAME", "SCHEDULE", "TIME_ZONE", "OVERLAP", "STATUS", "NEXT_RUN", "LAST_JOB")
OVERLAP_NAMES = {schedule_pb2.OVERLAP_SKIP: "skip", schedule_pb2.OVERLAP_QUEUE: "queue",
                 schedule_pb2.OVERLAP_ALLOW: "allow"}


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "schedules", help="recurring jobs: list, pause, resume, run now, delete",
        description="Recurring jobs (like Nomad's periodic jobs or Slurm's scrontab). A job file with "
        "schedule = \"0 2 * * *\" (and optionally time_zone, overlap = skip|queue|allow, catch_up) makes a "
        "schedule when submitted; each run is an ordinary job (`jobplane jobs list --filter schedule=ID`).")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    parsers = [actions.add_parser("list", help="list the schedules", description="List the schedules.")]
    parsers[0].set_defaults(run=run_list)
    create = actions.add_parser("create", help="make a schedule from a job file with `schedule = ...`",
                                description="Make a schedule from a job file (same as `jobplane submit FILE`).")
    create.add_argument("file", metavar="FILE", help="job file (.toml or .json) with a `schedule` key")
    create.set_defaults(run=run_create)
    parsers.append(create)
    for name, help_text, run in (
            ("get", "show one schedule", run_get),
            ("pause", "no new runs until resumed (the schedule shows INACTIVE)", run_pause),
            ("resume", "run again from the next due time (paused time is not caught up on)", run_resume),
            ("run-now", "start a run at once, under the schedule's overlap rule", run_now),
            ("delete", "no more runs; the jobs it made are kept", run_delete)):
        parser = actions.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        parser.add_argument("schedule", metavar="SCHEDULE_ID")
        parser.set_defaults(run=run)
        parsers.append(parser)
    for parser in parsers:
        add_server_option(parser)
        add_output_option(parser)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        schedules = list(client.list_schedules())
    if wants_json(args):
        print(output.json_document(schedules))
    elif schedules:
        print(output.table(HEADERS, (row(s) for s in schedules)))
    else:
        print("no schedules; a job file with schedule = \"0 2 * * *\" makes one (`jobplane submit FILE`)")
    return EXIT_OK


def run_create(args: argparse.Namespace) -> int:
    job_file = load_job_file(args.file)
    if job_file.schedule is None:
        raise JobFileError([job_file.locate("schedule: missing; add schedule = \"0 2 * * *\" (02:00 daily) to "
                                            "make the job recurring, or submit it once with `jobplane submit`")])
    with connect(args) as client:
        schedule = create(client, job_file)
    print(output.json_document(schedule) if wants_json(args) else created(schedule))
    return EXIT_OK


def create(client: Client, job_file: JobFile) -> schedule_pb2.Schedule:
    """Create the file's schedule; a rejected field is reported at its line in the file."""
    try:
        return client.create_schedule(job_file.schedule)
    except InvalidArgument as error:
        raise JobFileError([job_file.locate(error.message)]) from error
    except FailedPrecondition as error:
        raise FailedPrecondition(str(job_file.locate(error.message))) from error


def created(s: schedule_pb2.Schedule) -> str:
    return (f'created schedule {s.id} "{s.name}": {s.cron} ({s.time_zone}), next run {output.moment(s.next_run_time)}'
            f"\nsee it with `jobplane schedules get {s.id}`; its runs with `jobplane jobs list --filter schedule={s.id}`")


def run_get(args: argparse.Namespace) -> int:
    with connect(args) as client:
        s = client.get_schedule(args.schedule)
    print(output.json_document(s) if wants_json(args) else details(s))
    return EXIT_OK


def run_pause(args: argparse.Namespace) -> int:
    with connect(args) as client:
        s = client.pause_schedule(args.schedule)
    print(output.json_document(s) if wants_json(args) else
          f"paused schedule {s.id} \"{s.name}\": no new runs until `jobplane schedules resume {s.id}`")
    return EXIT_OK


def run_resume(args: argparse.Namespace) -> int:
    with connect(args) as client:
        s = client.resume_schedule(args.schedule)
    print(output.json_document(s) if wants_json(args) else
          f"resumed schedule {s.id} \"{s.name}\": next run {output.moment(s.next_run_time)}")
    return EXIT_OK


def run_now(args: argparse.Namespace) -> int:
    with connect(args) as client:
        response = client.run_schedule_now(args.schedule)
    s = response.schedule
    if wants_json(args):
        print(output.json_document(response))
    elif response.job.id:
        print(f"started job {response.job.id} from schedule {s.id} \"{s.name}\"; "
              f"follow it with `jobplane watch {response.job.id}`")
    else:
        print(f"schedule {s.id} \"{s.name}\": a run is going on, so this one waits for it (overlap = queue)")
    return EXIT_OK


def run_delete(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.delete_schedule(args.schedule)
    if wants_json(args):
        print("{}")
    else:
        print(f"deleted schedule {args.schedule}; the jobs it made are kept")
    return EXIT_OK


def row(s: schedule_pb2.Schedule) -> tuple:
    return (s.id, s.name, s.cron, s.time_zone, OVERLAP_NAMES.get(s.overlap, "skip"), output.status(s.status),
            "paused" if s.paused else output.moment(s.next_run_time), s.last_job_id or "-")


def last_run(s: schedule_pb2.Schedule) -> str:
    """When it last came due, or `never` for a schedule that has made no run yet."""
    if not s.HasField("last_run_time") and not s.last_job_id:
        return "never"
    return output.moment(s.last_run_time)


def details(s: schedule_pb2.Schedule) -> str:
    return output.fields([
        ("ID", s.id), ("Name", s.name), ("Owner", s.owner), ("Schedule", s.cron), ("Time zone", s.time_zone),
        ("Overlap", OVERLAP_NAMES.get(s.overlap, "skip")), ("Catch up", "yes" if s.catch_up else "no"),
        ("Status", output.status(s.status) + (" (paused)" if s.paused else "")),
        ("Next run", "paused" if s.paused else output.moment(s.next_run_time)),
        ("Last run", last_run(s)), ("Last job", s.last_job_id or "-"),
        ("Queued run", "yes" if s.queued else "no"), ("Created", output.moment(s.create_time)),
        ("Runs", f"`jobplane jobs list --filter schedule={s.id}`"),
    ])
