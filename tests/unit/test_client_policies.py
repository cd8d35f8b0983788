"""Policy documents made fit to send, policy files read and written, scopes by name: no server involved."""

from __future__ import annotations

import math
import tomllib
from datetime import date, datetime

import pytest
from google.protobuf import json_format, struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from jobplane.client import JobFileError
from jobplane.client.locate import format_path, server_field
from jobplane.client.policies import document_struct, parse_scope, policy_label, policy_test_request, scope_name
from jobplane.client.policyfile import load_policy_file, policy_toml
from jobplane.v1 import policy_pb2

NOW = 1_700_000_000

MAINFRAME = """\
name = "ops"

[[rules]]
environment = "external"
when = { status = "ABEND", queue = { in = ["PRINT", "HOLD"] } }
status = "FAILURE"

[[rules]]
environment = "process"
status = "FAILURE"
[rules.when]
state = "exited"
exit_code = { range = [1, inf] }

[[rules]]
environment = "external"
when = { "JOB STATUS" = { glob = "S0C*" }, rc = { in = [4, 8] }, attempt = { range = [-inf, 3] } }
status = "RESTART"
"""


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def plain(struct: struct_pb2.Struct) -> dict:
    return json_format.MessageToDict(struct)


# Scopes


@pytest.mark.parametrize(("given", "value"), [
    ("default", policy_pb2.POLICY_SCOPE_DEFAULT), ("Group", policy_pb2.POLICY_SCOPE_GROUP),
    ("POLICY_SCOPE_USER", policy_pb2.POLICY_SCOPE_USER), (policy_pb2.POLICY_SCOPE_GROUP, policy_pb2.POLICY_SCOPE_GROUP),
])
def test_scopes_by_name(given, value):
    assert parse_scope(given) == value


def test_scope_names():
    assert [scope_name(value) for value in (1, 2, 3, 0, 99)] == ["default", "group", "user", "-", "99"]


@pytest.mark.parametrize("given", ["team", "", "unspecified", policy_pb2.POLICY_SCOPE_UNSPECIFIED, 99])
def test_an_unknown_scope_is_a_value_error_naming_the_scopes(given):
    with pytest.raises(ValueError, match="expected one of: default, group, user"):
        parse_scope(given)


def test_policies_are_labelled_as_test_policy_names_them():
    assert policy_label(policy_pb2.Policy(scope=policy_pb2.POLICY_SCOPE_GROUP, name="ops")) == "group ops"
    assert policy_label(policy_pb2.Policy(scope=policy_pb2.POLICY_SCOPE_USER, name="alice")) == "user alice"
    assert policy_label(policy_pb2.Policy(scope=policy_pb2.POLICY_SCOPE_DEFAULT, name="default")) == "default"


def test_a_test_request_takes_one_group_as_one_group():
    request = policy_test_request(environment="external", raw={"status": "ABEND"}, groups="ops")
    assert list(request.groups) == ["ops"] and dict(request.raw) == {"status": "ABEND"} and request.user == ""


# Documents made fit to send


def test_conditions_keep_their_meaning_through_a_struct():
    document = {"rules": [
        {"environment": "process", "when": {"exit_code": 0, "signal": {"in": [9, 15]}, "code": {"equals": 4}},
         "status": "FAILURE"},
        {"environment": "process", "when": {"exit_code": {"range": [1, math.inf]}, "load": {"range": [-math.inf, 2.5]}},
         "status": "FAILURE"},
    ]}
    assert plain(document_struct(document, name="ops")) == {"rules": [
        # integers in conditions become the text the server compares them as
        {"environment": "process", "when": {"exit_code": "0", "signal": {"in": ["9", "15"]}, "code": {"equals": "4"}},
         "status": "FAILURE"},
        # range ends stay numbers; an infinite end is open, which a Struct spells null
        {"environment": "process", "when": {"exit_code": {"range": [1.0, None]}, "load": {"range": [None, 2.5]}},
         "status": "FAILURE"},
    ]}


def test_a_matching_name_is_checked_and_not_sent():
    assert plain(document_struct({"name": "ops", "rules": []}, name="ops")) == {"rules": []}


