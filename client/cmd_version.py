"""`jobplane version`: this client's version and the version of the server it reaches."""

from __future__ import annotations

import argparse
import json

import grpc

from jobplane import __version__
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.errors import JobplaneError
from jobplane.client.sync import Client


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "version", help="show the client's and the server's versions",
        description="Show this client's version, then the version of the server replica that answers "
        "(from ServerService.ListServers). The client's is printed even when no server answers.")
    parser.set_defaults(run=run)
    add_server_option(parser)
    add_output_option(parser)


def run(args: argparse.Namespace) -> int:
    if not wants_json(args):
        print(f"client  {__version__}", flush=True)  # before a server that may not answer
    with connect(args) as client:
        server, address = server_version(client)
    if wants_json(args):
        print(json.dumps({"client": __version__, "server": server, "server_address": address}, indent=2))
    else:
        print(f"server  {server or 'unknown (it predates ServerService)'} at {address}")
    return EXIT_OK


def server_version(client: Client) -> tuple[str, str]:
    """(the answering replica's version, "" if it cannot say; its address)."""
    try:
        response = client.list_servers()
    except JobplaneError as error:
        if error.code != grpc.StatusCode.UNIMPLEMENTED:
            raise
        return "", client.target
    me = next((server for server in response.servers if server.id == response.answered_by), None)
    return (me.version, me.address or client.target) if me else ("", client.target)
