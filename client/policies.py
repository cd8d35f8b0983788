"""What `Client` and `AsyncClient` share for PolicyService: scopes by the names users type
(`default`, `group`, `user`), a policy document as the Struct the server reads, and the requests.

A policy document is `{"rules": [...]}` (optionally with `name`, which must then be the policy's
name). The server validates the rules; here a document is only made fit to travel: a Struct
holds no dates and no infinities and keeps every number as a double, so
- an integer in a condition becomes its decimal text, which is how the server compares it anyway;
- `inf` at the open end of a range (`{ range = [1, inf] }`) becomes null, the server's other
  spelling of an open end;
- a date or time, or any other infinity, is refused before sending.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

from google.protobuf import struct_pb2

from jobplane.client.errors import FileProblem, JobFileError
from jobplane.client.documents import kind_of, unknown_key
from jobplane.client.locate import FieldPath, LineIndex, format_path
from jobplane.v1 import policy_pb2

SCOPES: dict[str, int] = {
    "default": policy_pb2.POLICY_SCOPE_DEFAULT,
    "group": policy_pb2.POLICY_SCOPE_GROUP,
    "user": policy_pb2.POLICY_SCOPE_USER,
}
_NAMES = {value: name for name, value in SCOPES.items()}
DOCUMENT_KEYS = ("name", "rules")
# A double holds every integer up to this exactly.
_EXACT_INTEGER = 2**53


def parse_scope(scope: str | int) -> int:
    """The PolicyScope value of `scope`: "default", "group" or "user" (any case), or a PolicyScope value.

    Raises ValueError naming the scopes there are.
    """
    if isinstance(scope, int) and scope in _NAMES:
        return scope
    name = str(scope).strip().lower().removeprefix("policy_scope_")
    if name not in SCOPES:
        raise ValueError(f"unknown policy scope {scope!r}; expected one of: {', '.join(SCOPES)}")
    return SCOPES[name]


def scope_name(value: int) -> str:
    """`group` for POLICY_SCOPE_GROUP; "-" for unspecified, the number for a value newer than this client."""
    if value == policy_pb2.POLICY_SCOPE_UNSPECIFIED:
        return "-"
    return _NAMES.get(value, str(value))


def policy_label(policy: policy_pb2.Policy) -> str:
    """`group ops`, `user alice`, or `default`: which policy this is, as TestPolicy names it."""
    if policy.scope == policy_pb2.POLICY_SCOPE_DEFAULT:
        return "default"
    return f"{scope_name(policy.scope)} {policy.name}".strip()


def get_request(scope: str | int, name: str = "", version: int = 0) -> policy_pb2.GetPolicyRequest:
    return policy_pb2.GetPolicyRequest(scope=parse_scope(scope), name=name, version=version)


def versions_request(scope: str | int, name: str = "", page_size: int = 100) -> policy_pb2.ListPolicyVersionsRequest:
    return policy_pb2.ListPolicyVersionsRequest(scope=parse_scope(scope), name=name, page_size=page_size)


def delete_request(scope: str | int, name: str) -> policy_pb2.DeletePolicyRequest:
    return policy_pb2.DeletePolicyRequest(scope=parse_scope(scope), name=name)


def set_request(scope: str | int, name: str, document: Mapping[str, Any]) -> policy_pb2.SetPolicyRequest:
    """A SetPolicy request; raises ValueError for an unknown scope, JobFileError for a document that
    cannot be sent (see the module's docstring). A Struct is sent as it is."""
    scope_value = parse_scope(scope)
    return policy_pb2.SetPolicyRequest(scope=scope_value, name=name, document=document_struct(document, name=name))


def policy_test_request(
    *, environment: str, raw: Mapping[str, str], user: str = "", groups: Sequence[str] = ()
) -> policy_pb2.TestPolicyRequest:
    if isinstance(groups, str):
        groups = [groups]  # one group, not its letters
    return policy_pb2.TestPolicyRequest(user=user, groups=list(groups), environment=environment, raw=dict(raw))


def document_struct(
    document: Mapping[str, Any], *, name: str, file: str | None = None, lines: LineIndex | None = None
) -> struct_pb2.Struct:
    """The Struct of a policy document `{"rules": [...]}` for the policy `name` (see the module's docstring).

    A `name` in the document must be `name`; it is checked here and not sent. Raises JobFileError
    listing every problem, each at its line when `file` and `lines` say where the document came from.
    """
    if isinstance(document, struct_pb2.Struct):
        return document  # an SDK caller's, already converted
    problems = _DocumentCheck(file, lines or LineIndex({}))
    rules = problems.top(document, name)
    converted = problems.value(rules, ("rules",))
    problems.raise_any()
    struct = struct_pb2.Struct()
    struct.update({"rules": converted})
    return struct


class _DocumentCheck:
    """Walks a document, converting what a Struct cannot hold and collecting what it must refuse."""

    def __init__(self, file: str | None, lines: LineIndex) -> None:
        self._file = file
        self._lines = lines
        self._problems: list[FileProblem] = []

    def report(self, path: FieldPath, message: str) -> None:
        line = self._lines.line_of(path) or (1 if self._file is not None else None)
        self._problems.append(FileProblem(self._file, line, format_path(path), message))

    def raise_any(self) -> None:
        if self._problems:
            raise JobFileError(sorted(self._problems, key=lambda problem: problem.line or 0))

    def top(self, document: Any, name: str) -> Any:
        """The rules of the document, its other keys checked."""
        table = "a mapping" if self._file is None else "a table"
        if not isinstance(document, Mapping):
            self.report((), f'expected {table} with rules, e.g. {{"rules": [...]}}; got {kind_of(document, table)}')
            self.raise_any()
        for key in document:
            if key not in DOCUMENT_KEYS:
                self.report((str(key),), unknown_key(str(key), DOCUMENT_KEYS))
        if "name" in document and document["name"] != name:
            self.report(("name",), f"is {document['name']!r}, but this sets the policy {name!r}; correct it or "
                                   "remove it")
        if "rules" not in document:
            self.report(("rules",), "missing; add [[rules]] tables (or rules = [] for a policy without rules)")
        return document.get("rules", [])

    def value(self, value: Any, path: FieldPath) -> Any:
        """`value` as a Struct holds it: mappings, lists, text, doubles, booleans and null."""
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        if isinstance(value, (datetime, date, time)):
            self.report(path, f"is a date or time, which a policy cannot hold; quote it to match raw text, "
                              f'e.g. "{value.isoformat()}"')
            return None
        if isinstance(value, int):
            return self._integer(value, path)
        if isinstance(value, float):
            return self._float(value, path)
        if isinstance(value, Mapping):
            return {str(key): self.value(item, path + (str(key),)) for key, item in value.items()}
        if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray)):
            return [self.value(item, path + (index,)) for index, item in enumerate(value)]
        self.report(path, f"is {kind_of(value, 'a mapping')}; use text, numbers, lists and tables")
        return None

    def _integer(self, value: int, path: FieldPath) -> int | str:
        if _in_condition(path) and _range_end(path) is None:
            return str(value)
        if abs(value) > _EXACT_INTEGER:
            self.report(path, f"is {value}, too large to send exactly; use a number between -2**53 and 2**53")
        return value

    def _float(self, value: float, path: FieldPath) -> float | None:
        if math.isfinite(value):
            return value
        end = _range_end(path)
        if (end == 0 and value < 0) or (end == 1 and value > 0):
            return None  # an open end
        self.report(path, f"is {value}; only an open end of a range may be infinite: [-inf, max] or [min, inf]")
        return None


def _in_condition(path: FieldPath) -> bool:
    """Whether `path` is inside a rule's conditions: ("rules", 0, "when", "exit_code", ...)."""
    return len(path) >= 4 and path[0] == "rules" and path[2] == "when"


def _range_end(path: FieldPath) -> int | None:
    """0 or 1 for the min or max of a range condition (("rules", 0, "when", "rc", "range", 1)), else None."""
    if len(path) == 6 and _in_condition(path) and path[4] == "range" and path[5] in (0, 1):
        return int(path[5])
    return None