@pytest.mark.parametrize(("document", "problem"), [
    ({"name": "dev", "rules": []}, "name: is 'dev', but this sets the policy 'ops'; correct it or remove it"),
    ({"rule": []}, 'rule: unknown key; did you mean "rules"?\n'
                   "rules: missing; add [[rules]] tables (or rules = [] for a policy without rules)"),
    ({}, "rules: missing; add [[rules]] tables (or rules = [] for a policy without rules)"),
    ([{"environment": "process"}], 'expected a mapping with rules, e.g. {"rules": [...]}; got a list'),
    ({"rules": [{"when": {"day": date(2026, 1, 2)}}]},
     'rules[0].when.day: is a date or time, which a policy cannot hold; quote it to match raw text, e.g. "2026-01-02"'),
    ({"rules": [{"when": {"rc": {"range": [math.inf, 5]}}}]},
     "rules[0].when.rc.range[0]: is inf; only an open end of a range may be infinite: [-inf, max] or [min, inf]"),
    ({"rules": [{"when": {"rc": math.nan}}]},
     "rules[0].when.rc: is nan; only an open end of a range may be infinite: [-inf, max] or [min, inf]"),
    ({"rules": [{"when": {"rc": {"range": [0, 2**60]}}}]},
     f"rules[0].when.rc.range[1]: is {2**60}, too large to send exactly; use a number between -2**53 and 2**53"),
])
def test_what_cannot_be_sent_is_refused_naming_the_field(document, problem):
    with pytest.raises(JobFileError) as refused:
        document_struct(document, name="ops")
    assert str(refused.value) == problem


def test_a_struct_is_sent_as_it_is():
    struct = struct_pb2.Struct()
    struct.update({"rules": [{"environment": "process", "when": {}, "status": "SUCCESS"}]})
    assert document_struct(struct, name="ops") is struct


# Policy files


def test_a_toml_policy_file_becomes_the_document_the_server_reads(tmp_path):
    policy_file = load_policy_file(write(tmp_path / "ops.toml", MAINFRAME))
    assert plain(policy_file.struct("ops")) == {"rules": [
        {"environment": "external", "when": {"status": "ABEND", "queue": {"in": ["PRINT", "HOLD"]}},
         "status": "FAILURE"},
        {"environment": "process", "when": {"state": "exited", "exit_code": {"range": [1.0, None]}},
         "status": "FAILURE"},
        {"environment": "external", "when": {"JOB STATUS": {"glob": "S0C*"}, "rc": {"in": ["4", "8"]},
                                             "attempt": {"range": [None, 3.0]}}, "status": "RESTART"},
    ]}


def test_a_json_policy_file_is_read_too(tmp_path):
    policy_file = load_policy_file(write(tmp_path / "ops.json", '{"rules": [\n {"environment": "python",\n'
                                                                 '  "when": {"rc": {"range": [1, null]}}}\n]}'))
    assert plain(policy_file.struct("ops")) == {
        "rules": [{"environment": "python", "when": {"rc": {"range": [1.0, None]}}}]}
    problem = policy_file.locate("policy.rules[0].status: is missing; add status = one of RUNNING, ...")
    assert str(problem) == f"{policy_file.file}:2: rules[0].status: is missing; add status = one of RUNNING, ..."


def test_file_problems_are_reported_at_their_lines_before_sending(tmp_path):
    path = write(tmp_path / "ops.toml", 'name = "dev"\n\n[[rules]]\nenvironment = "external"\n'
                                        "when = { status = 1979-05-27T07:32:00Z }\n")
    with pytest.raises(JobFileError) as refused:
        load_policy_file(path).struct("ops")
    assert str(refused.value).splitlines() == [
        f"{path}:1: name: is 'dev', but this sets the policy 'ops'; correct it or remove it",
        f'{path}:5: rules[0].when.status: is a date or time, which a policy cannot hold; quote it to match raw '
        'text, e.g. "1979-05-27T07:32:00+00:00"',
    ]


def test_invalid_toml_names_the_line(tmp_path):
    path = write(tmp_path / "ops.toml", '[[rules]]\nenvironment = "external\n')
    with pytest.raises(JobFileError, match=rf"^{path}:2: invalid TOML"):
        load_policy_file(path)


