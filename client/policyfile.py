"""Policy files: TOML (or JSON) documents holding `[[rules]]` tables, read for `jobplane policy set`
and written by `jobplane policy get`.

    name = "ops"                  # optional; if given, must be the group or user the policy is set for

    [[rules]]
    environment = "external"
    when = { status = "ABEND", queue = { in = ["PRINT", "HOLD"] } }
    status = "FAILURE"

The server validates the rules; `PolicyFile.locate` maps the field path of its INVALID_ARGUMENT
(`policy.rules[3].when.status: ...`) back to a line. `policy_toml` writes a policy in this form,
so the output of `get` is a file `set` reads back, for any group or user: it names the policy it
came from only in its header comments (`jobplane policy get --default > mine.toml`, then
`jobplane policy set --user alice mine.toml`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2

from jobplane.client import output
from jobplane.client.errors import FileProblem
from jobplane.client.documents import parse_json, parse_toml, read_text
from jobplane.client.locate import FieldPath, LineIndex, format_path, server_field
from jobplane.client.policies import document_struct, policy_label
from jobplane.v1 import policy_pb2

# How the server may name the document in a field path: `policy.rules[0]`, `document.rules[0]`.
_DOCUMENT_PREFIXES: tuple[FieldPath, ...] = (("policy", "document"), ("policy",), ("document",))
# The keys of a rule in the order people write them; others follow, sorted.
_RULE_KEYS = ("environment", "when", "status", "property", "value")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class PolicyFile:
    """A parsed policy file: its document plus what it takes to point back at its lines."""

    file: str
    document: Mapping[str, Any]
    lines: LineIndex

    def struct(self, policy: str) -> struct_pb2.Struct:
        """The document to send as the policy `policy` (a group or user name); raises JobFileError
        at the line of each value that cannot be sent, or of a `name` that is not `policy`."""
        return document_struct(self.document, name=policy, file=self.file, lines=self.lines)

    def locate(self, message: str) -> FileProblem | None:
        """Map a server message such as `policy.rules[3].when.status: ...` to a file line; None if
        the message names nothing in the file (e.g. `scope: ...`)."""
        found = server_field(message)
        if found is None:
            return None
        path, rest = found
        for prefix in _DOCUMENT_PREFIXES:
            if path[: len(prefix)] == prefix:
                path = path[len(prefix):]
                break
        if not path or path[0] not in self.document:
            return None
        return FileProblem(self.file, self.lines.line_of(path), format_path(path), rest)


def load_policy_file(path: str | Path) -> PolicyFile:
    """Read a `.toml` (or `.json`) policy file; raises JobFileError naming file and line of a syntax error."""
    file = str(path)
    text = read_text(path, "policy file")
    if file.endswith(".json"):
        return PolicyFile(file, parse_json(text, file), LineIndex.for_json(text))
    return PolicyFile(file, parse_toml(text, file), LineIndex.for_toml(text))


def policy_toml(policy: policy_pb2.Policy, *, now: float | None = None) -> str:
    """The policy as a policy file, which policy it is, its version and last change in comments at
    the top; no `name` line, so the file may be set as any group's or user's policy."""
    updated = output.moment(policy.update_time, now=now)
    by = f" by {policy.updated_by}" if policy.updated_by else ""
    fields = [("Policy", policy_label(policy)), ("Version", policy.version), ("Updated", f"{updated}{by}")]
    if policy.deleted:
        fields.append(("Deleted", "this version returned the default policy to the built-in rules below"
                       if policy.scope == policy_pb2.POLICY_SCOPE_DEFAULT else "this version deleted the policy"))
    header = output.fields(fields)
    lines = [f"# {line}" for line in header.splitlines()]
    rules = document_rules(policy.document)
    if not rules:
        lines.append("rules = []")
    for rule in rules:
        lines += ["", "[[rules]]"]
        if not isinstance(rule, Mapping):
            lines.append(f"# not a table: {_value(rule)}")
            continue
        keys = [key for key in _RULE_KEYS if key in rule] + sorted(key for key in rule if key not in _RULE_KEYS)
        lines += [f"{_key(key)} = {_value(rule[key])}" for key in keys]
    return "\n".join(lines)


def document_rules(document: struct_pb2.Struct) -> list[Any]:
    """The rules of a policy document, as plain values; [] when it has none."""
    rules = json_format.MessageToDict(document).get("rules", [])
    return rules if isinstance(rules, list) else []


def _value(value: Any, *, range_end: int | None = None) -> str:
    """A TOML value on one line. Struct numbers are doubles: whole ones show as integers. Null
    stands for the open end of a range, which TOML writes -inf / inf (and nothing else)."""
    if value is None:
        return {0: "-inf", 1: "inf"}.get(range_end, "null")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return f"[{', '.join(_value(item) for item in value)}]"
    if isinstance(value, Mapping) and value:
        items = (f"{_key(key)} = {_range(item) if key == 'range' else _value(item)}"
                 for key, item in sorted(value.items()))
        return f"{{ {', '.join(items)} }}"
    return "{}" if isinstance(value, Mapping) else str(value)


def _range(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2:
        return f"[{_value(value[0], range_end=0)}, {_value(value[1], range_end=1)}]"
    return _value(value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but TOML also wants DEL escaped."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
