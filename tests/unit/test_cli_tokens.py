"""Parsing the security commands and options, and roles by name: no server involved."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from jobplane.client import ROLES, output, parse_role
from jobplane.client.cli import build_parser
from jobplane.client.cmd_tokens import duration
from jobplane.client.security import role_name, token_request
from jobplane.v1 import security_pb2


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(("text", "seconds"), [("3600", 3600), ("1h", 3600), ("30m", 1800), ("90s", 90),
                                               ("7d", 604800), ("1h30m", 5400), ("1.5h", 5400), ("0", 0)])
def test_durations(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1w", "h", "-5", "1h30", "soon"])
def test_bad_durations_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected a duration"):
        duration(text)


def test_tokens_create_parses_every_option():
    args = parse("tokens", "create", "--role", "agent", "--ttl", "1h", "--uses", "3", "--name-prefix", "gpu-")
    assert (args.role, args.ttl, args.uses, args.name_prefix) == ("agent", 3600, 3, "gpu-")
    args = parse("tokens", "create", "--role", "submitter", "--user", "alice", "--group", "ml", "--group", "ops")
    assert (args.user, args.groups, args.ttl, args.uses) == ("alice", ["ml", "ops"], 0, 0)


@pytest.mark.parametrize(
    "argv",
    [
        ["tokens", "create"],  # --role is required
        ["tokens", "create", "--role", "root"],
        ["tokens", "create", "--role", "agent", "--ttl", "soon"],
        ["tokens", "create", "--role", "agent", "--uses", "-1"],
        ["tokens", "revoke"],
        ["whoami", "--token", "a", "--token-file", "b"],
    ],
)
def test_bad_security_command_lines_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2


def test_every_client_command_takes_the_credential_options():
    for argv in (["jobs", "list"], ["submit", "job.toml"], ["watch"], ["providers", "list"], ["tokens", "list"],
                 ["audit", "list"], ["ca", "show"], ["whoami"], ["tasks", "get", "1"]):
        args = parse(*argv, "--token", "s", "--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem")
        assert (args.token, args.ca, args.cert, args.key, args.insecure) == ("s", "ca.pem", "c.pem", "k.pem", False)
        assert parse(*argv, "--insecure", "--token-file", "t").token_file == "t"


def test_up_and_demo_take_insecure():
    assert parse("up", "--insecure").insecure
    assert parse("demo", "--insecure").insecure
    assert not parse("demo").insecure


def test_other_security_commands_parse():
    assert parse("tokens", "revoke", "tok1").token_id == "tok1"
    assert parse("audit", "list", "--filter", "code=OK").filter == "code=OK"
    assert parse("ca", "show", "--pem").pem


# Roles


def test_roles_by_name():
    assert list(ROLES) == ["admin", "operator", "submitter", "viewer", "agent"]
    assert parse_role("viewer") == security_pb2.ROLE_VIEWER
    assert parse_role("Admin") == parse_role("ROLE_ADMIN") == security_pb2.ROLE_ADMIN
    assert parse_role(security_pb2.ROLE_AGENT) == security_pb2.ROLE_AGENT
    assert role_name(security_pb2.ROLE_SUBMITTER) == "submitter"
    assert role_name(security_pb2.ROLE_UNSPECIFIED) == "-"


@pytest.mark.parametrize("role", ["root", "", "unspecified", 0, 99])
def test_unknown_roles_are_a_value_error_naming_the_roles_there_are(role):
    with pytest.raises(ValueError, match="expected one of: admin, operator, submitter, viewer, agent"):
        parse_role(role)


def test_token_requests():
    request = token_request("agent", ttl=timedelta(minutes=10), uses=2, name_prefix="local-")
    assert (request.role, request.ttl_seconds, request.uses, request.name_prefix) == (
        security_pb2.ROLE_AGENT, 600, 2, "local-")
    assert list(token_request("viewer", user="vera", groups="ops").groups) == ["ops"]
    with pytest.raises(ValueError):
        token_request("agent", ttl=-1)


def test_times_ahead_read_as_in_and_times_past_as_ago():
    stamp = Timestamp(seconds=1_000_000)
    assert output.until(stamp, now=1_000_000 - 599.6) == "in 10m"
    assert output.until(stamp, now=1_000_000 + 3.2) == "3.2s ago"
    assert output.moment(stamp, now=1_000_000 - 86400 * 400).endswith("(in 400d)")
    assert output.until(Timestamp()) == "-"
