"""`jobplane tokens create|list|revoke`: join tokens for agents, API tokens for people and programs."""

from __future__ import annotations

import argparse
import re

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.credentials import CA_BUNDLE_FILE
from jobplane.client.flags import name_fields
from jobplane.client.security import ROLES, role_name
from jobplane.client.sync import Client
from jobplane.v1 import security_pb2

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("tokens", help="create, list and revoke tokens (admin)", description="Tokens.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create",
        help="create a join token (--role agent) or an API token; prints its secret once",
        description="Create a token. Role agent: a join token an agent enrolls with (default: one use, "
        "expires in 1h). Other roles: an API token acting as --user (default: no limit). "
        "The secret is printed once; the server keeps only its hash.",
    )
    create.add_argument("--role", required=True, choices=list(ROLES), help="what the token may do")
    create.add_argument("--user", default="", help="the user an API token acts as (required unless --role agent)")
    create.add_argument("--group", dest="groups", action="append", default=[], metavar="G",
                        help="a group of --user; repeatable")
    create.add_argument("--ttl", type=duration, default=0.0, metavar="DURATION",
                        help="lifetime: 3600, 90s, 30m, 1h, 7d or 1h30m (default: the server's)")
    create.add_argument("--uses", type=_uses, default=0, metavar="N", help="how many times it can be used")
    create.add_argument("--name-prefix", default="", metavar="P",
                        help="join tokens: agent names must start with P (e.g. `gpu-`)")
    create.set_defaults(run=run_create)
    name_fields(create, {"role": "--role", "user": "--user", "groups": "--group", "ttl_seconds": "--ttl",
                         "uses": "--uses", "name_prefix": "--name-prefix"})

    listing = actions.add_parser("list", help="list tokens (never their secrets)", description="List tokens.")
    listing.set_defaults(run=run_list)

    revoke = actions.add_parser("revoke", help="make a token stop working", description="Revoke a token now.")
    revoke.add_argument("token_id", metavar="ID", help="the token's id, as `tokens list` shows it")
    revoke.set_defaults(run=run_revoke)

    for parser in (create, listing, revoke):
        add_server_option(parser)
        add_output_option(parser)


def run_create(args: argparse.Namespace) -> int:
    with connect(args) as client:
        created = client.create_token(args.role, user=args.user, groups=args.groups, ttl=args.ttl,
                                      uses=args.uses, name_prefix=args.name_prefix)
        hint = usage_hint(client, created)
    if wants_json(args):
        print(output.json_document(created))
        return EXIT_OK
    print(token_details(created.token, secret=created.secret))
    print(f"The secret is shown only now. {hint}")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        tokens = list(client.list_tokens())
    if wants_json(args):
        print(output.json_document(tokens))
    elif tokens:
        print(token_table(tokens))
    else:
        print("no tokens; create one with `jobplane tokens create --role ROLE`")
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    with connect(args) as client:
        token = client.revoke_token(args.token_id)
    if wants_json(args):
        print(output.json_document(token))
    else:
        print(f"revoked token {token.id} ({role_name(token.role)}{_for_user(token)})")
    return EXIT_OK


def usage_hint(client: Client, created: security_pb2.CreateTokenResponse) -> str:
    """One line on how to use the new secret against the server `client` talks to."""
    secret = created.secret
    if created.token.role == security_pb2.ROLE_AGENT:
        credentials = client.credentials
        ca = credentials.ca_path if credentials and credentials.ca_path else f"DATA_DIR/{CA_BUNDLE_FILE}"
        return f"Start an agent with it: jobplane-agent --server {client.target} --token {secret} --ca {ca}"
    return f"Use it with --token {secret}, or: export JOBPLANE_TOKEN={secret}"


def token_table(tokens: list[security_pb2.Token]) -> str:
    rows = (
        (
            token.id,
            role_name(token.role),
            _holder(token),
            ",".join(token.groups),
            uses_left(token),
            expiry(token),
            token.created_by,
            output.age(token.create_time),
        )
        for token in tokens
    )
    return output.table(("ID", "ROLE", "FOR", "GROUPS", "USES LEFT", "EXPIRES", "CREATED BY", "CREATED"), rows)


def token_details(token: security_pb2.Token, *, secret: str = "") -> str:
    return output.fields(
        [
            ("ID", token.id),
            ("Role", role_name(token.role)),
            ("User", token.user),
            ("Groups", ",".join(token.groups)),
            ("Name prefix", token.name_prefix),
            ("Uses left", uses_left(token)),
            ("Expires", expiry(token)),
            *([("Secret", secret)] if secret else []),
        ]
    )


def uses_left(token: security_pb2.Token) -> str:
    return "unlimited" if token.uses_left < 0 else str(token.uses_left)


def expiry(token: security_pb2.Token) -> str:
    if token.revoked:
        return "revoked"
    return output.until(token.expire_time) if token.HasField("expire_time") else "never"


def duration(text: str) -> float:
    """Seconds in `3600`, `90s`, `30m`, `1h`, `7d` or `1h30m` (argparse type)."""
    text = text.strip().lower()
    parts = _DURATION_PART.findall(text)
    bare_number_among_others = len(parts) > 1 and any(not unit for _, unit in parts)
    if not text or "".join(number + unit for number, unit in parts) != text or bare_number_among_others:
        raise argparse.ArgumentTypeError(f"expected a duration such as 3600, 90s, 30m, 1h or 7d; got {text!r}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _uses(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be at least 0 (0: the server's default)")
    return value


def _holder(token: security_pb2.Token) -> str:
    """Whom an API token acts as, or which agent names a join token admits."""
    if token.user:
        return token.user
    return f"agents {token.name_prefix}*" if token.name_prefix else ""


def _for_user(token: security_pb2.Token) -> str:
    return f" for {token.user}" if token.user else ""
