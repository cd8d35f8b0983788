"""`jobplane policy get|list|set|delete|test`: how raw statuses map onto the normalized ones, per group and user."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from jobplane.client import output
from jobplane.client.command import EXIT_OK, add_output_option, add_server_option, connect, wants_json
from jobplane.client.errors import InvalidArgument, JobFileError
from jobplane.client.policies import policy_label, scope_name
from jobplane.client.policyfile import PolicyFile, document_rules, load_policy_file, policy_toml
from jobplane.client.sync import Client
from jobplane.v1 import policy_pb2

_PRECEDENCE = ("For each status the server uses the first matching rule of the user's policy, else of "
               "their groups' policies, else of the default policy; nothing matches: UNKNOWN.")


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "policy",
        help="see, set and try the policies that normalize raw statuses",
        description=f"Policies: ordered rules mapping raw properties from an environment to a normalized "
        f"status. {_PRECEDENCE}",
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    get = actions.add_parser(
        "get",
        help="show a policy as a policy file",
        description="Show the current version of a policy (or --version N): who changed it when, then its "
        "rules as a policy file that `jobplane policy set` reads back, for any group or user "
        "(`jobplane policy get --default > mine.toml`, edit, `jobplane policy set --user alice mine.toml`).",
    )
    _add_target(get)
    get.add_argument("--version", type=int, default=0, metavar="N",
                     help="that version (`jobplane policy history` lists them); default: the current one")
    get.set_defaults(run=run_get)

    history = actions.add_parser(
        "history",
        help="list every version of a policy",
        description="List every version of a policy, newest first: who stored it, when, how many rules. "
        "The default policy's version 1 is the built-in rules. `jobplane policy get --version N` shows one.",
    )
    _add_target(history)
    history.set_defaults(run=run_history)

    listing = actions.add_parser("list", help="list policies", description="List every policy and its version.")
    listing.set_defaults(run=run_list)

    set_ = actions.add_parser(
        "set",
        help="store a new version of a policy from a file",
        description="Store the rules in FILE as the next version of a group's or user's policy, or of the "
        "default policy (operators and admins: it decides how every task ends). FILE is "
        'TOML with [[rules]] tables, e.g. environment = "external", when = { status = "ABEND", queue = '
        '{ in = ["PRINT", "HOLD"] } }, status = "FAILURE" (or JSON, {"rules": [...]}); conditions are a '
        'value, { equals = ... }, { in = [...] }, { range = [min, max] } or { glob = "S0C*" }. A rule the '
        "server refuses is reported as FILE:LINE: field: what to fix.",
    )
    _add_target(set_)
    set_.add_argument("file", metavar="FILE", help="policy file: .toml, or .json")
    set_.set_defaults(run=run_set)

    delete = actions.add_parser(
        "delete",
        help="delete a group or user policy, or return the default policy to the built-in rules",
        description=f"Delete a group's or user's policy; --default returns the default policy to the "
        f"built-in rules. Either is a new version, kept in the history. {_PRECEDENCE}",
    )
    _add_target(delete)
    delete.set_defaults(run=run_delete)

    test = actions.add_parser(
        "test",
        help="show how raw values would map for a user",
        description="Show the normalized status given raw values from an environment would have for a user "
        "(default: you) and groups, which policy and rule decided, and why. Changes nothing.",
    )
    test.add_argument("--env", required=True, metavar="ENV", help="the environment: process, python, external, ...")
    test.add_argument("--user", default="", metavar="U", help="the user whose policy applies (default: you)")
    test.add_argument("--group", dest="groups", action="append", default=[], metavar="G",
                      help="a group whose policy applies, in order; repeatable")
    test.add_argument("raw", nargs="*", action=_RawValues, default={}, metavar="KEY=VALUE",
                      help="a raw property, e.g. status=ABEND queue=PRINT")
    test.set_defaults(run=run_test)

    for parser in (get, history, listing, set_, delete, test):
        add_server_option(parser)
        add_output_option(parser)


def _add_target(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--group", metavar="G", help="the policy of group G")
    target.add_argument("--user", metavar="U", help="the policy of user U")
    target.add_argument("--default", action="store_true",
                        help="the default policy (built in as version 1; operators and admins may change it)")


class _RawValues(argparse.Action):
    """KEY=VALUE arguments into a dict; a missing `=` or a repeated key is a usage error."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Sequence[str],
                 option_string: str | None = None) -> None:
        raw: dict[str, str] = {}
        for text in values:
            key, equals, value = text.partition("=")
            if not key or not equals:
                parser.error(f"expected KEY=VALUE, e.g. status=ABEND; got {text!r}")
            if key in raw:
                parser.error(f"raw property {key!r} is given twice ({raw[key]!r} and {value!r}); give it once")
            raw[key] = value
        setattr(namespace, self.dest, raw)


