"""`jobplane conflicts list|add|remove|check|suggest`: jobs that must not run at the same time."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jobplane.client import output
from jobplane.arguments import whole_number
from jobplane.client.command import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    add_output_option,
    add_server_option,
    connect,
    wants_json,
)
from jobplane.client.conflicts import (
    SELECTOR_HELP,
    blocker_line,
    describe_rule,
    format_selector,
    parse_selector,
    rule_from_options,
)
from jobplane.client.errors import InvalidArgument, JobFileError
from jobplane.client.flags import name_fields
from jobplane.client.jobfile import JobFile, load_job_file
from jobplane.client.sync import Client
from jobplane.v1 import conflict_pb2, job_pb2

RULE_HEADERS = ("NAME", "KIND", "JOBS", "OTHER/RESOURCE", "MODE", "CREATED_BY")


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "conflicts", help="rules for jobs that must not run at the same time",
        description="Conflict rules: a job that conflicts with a running one is held (ON_HOLD, with the "
        "reason) and starts by itself, most important first, once what holds it has finished.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list the rules", description="List the conflict rules.")
    listing.set_defaults(run=run_list)

    add = actions.add_parser(
        "add", help="add a rule", description="Add a rule: --exclusive (jobs matching --jobs never run with "
        "jobs matching --other, or without --other with each other) or --lock RESOURCE --mode read|write "
        "(many readers or one writer). Jobs already running keep running, unless --apply-to-running "
        "resolves the conflicts the rule finds among them now: of each pair the later job is held, its "
        "running tasks suspended or requeued, until the other ends.")
    add.add_argument("name", metavar="NAME", help="letters, digits, - _ .; the handle to remove it by")
    kind = add.add_mutually_exclusive_group(required=True)
    kind.add_argument("--exclusive", action="store_true", help="the jobs never run together")
    kind.add_argument("--lock", metavar="RESOURCE", help="the jobs take a lock on RESOURCE (with --mode)")
    add.add_argument("--mode", choices=("read", "write"), help="with --lock: read (shared) or write (alone)")
    add.add_argument("--jobs", type=_selector, required=True, metavar="SELECTOR", help=f"which jobs: {SELECTOR_HELP}")
    add.add_argument("--other", type=_selector, metavar="SELECTOR", help="with --exclusive: the jobs they never "
                     "run with (default: each other)")
    add.add_argument("--apply-to-running", choices=("suspend", "requeue"), metavar="suspend|requeue",
                     help="resolve conflicts among running jobs now: suspend (pause in place) or requeue "
                     "(stop, run again from the checkpoint) the later job's tasks until the other ends")
    add.set_defaults(run=run_add)
    name_fields(add, {"rule.jobs": "--jobs", "rule.other": "--other", "rule.resource": "--lock", "rule.mode": "--mode"})

    remove = actions.add_parser("remove", help="remove a rule",
                                description="Remove a rule; jobs it held start if nothing else holds them.")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=run_remove)

    check = actions.add_parser(
        "check", help="would a job be held now, and by what",
        description="Whether a submitted job, or the job in a job file not submitted yet, would be held "
        "now, and by what. Changes nothing; exits 0 either way.")
    check.add_argument("job", metavar="JOB_ID_OR_FILE", help="a job id, or a job file (.toml or .json)")
    check.set_defaults(run=run_check)

    suggest = actions.add_parser(
        "suggest", help="class pairs whose overlapping runs keep failing transiently",
        description="Pairs of job classes seen together in transient failures (deadlocks, lock timeouts) "
        "that no exclusive rule covers yet, most first, with the command that adds a rule for each.")
    suggest.add_argument("--min", dest="min_failures", type=whole_number(0, " (0: the server's default, 3)"), default=0, metavar="N",
                         help="only pairs seen in at least N such failures (default: the server's 3)")
    suggest.set_defaults(run=run_suggest)
    name_fields(suggest, {"min_failures": "--min"})

    for parser in (listing, add, remove, check, suggest):
        add_server_option(parser)
        add_output_option(parser)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        rules = list(client.list_conflict_rules())
    if wants_json(args):
        print(output.json_document(rules))
    elif rules:
        print(output.table(RULE_HEADERS, (rule_row(rule) for rule in rules)))
    else:
        print("no conflict rules; add one with `jobplane conflicts add NAME --exclusive --jobs class=X`")
    return EXIT_OK


def run_add(args: argparse.Namespace) -> int:
    try:
        rule = rule_from_options(args.name, lock=args.lock, mode=args.mode, jobs=args.jobs, other=args.other)
    except ValueError as error:
        print(f"jobplane conflicts add: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with connect(args) as client:
        if args.apply_to_running:
            response = client.apply_conflict_rule(rule, to_running=args.apply_to_running)
            rule, held = response.rule, list(response.held_job_ids)
        else:
            rule, held = client.create_conflict_rule(rule), None
    if wants_json(args):
        print(output.json_document(response if held is not None else rule))
        return EXIT_OK
    print(f"added rule {rule.name}: {describe_rule(rule)}")
    if held is not None:
        how = "suspended" if args.apply_to_running == "suspend" else "requeued"
        print(f"held, running tasks {how}: jobs {', '.join(held)}" if held else "no running jobs conflict under it")
    return EXIT_OK


def run_remove(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.delete_conflict_rule(args.name)
    if not wants_json(args):
        print(f"removed rule {args.name}")
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    job_file = load_job_file(args.job) if Path(args.job).is_file() else None  # before connecting
    with connect(args) as client:
        response = check(client, args.job, job_file)
    print(output.json_document(response) if wants_json(args) else check_report(response))
    return EXIT_OK


def check(client: Client, job_id: str, job_file: JobFile | None) -> conflict_pb2.CheckConflictsResponse:
    """Check the job file's spec (a rejected field reported at its line), else the job `job_id`."""
    if job_file is None:
        return client.check_conflicts(job_id=job_id)
    try:
        return client.check_conflicts(spec=job_file.spec)
    except InvalidArgument as error:
        raise JobFileError([job_file.locate(error.message)]) from error


