"""`jobplane policy get|list|set|delete|test` and the SDK calls under them, over a real gRPC channel to a
scripted PolicyService: targets from flags, files sent as documents, rejected rules at their lines."""

from __future__ import annotations

import asyncio
import json
import re
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from jobplane.client import AsyncClient, Client, NotFound
from jobplane.client.cli import build_parser, main
from jobplane.client.cmd_policy import policy_table
from jobplane.v1 import policy_pb2, policy_pb2_grpc, status_pb2

NOW = 1_700_000_000
PAGE = 2  # the scripted server's largest page
DEFAULT, GROUP, USER = policy_pb2.POLICY_SCOPE_DEFAULT, policy_pb2.POLICY_SCOPE_GROUP, policy_pb2.POLICY_SCOPE_USER

OPS = """\
name = "ops"

[[rules]]
environment = "external"
when = { status = "ABEND", queue = { in = ["PRINT", "HOLD"] } }
status = "FAILURE"

[[rules]]
environment = "process"
when = { exit_code = { range = [1, inf] } }
status = "FAILED"
"""
OPS_DOCUMENT = {"rules": [
    {"environment": "external", "when": {"status": "ABEND", "queue": {"in": ["PRINT", "HOLD"]}}, "status": "FAILURE"},
    {"environment": "process", "when": {"exit_code": {"range": [1.0, None]}}, "status": "FAILED"},
]}
DECIDED = policy_pb2.TestPolicyResponse(
    status=status_pb2.NORMALIZED_STATUS_FAILURE, policy="group ops", rule_index=0,
    reason="group policy 'ops' rules[0]: external: status = 'ABEND' and queue in ['PRINT', 'HOLD'] -> FAILURE")
UNDECIDED = policy_pb2.TestPolicyResponse(
    status=status_pb2.NORMALIZED_STATUS_UNKNOWN,
    reason="no rule matches external with status='ODD' (consulted default 'default')")


def stored(scope: int, name: str, version: int, document: dict) -> policy_pb2.Policy:
    policy = policy_pb2.Policy(scope=scope, name=name, version=version, update_time=Timestamp(seconds=NOW),
                               updated_by="admin")
    policy.document.update(document)
    return policy


class ScriptedPolicies(policy_pb2_grpc.PolicyServiceServicer):
    """Keeps policies by (scope, name) and numbers their versions; rejects every SetPolicy with
    `reject` as the server's INVALID_ARGUMENT message when given; answers TestPolicy with DECIDED
    for status ABEND and UNDECIDED otherwise. Records every request."""

    def __init__(self, reject: str = "") -> None:
        self.policies = {(DEFAULT, "default"): stored(DEFAULT, "default", 1, {"rules": []})}
        self.reject = reject
        self.requests: list[object] = []

    def _find(self, request, context) -> tuple[int, str]:
        key = (request.scope, request.name or "default" if request.scope == DEFAULT else request.name)
        if key not in self.policies:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{policy_pb2.PolicyScope.Name(key[0])} {key[1]!r} has no policy")
        return key

    def GetPolicy(self, request, context):
        self.requests.append(request)
        return policy_pb2.GetPolicyResponse(policy=self.policies[self._find(request, context)])

    def ListPolicies(self, request, context):
        self.requests.append(request)
        policies = list(self.policies.values())
        start = int(request.page_token or 0)
        end = start + min(request.page_size, PAGE)
        token = str(end) if end < len(policies) else ""
        return policy_pb2.ListPoliciesResponse(policies=policies[start:end], next_page_token=token)

    def SetPolicy(self, request, context):
        self.requests.append(request)
        if self.reject:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, self.reject)
        previous = self.policies.get((request.scope, request.name))
        policy = policy_pb2.Policy(scope=request.scope, name=request.name, document=request.document,
                                   version=previous.version + 1 if previous else 1,
                                   update_time=Timestamp(seconds=NOW), updated_by="alice")
        self.policies[(request.scope, request.name)] = policy
        return policy_pb2.SetPolicyResponse(policy=policy)

    def DeletePolicy(self, request, context):
        self.requests.append(request)
        del self.policies[self._find(request, context)]
        return policy_pb2.DeletePolicyResponse()

    def TestPolicy(self, request, context):
        self.requests.append(request)
        return DECIDED if request.raw.get("status") == "ABEND" else UNDECIDED


@pytest.fixture
def serve():
    servers = []

    def start(reject: str = "") -> tuple[str, ScriptedPolicies]:
        policies = ScriptedPolicies(reject)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        policy_pb2_grpc.add_PolicyServiceServicer_to_server(policies, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}", policies

    yield start
    for server in servers:
        server.stop(None)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def run(address: str, *argv: str) -> int:
    return main([*argv, "--server", address, "--insecure"])


# Command lines


