"""`jobplane audit list`: who did what, when, and how it ended (admin)."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.security import role_name
from jobplane.v1 import security_pb2

_METHOD_PREFIX = "/jobplane.v1."


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("audit", help="the audit log of mutating calls (admin)", description="Audit log.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list audit records, newest first", description="List audit records.")
    listing.add_argument(
        "--filter",
        default="",
        metavar="F",
        help="space-separated key=value terms, all must hold; keys: identity, method, code; "
        "a value may end with * (e.g. `identity=alice method=*SubmitJob code=PERMISSION_DENIED`)",
    )
    listing.set_defaults(run=run_list)
    add_server_option(listing)
    add_output_option(listing)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        records = list(client.list_audit_records(filter=args.filter))
    if wants_json(args):
        print(output.json_document(records))
    elif records:
        print(audit_table(records))
    elif args.filter:
        print(f"no audit records match `{args.filter}`")
    else:
        print("no audit records yet")
    return EXIT_OK


def audit_table(records: list[security_pb2.AuditRecord]) -> str:
    rows = (
        (
            record.id,
            output.moment(record.time),
            record.identity,
            role_name(record.role),
            record.method.removeprefix(_METHOD_PREFIX),
            record.target,
            record.code,
            record.message,
        )
        for record in records
    )
    return output.table(("ID", "TIME", "IDENTITY", "ROLE", "METHOD", "TARGET", "CODE", "MESSAGE"), rows)
