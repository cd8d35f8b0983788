"""`jobplane ca show`: the certificate authority agents and clients of this server trust."""

from __future__ import annotations

import argparse
import json

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.v1 import security_pb2


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("ca", help="the server's certificate authority", description="Certificate authority.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    show = actions.add_parser(
        "show",
        help="show the CA's subject, fingerprint and validity",
        description="Show the server's CA. Compare the fingerprint with the one on the server machine before "
        "trusting a bundle fetched with --pem.",
    )
    show.add_argument("--pem", action="store_true", help="print the CA bundle (PEM) to trust, nothing else")
    show.set_defaults(run=run_show)
    add_server_option(show)
    add_output_option(show)


def run_show(args: argparse.Namespace) -> int:
    with connect(args) as client:
        authority = client.get_authority()
    if args.pem:
        print(authority.ca_bundle_pem.decode().rstrip())
    elif wants_json(args):
        print(json.dumps(authority_dict(authority), indent=2))
    else:
        print(authority_details(authority))
    return EXIT_OK


def authority_dict(authority: security_pb2.GetAuthorityResponse) -> dict:
    """The proto JSON form, with the bundle as PEM text rather than base64."""
    return {**output.message_dict(authority), "ca_bundle_pem": authority.ca_bundle_pem.decode()}


def authority_details(authority: security_pb2.GetAuthorityResponse) -> str:
    bundle = authority.ca_bundle_pem.decode()
    return output.fields(
        [
            ("Subject", authority.subject),
            ("Fingerprint", f"SHA-256 {authority.fingerprint}"),
            ("Valid from", output.moment(authority.not_before)),
            ("Valid until", output.moment(authority.not_after)),
            ("Certificates", bundle.count("-----BEGIN CERTIFICATE-----")),
        ]
    )
