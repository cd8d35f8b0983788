"""`jobplane servers list`: the server replicas that share the database, and which one leads."""

from __future__ import annotations

import argparse

import grpc

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.errors import JobplaneError
from jobplane.client.sync import Client
from jobplane.v1 import server_pb2

ID_WIDTH = 8  # replica ids are UUIDs; their first characters tell them apart


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("servers", help="the server replicas and which one leads",
                                description="Server replicas.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="list the server replicas, the leader first",
        description="List the server replicas that share the database: the leader (with its lease's "
        "epoch, when it last renewed the lease and when the lease runs out), the followers, and "
        "replicas not heard from for a while. Any replica answers.")
    listing.set_defaults(run=run_list)
    add_server_option(listing)
    add_output_option(listing)


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        response = list_servers(client)
    if wants_json(args):
        print(output.json_document(list(response.servers)))
    elif response.servers:
        print(server_table(list(response.servers)))
        print(f"\nanswered by {response.answered_by or client.target}")
    else:
        print("no server replicas recorded yet")
    return EXIT_OK


def list_servers(client: Client) -> server_pb2.ListServersResponse:
    """ListServers; an older server, which knows no replicas, is said to be one."""
    try:
        return client.list_servers()
    except JobplaneError as error:
        if error.code != grpc.StatusCode.UNIMPLEMENTED:
            raise
        raise JobplaneError(
            f"the server at {client.target} does not know about replicas (it answers ListServers with "
            "UNIMPLEMENTED): it runs a jobplane older than replicas, one server on its own; upgrade it "
            "to list its replicas", error.code) from error


def server_table(servers: list[server_pb2.ServerReplica]) -> str:
    rows = (
        (
            server.id[:ID_WIDTH],
            server.address,
            output.short_name(server_pb2.ServerRole, server.role),
            server.epoch if server.role == server_pb2.SERVER_ROLE_LEADER else None,
            output.age(server.lease_renew_time),
            output.until(server.lease_expire_time),
            output.age(server.last_seen_time),
            server.version,
        )
        for server in servers
    )
    headers = ("ID", "ADDRESS", "ROLE", "EPOCH", "LEASE RENEWED", "LEASE EXPIRES", "LAST SEEN", "VERSION")
    return output.table(headers, rows)