@pytest.mark.parametrize("argv", [
    ["policy", "get"],  # one of --group, --user, --default
    ["policy", "get", "--group", "ops", "--user", "alice"],
    ["policy", "set", "ops.toml"],
    ["policy", "set", "--default"],  # FILE
    ["policy", "history"],  # one of --group, --user, --default
    ["policy", "get", "--default", "--version", "two"],
    ["policy", "set", "--group", "ops"],  # FILE
    ["policy", "test", "status=ABEND"],  # --env
    ["policy", "test", "--env", "external", "ABEND"],
    ["policy", "test", "--env", "external", "=ABEND"],
    ["policy", "test", "--env", "external", "status=ABEND", "status=HELD"],
])
def test_bad_policy_command_lines_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2


def test_policy_commands_take_the_server_and_credential_options():
    for argv in (["get", "--default"], ["list"], ["set", "--user", "u", "f.toml"], ["delete", "--group", "g"],
                 ["test", "--env", "process"]):
        args = parse("policy", *argv, "--server", "h:1", "--token", "s", "--ca", "ca.pem", "-o", "json")
        assert (args.server, args.token, args.ca, args.output) == ("h:1", "s", "ca.pem", "json")


def test_raw_values_keep_everything_after_the_first_equals_sign():
    args = parse("policy", "test", "--env", "external", "status=CC=0004", "empty=", "--group", "ops", "--group", "dev")
    assert (args.raw, args.groups, args.user) == ({"status": "CC=0004", "empty": ""}, ["ops", "dev"], "")
    assert parse("policy", "test", "--env", "process").raw == {}


def test_the_list_counts_rules_and_says_who_changed_what_when():
    policies = [stored(DEFAULT, "default", 1, {"rules": [{}] * 40}), stored(GROUP, "ops", 3, OPS_DOCUMENT)]
    cells = [re.split(r"\s{2,}", line) for line in policy_table(policies, now=NOW + 120).splitlines()]
    assert cells == [["SCOPE", "NAME", "VERSION", "RULES", "UPDATED", "BY"],
                     ["default", "default", "1", "40", "2m ago", "admin"],
                     ["group", "ops", "3", "2", "2m ago", "admin"]]


# Against the scripted service


def test_set_sends_the_files_rules_and_get_shows_them_as_a_file_set_reads_back(serve, tmp_path, capsys):
    address, policies = serve()
    path = write(tmp_path / "ops.toml", OPS)

    assert run(address, "policy", "set", "--group", "ops", path) == 0
    assert capsys.readouterr().out.strip() == "set the policy of group ops: version 1, 2 rules"
    (request,) = policies.requests
    assert (request.scope, request.name) == (GROUP, "ops")
    assert json_format.MessageToDict(request.document) == OPS_DOCUMENT

    assert run(address, "policy", "get", "--group", "ops") == 0
    shown = capsys.readouterr().out
    assert shown.splitlines()[:2] == ["# Policy   group ops", "# Version  1"]
    assert "by alice" in shown.splitlines()[2]
    assert 'when = { queue = { in = ["PRINT", "HOLD"] }, status = "ABEND" }' in shown

    again = write(tmp_path / "again.toml", shown)
    assert run(address, "policy", "set", "--group", "ops", again, "-o", "json") == 0
    policy = json.loads(capsys.readouterr().out)
    assert (policy["scope"], policy["name"], policy["version"]) == ("GROUP", "ops", 2)
    assert policy["document"] == OPS_DOCUMENT and policies.requests[-1].document == request.document


def test_a_rule_the_server_refuses_is_reported_at_its_line(serve, tmp_path, capsys):
    address, _ = serve(reject="policy.rules[1].status: unknown status 'FAILED'; did you mean 'FAILURE'? Use one of "
                              "RUNNING, FAILURE, ...")
    path = write(tmp_path / "ops.toml", OPS)

    assert run(address, "policy", "set", "--group", "ops", path) == 2
    assert capsys.readouterr().err.strip() == (
        f"{path}:11: rules[1].status: unknown status 'FAILED'; did you mean 'FAILURE'? "
        "Use one of RUNNING, FAILURE, ...")


def test_a_refusal_naming_nothing_in_the_file_is_shown_as_the_server_said(serve, tmp_path, capsys):
    address, _ = serve(reject="name: 'o p' is not a name; use up to 128 letters, digits and _ . : @ + -")
    path = write(tmp_path / "ops.toml", "rules = []\n")
    assert run(address, "policy", "set", "--group", "o p", path) == 2
    assert capsys.readouterr().err.strip() == (
        "jobplane: name: 'o p' is not a name; use up to 128 letters, digits and _ . : @ + -")


def test_a_file_that_cannot_be_sent_is_refused_before_sending(serve, tmp_path, capsys):
    address, policies = serve()
    path = write(tmp_path / "ops.toml", OPS + "\n[[rules]]\nenvironment = \"external\"\n"
                                              "when = { since = 2026-01-01 }\nstatus = \"RUNNING\"\n")

    assert run(address, "policy", "set", "--user", "ops", path) == 2
    assert capsys.readouterr().err.strip() == (
        f"{path}:15: rules[2].when.since: is a date or time, which a policy cannot hold; quote it "
        'to match raw text, e.g. "2026-01-01"')
    assert run(address, "policy", "set", "--user", "alice", write(tmp_path / "ops2.toml", OPS)) == 2
    assert capsys.readouterr().err.strip() == (
        f"{tmp_path / 'ops2.toml'}:1: name: is 'ops', but this sets the policy 'alice'; correct it or remove it")
    assert policies.requests == []