def run_suggest(args: argparse.Namespace) -> int:
    with connect(args) as client:
        suggestions = client.suggest_conflicts(min_failures=args.min_failures)
    if wants_json(args):
        print(output.json_document(suggestions))
    elif suggestions:
        print(suggestion_report(suggestions))
    else:
        print(f"no suggestions: no pair of job classes not yet kept apart by a rule was seen together in "
              f"{args.min_failures or 3} or more transient failures")
    return EXIT_OK


def rule_row(rule: conflict_pb2.ConflictRule) -> tuple[str | None, ...]:
    """NAME KIND JOBS OTHER/RESOURCE MODE CREATED_BY: a lock shows its resource and mode, an
    exclusive rule its other side ("(each other)" when it has none)."""
    lock = rule.kind == conflict_pb2.CONFLICT_KIND_LOCK
    other = rule.resource if lock else format_selector(rule.other) or "(each other)"
    mode = output.short_name(job_pb2.LockMode, rule.mode) if lock else None
    kind = output.short_name(conflict_pb2.ConflictKind, rule.kind)
    return (rule.name, kind, format_selector(rule.jobs), other, mode, rule.created_by)


def check_report(response: conflict_pb2.CheckConflictsResponse) -> str:
    """`not held: <why>`, or `held: <reason>` and one line per blocker (but the one the reason says)."""
    if not response.held:
        return f"not held: {response.reason}" if response.reason else "would start now"
    blockers = [line for line in map(blocker_line, response.blockers) if line != response.reason]
    return "\n".join([f"held: {response.reason or 'by the following'}"] + [f"  {line}" for line in blockers])


def suggestion_report(suggestions: list[conflict_pb2.ConflictSuggestion]) -> str:
    rows = ((s.class_a, s.class_b, s.failures, output.age(s.last_time)) for s in suggestions)
    commands = "\n".join(s.command for s in suggestions if s.command)
    table = output.table(("CLASS_A", "CLASS_B", "FAILURES", "LAST"), rows)
    return f"{table}\n\nTo keep them apart:\n{commands}" if commands else table


def _selector(text: str) -> conflict_pb2.JobSelector:
    try:
        return parse_selector(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
