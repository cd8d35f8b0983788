"""`jobplane alerts add|list|get|delete`: server-wide alert rules. Any job the rule's filter
matches notifies the rule's webhook or command when its status changes, as a job's own `notify`
entry does (at least once, signed, recorded as events of the job)."""

from __future__ import annotations

import argparse
import sys

from jobplane.client import output
from jobplane.client.command import EXIT_BAD_INPUT, EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.flags import name_fields
from jobplane.client.jobfile_notify import STATUSES
from jobplane.v1 import alert_pb2, job_pb2, status_pb2

HEADERS = ("ID", "NAME", "FILTER", "ON", "DESTINATION", "CREATED_BY")
FILTER_HELP = ("which jobs, in the grammar of `jobs list --filter`: status, state, name, owner, priority, id, "
               "schedule, label.KEY (status is the job's new status), e.g. 'status=FAILURE label.team=etl'")


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "alerts", help="server-wide alert rules: notify a webhook or command of any job a filter matches",
        description="Alert rules: when a job's status changes and the job matches a rule's filter, the rule's "
        "webhook or command is notified as a job's own `notify` entry would be (at least once, signed with the "
        "server's key, retried, recorded as NOTIFIED / NOTIFY_GAVE_UP events of the job). Operators and admins "
        "add and delete rules; viewers list them.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a rule", description="Add an alert rule.")
    add.add_argument("--filter", required=True, metavar="FILTER", help=FILTER_HELP)
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--webhook", metavar="URL", help="POST the signed JSON body to this http(s) URL")
    where.add_argument("--command", nargs=argparse.REMAINDER, metavar="ARG",
                       help="run this program (an absolute path; the rest of the line is its arguments) on "
                       "the server with the body on stdin; put it last")
    add.add_argument("--name", default="", metavar="NAME", help="a name for people (default: alert ID)")
    add.add_argument("--on", nargs="+", default=[], metavar="STATUS", type=str.upper, choices=STATUSES,
                     help="only these new statuses (e.g. FAILURE LATE_TO_START); default: every status "
                     "change the filter accepts")
    add.set_defaults(run=run_add)
    name_fields(add, {"rule.filter": "--filter", "rule.name": "--name", "rule.notify.webhook": "--webhook",
                      "rule.notify.command": "--command", "rule.notify.on": "--on"})
    listing = actions.add_parser("list", help="list the rules", description="List the alert rules.")
    listing.set_defaults(run=run_list)
    parsers = [add, listing]
    for name, help_text, run in (("get", "show one rule", run_get),
                                 ("delete", "the rule notifies no more", run_delete)):
        parser = actions.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        parser.add_argument("rule", metavar="RULE_ID")
        parser.set_defaults(run=run)
        parsers.append(parser)
    for parser in parsers:
        add_server_option(parser)
        add_output_option(parser)


def rule_from_args(args: argparse.Namespace) -> alert_pb2.AlertRule:
    """The rule the options describe; ValueError says what is wrong with them."""
    if args.command is not None and not args.command:
        raise ValueError("--command: give the program and its arguments, e.g. --command /usr/local/bin/page -q")
    on = [status_pb2.NormalizedStatus.Value(f"NORMALIZED_STATUS_{word}") for word in args.on]
    notify = job_pb2.Notify(on=on, webhook=args.webhook or "", command=args.command or [])
    return alert_pb2.AlertRule(name=args.name, filter=args.filter, notify=notify)


def run_add(args: argparse.Namespace) -> int:
    try:
        rule = rule_from_args(args)
    except ValueError as error:
        print(f"jobplane alerts add: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with connect(args) as client:
        made = client.create_alert_rule(rule)
    print(output.json_document(made) if wants_json(args) else
          f"added alert rule {made.id} ({label(made)}): {made.filter} -> {destination(made)}")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        rules = list(client.list_alert_rules())
    if wants_json(args):
        print(output.json_document(rules))
    elif rules:
        print(output.table(HEADERS, (row(r) for r in rules)))
    else:
        print("no alert rules; add one with `jobplane alerts add --filter 'status=FAILURE' --webhook URL`")
    return EXIT_OK


def run_get(args: argparse.Namespace) -> int:
    with connect(args) as client:
        rule = client.get_alert_rule(args.rule)
    print(output.json_document(rule) if wants_json(args) else details(rule))
    return EXIT_OK


def run_delete(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.delete_alert_rule(args.rule)
    print("{}" if wants_json(args) else f"deleted alert rule {args.rule}")
    return EXIT_OK


def label(r: alert_pb2.AlertRule) -> str:
    """Its name, or `alert ID` for one added without --name (as `add`, `list` and `get` show it)."""
    return r.name or f"alert {r.id}"


def statuses(r: alert_pb2.AlertRule) -> str:
    return ",".join(output.status(s) for s in r.notify.on) or "any"


def destination(r: alert_pb2.AlertRule) -> str:
    return r.notify.webhook or " ".join(r.notify.command)


def row(r: alert_pb2.AlertRule) -> tuple:
    return r.id, label(r), r.filter, statuses(r), destination(r), r.created_by


def details(r: alert_pb2.AlertRule) -> str:
    return output.fields([("ID", r.id), ("Name", label(r)), ("Filter", r.filter), ("On", statuses(r)),
                          ("Webhook" if r.notify.webhook else "Command", destination(r)),
                          ("Created by", r.created_by), ("Created", output.moment(r.create_time))])