@pytest.mark.parametrize(("message", "shown"), [
    # the line of the key in [rules.when]; the path as the server gave it, less its prefix
    ("policy.rules[1].when.exit_code.range[0]: must be a number, got a string",
     "13: rules[1].when.exit_code.range[0]: must be a number, got a string"),
    ("policy.rules[1].status: unknown status 'FAILED'; did you mean 'FAILURE'?",
     "10: rules[1].status: unknown status 'FAILED'; did you mean 'FAILURE'?"),
    ('policy.rules[2].when["JOB STATUS"].glob: is empty', '17: rules[2].when["JOB STATUS"].glob: is empty'),
    ("document.rules[0]: has the same environment and conditions as document.rules[2]",
     "3: rules[0]: has the same environment and conditions as document.rules[2]"),
    ("policy.name: 'o p' is not a name", "1: name: 'o p' is not a name"),
])
def test_server_field_paths_map_to_lines_of_the_file(tmp_path, message, shown):
    path = write(tmp_path / "ops.toml", MAINFRAME)
    assert str(load_policy_file(path).locate(message)) == f"{path}:{shown}"


def test_messages_naming_nothing_in_the_file_are_not_located(tmp_path):
    policy_file = load_policy_file(write(tmp_path / "ops.toml", "rules = []\n"))
    assert policy_file.locate("scope: must be GROUP or USER; the default policy is read-only") is None
    assert policy_file.locate("name: 'o p' is not a name") is None  # the command line's, not the file's
    assert policy_file.locate("policy: must be a table") is None
    assert policy_file.locate("the policy store is busy") is None


def test_server_field_reads_quoted_keys_and_format_path_writes_them_back():
    assert server_field('policy.rules[0].when["\\u00e9tat \\"x\\""].in[1]: repeats') == (
        ("policy", "rules", 0, "when", 'état "x"', "in", 1), "repeats")
    assert format_path(("rules", 0, "when", 'état "x"', "in", 1)) == 'rules[0].when["état \\"x\\""].in[1]'
    assert server_field("no field here") is None


# Written back as a file


def stored(document: dict, *, scope=policy_pb2.POLICY_SCOPE_GROUP, name="ops") -> policy_pb2.Policy:
    return policy_pb2.Policy(scope=scope, name=name, version=3, document=document_struct(document, name=name),
                             update_time=Timestamp(seconds=NOW - 180), updated_by="alice")


def test_a_policy_is_written_as_the_file_that_set_reads_back(tmp_path):
    policy = stored(tomllib.loads(MAINFRAME))
    text = policy_toml(policy, now=NOW)
    moment = datetime.fromtimestamp(NOW - 180).strftime("%Y-%m-%d %H:%M:%S")
    assert text.splitlines() == [
        "# Policy   group ops",
        "# Version  3",
        f"# Updated  {moment} (3m ago) by alice",
        "",
        "[[rules]]",
        'environment = "external"',
        'when = { queue = { in = ["PRINT", "HOLD"] }, status = "ABEND" }',
        'status = "FAILURE"',
        "",
        "[[rules]]",
        'environment = "process"',
        'when = { exit_code = { range = [1, inf] }, state = "exited" }',
        'status = "FAILURE"',
        "",
        "[[rules]]",
        'environment = "external"',
        'when = { "JOB STATUS" = { glob = "S0C*" }, attempt = { range = [-inf, 3] }, rc = { in = ["4", "8"] } }',
        'status = "RESTART"',
    ]
    again = load_policy_file(write(tmp_path / "again.toml", text)).struct("ops")
    assert plain(again) == plain(policy.document)


def test_awkward_text_survives_the_round_trip(tmp_path):
    document = {"rules": [{"environment": "external", "when": {'say "hi"\\': 'tab\there\x7f\u00e9', "x.y": ""},
                           "status": "ON_HOLD"}]}
    text = policy_toml(stored(document), now=NOW)
    assert plain(load_policy_file(write(tmp_path / "p.toml", text)).struct("ops")) == document


def test_a_policy_without_rules_and_the_default_policy():
    empty = policy_toml(stored({"rules": []}, scope=policy_pb2.POLICY_SCOPE_USER, name="bob"), now=NOW)
    assert empty.splitlines()[0] == "# Policy   user bob"
    assert empty.splitlines()[-1] == "rules = []"
    assert not any(line.startswith("name") for line in empty.splitlines()), "settable as any user's or group's"
    default = policy_pb2.Policy(scope=policy_pb2.POLICY_SCOPE_DEFAULT, name="default", version=1)
    assert policy_toml(default).splitlines() == [
        "# Policy   default", "# Version  1", "# Updated  -", "rules = []"]