def test_get_the_default_policy_and_a_missing_one(serve, capsys):
    address, policies = serve()
    assert run(address, "policy", "get", "--default", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["name"] == "default"
    assert (policies.requests[0].scope, policies.requests[0].name) == (DEFAULT, "")

    assert run(address, "policy", "get", "--user", "bob") == 3
    assert capsys.readouterr().err.strip() == "jobplane: POLICY_SCOPE_USER 'bob' has no policy"


def test_list_reads_every_page(serve, tmp_path, capsys):
    address, _ = serve()
    for scope, name in (("--group", "ops"), ("--user", "alice")):
        assert run(address, "policy", "set", scope, name, write(tmp_path / "p.toml", "rules = []\n")) == 0
    capsys.readouterr()

    assert run(address, "policy", "list", "-o", "json") == 0
    assert [(p["scope"], p["name"]) for p in json.loads(capsys.readouterr().out)] == [
        ("DEFAULT", "default"), ("GROUP", "ops"), ("USER", "alice")]
    assert run(address, "policy", "list") == 0
    assert [line.split()[:3] for line in capsys.readouterr().out.splitlines()] == [
        ["SCOPE", "NAME", "VERSION"], ["default", "default", "1"], ["group", "ops", "1"], ["user", "alice", "1"]]


def test_delete_says_what_it_deleted(serve, tmp_path, capsys):
    address, policies = serve()
    assert run(address, "policy", "set", "--group", "ops", write(tmp_path / "p.toml", "rules = []\n")) == 0
    capsys.readouterr()

    assert run(address, "policy", "delete", "--group", "ops") == 0
    assert capsys.readouterr().out.strip() == "deleted the policy of group ops"
    assert run(address, "policy", "delete", "--group", "ops", "-o", "json") == 3  # gone already
    assert "has no policy" in capsys.readouterr().err
    assert (GROUP, "ops") not in policies.policies


def test_test_sends_the_raw_values_and_shows_what_decided(serve, capsys):
    address, policies = serve()

    assert run(address, "policy", "test", "--env", "external", "--user", "bob", "--group", "ops", "--group", "dev",
               "status=ABEND", "queue=PRINT") == 0
    assert capsys.readouterr().out.splitlines() == [
        "Status  FAILURE",
        "Policy  group ops",
        "Rule    rules[0]",
        "Reason  group policy 'ops' rules[0]: external: status = 'ABEND' and queue in ['PRINT', 'HOLD'] -> FAILURE",
    ]
    (request,) = policies.requests
    assert (request.environment, request.user, list(request.groups)) == ("external", "bob", ["ops", "dev"])
    assert dict(request.raw) == {"status": "ABEND", "queue": "PRINT"}

    assert run(address, "policy", "test", "--env", "external", "status=ODD") == 0
    assert capsys.readouterr().out.splitlines()[:3] == ["Status  UNKNOWN", "Policy  -", "Rule    -"]
    assert run(address, "policy", "test", "--env", "external", "status=ODD", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "UNKNOWN"


# The SDK twins


def test_the_blocking_and_async_clients_do_alike(serve):
    address, policies = serve()
    raw = {"status": "ABEND"}

    def run_blocking():
        with Client.connect(address, insecure=True) as client:
            stored = client.set_policy("group", "ops", OPS_DOCUMENT)
            got = client.get_policy("group", "ops")
            listed = list(client.list_policies(page_size=1))
            tested = client.test_policy(environment="external", raw=raw, groups=["ops"])
            client.delete_policy("group", "ops")
            with pytest.raises(NotFound):
                client.get_policy("group", "ops")
            return stored, got, listed, tested

    async def run_async():
        async with await AsyncClient.connect(address, insecure=True) as client:
            stored = await client.set_policy("group", "ops", OPS_DOCUMENT)
            got = await client.get_policy("group", "ops")
            listed = [policy async for policy in client.list_policies(page_size=1)]
            tested = await client.test_policy(environment="external", raw=raw, groups=["ops"])
            await client.delete_policy("group", "ops")
            with pytest.raises(NotFound):
                await client.get_policy("group", "ops")
            return stored, got, listed, tested

    blocking = run_blocking()
    first_requests = list(policies.requests)
    policies.requests.clear()
    assert asyncio.run(run_async()) == blocking
    assert policies.requests == first_requests
    stored_policy, got, listed, tested = blocking
    assert got == stored_policy and json_format.MessageToDict(got.document) == OPS_DOCUMENT
    assert [policy.name for policy in listed] == ["default", "ops"] and tested == DECIDED


def test_the_sdk_refuses_an_unknown_scope_before_sending(serve):
    address, policies = serve()
    with Client.connect(address, insecure=True) as client:
        for call in (lambda: client.get_policy("team", "ops"), lambda: client.delete_policy("", "ops"),
                     lambda: client.set_policy("global", "ops", {"rules": []})):
            with pytest.raises(ValueError, match="unknown policy scope"):
                call()
    assert policies.requests == []