def target(args: argparse.Namespace) -> tuple[str, str]:
    """The (scope, name) of --group G, --user U or --default."""
    if args.group is not None:
        return "group", args.group
    if args.user is not None:
        return "user", args.user
    return "default", ""


def run_get(args: argparse.Namespace) -> int:
    scope, name = target(args)
    with connect(args) as client:
        policy = client.get_policy(scope, name, args.version)
    print(output.json_document(policy) if wants_json(args) else policy_toml(policy))
    return EXIT_OK


def run_history(args: argparse.Namespace) -> int:
    scope, name = target(args)
    with connect(args) as client:
        versions = list(client.list_policy_versions(scope, name))
    print(output.json_document(versions) if wants_json(args) else history_table(versions))
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        policies = list(client.list_policies())
    if wants_json(args):
        print(output.json_document(policies))
    elif policies:
        print(policy_table(policies))
    else:
        print("no policies; set one with `jobplane policy set --group G FILE.toml`")
    return EXIT_OK


def run_set(args: argparse.Namespace) -> int:
    scope, name = target(args)
    policy_file = load_policy_file(args.file)  # before connecting: a bad file never reaches a server
    with connect(args) as client:
        policy = set_policy(client, scope, name, policy_file)
    if wants_json(args):
        print(output.json_document(policy))
    else:
        rules = output.count(len(document_rules(policy.document)), "rule")
        print(f"set the policy of {policy_label(policy)}: version {policy.version}, {rules}")
    return EXIT_OK


def run_delete(args: argparse.Namespace) -> int:
    scope, name = target(args)
    with connect(args) as client:
        client.delete_policy(scope, name)
    if wants_json(args):
        print(json.dumps({"scope": scope, "name": name or "default", "deleted": True}, indent=2))
    elif scope == "default":
        print("the default policy is the built-in rules again")
    else:
        print(f"deleted the policy of {scope} {name}")
    return EXIT_OK


def run_test(args: argparse.Namespace) -> int:
    with connect(args) as client:
        result = client.test_policy(environment=args.env, raw=args.raw, user=args.user, groups=args.groups)
    print(output.json_document(result) if wants_json(args) else decision_details(result))
    return EXIT_OK


def set_policy(client: Client, scope: str, name: str, policy_file: PolicyFile) -> policy_pb2.Policy:
    """Send the file's rules; one the server rejects is reported at its line in the file."""
    document = policy_file.struct(name or "default")
    try:
        return client.set_policy(scope, name, document)
    except InvalidArgument as error:
        problem = policy_file.locate(error.message)
        if problem is None:
            raise
        raise JobFileError([problem]) from error


def policy_table(policies: Sequence[policy_pb2.Policy], *, now: float | None = None) -> str:
    rows = (
        (
            scope_name(policy.scope),
            policy.name,
            policy.version,
            len(document_rules(policy.document)),
            output.age(policy.update_time, now=now),
            policy.updated_by,
        )
        for policy in policies
    )
    return output.table(("SCOPE", "NAME", "VERSION", "RULES", "UPDATED", "BY"), rows)


def history_table(versions: Sequence[policy_pb2.Policy], *, now: float | None = None) -> str:
    rows = (
        (
            version.version,
            output.moment(version.update_time, now=now),
            version.updated_by or "-",
            len(document_rules(version.document)),
            _what(version),
        )
        for version in versions
    )
    return output.table(("VERSION", "UPDATED", "BY", "RULES", "CHANGE"), rows)


def _what(version: policy_pb2.Policy) -> str:
    if version.scope == policy_pb2.POLICY_SCOPE_DEFAULT and not version.updated_by and version.version == 1:
        return "built in"
    if version.deleted:
        return "back to the built-in rules" if version.scope == policy_pb2.POLICY_SCOPE_DEFAULT else "deleted"
    return "set"


def decision_details(result: policy_pb2.TestPolicyResponse) -> str:
    """The normalized status, the policy and rule that decided it (`-` when none), and why."""
    return output.fields([
        ("Status", output.status(result.status)),
        ("Policy", result.policy),
        ("Rule", f"rules[{result.rule_index}]" if result.policy else ""),
        ("Reason", result.reason),
        *((prop.name.replace("_", " ").capitalize(), _property_value(prop)) for prop in result.properties),
    ])


def _property_value(prop: policy_pb2.NormalizedProperty) -> str:
    """`HIGH (default rules[12])`, or `- (no rule matches)`."""
    return f"{prop.value} ({prop.policy} rules[{prop.rule_index}])" if prop.policy else "- (no rule matches)"
