"""`jobplane whoami`: who the server takes this client for."""

from __future__ import annotations

import argparse

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.security import role_name


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "whoami",
        help="show the identity and role the server sees",
        description="Show who the server takes this client for: identity, role, groups and how it authenticated.",
    )
    parser.set_defaults(run=run)
    add_server_option(parser)
    add_output_option(parser)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        me = client.whoami()
        server = client.target
    if wants_json(args):
        print(output.json_document(me))
        return EXIT_OK
    print(
        output.fields(
            [
                ("Identity", me.identity),
                ("Role", role_name(me.role)),
                ("Groups", ",".join(me.groups)),
                ("Authenticated by", me.method),
                ("Server", server),
            ]
        )
    )
    return EXIT_OK
