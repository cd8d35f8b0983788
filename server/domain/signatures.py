"""Prerequisite signatures: one thing a task needs on the machine that runs it, and where to look.

A signature is validated and normalized once, at submit; its `id` hashes the normalized
content, so tasks that need the same thing share one inventory entry however they wrote it.
Agents receive `as_dict()` and evaluate it. Version constraints are checked for syntax only;
the agent compares versions.

Normalization: fields sorted by name; sha256 lowercased; Python package names in canonical
form (PEP 503); os, arch and host lowercased, IPv6 hosts compressed; a port's host is always
filled, with 127.0.0.1 when absent; whole-number floats become ints; an empty list is the same
as an absent one and is dropped; spaces around constraint clauses and operators are removed.
Lists keep their order and paths are kept as written.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ..errors import InvalidArgument
from .limits import compile_regex, shown

ENV_ROOT = re.compile(r"^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)(/.*)?$")
KINDS: tuple[str, ...] = (
    "file", "executable", "python_package", "debian_package", "env", "port", "disk", "memory", "os", "arch", "kernel",
)
OPERATORS: tuple[str, ...] = ("~=", "==", "!=", "<=", ">=", "<", ">")
MAX_PER_TASK = 50
MAX_TEXT = 4096  # characters in any one string field
MAX_ITEMS = 64  # entries in any one list field
DEFAULT_HOST = "127.0.0.1"
MAX_KEY = 64  # characters of an unknown field name or kind echoed in an error

_Parser = Callable[[str, object], object]  # (field path, raw value) -> normalized value


@dataclass(frozen=True)
class Signature:
    """One prerequisite: its kind and its normalized fields, sorted by name, lists as tuples."""

    kind: str
    fields: tuple[tuple[str, object], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(sorted(self.fields, key=lambda item: item[0])))

    def as_dict(self) -> dict[str, object]:
        """The signature as the agent receives it: kind plus fields, lists as lists."""
        return {"kind": self.kind, **{key: _plain(value) for key, value in self.fields}}

    @cached_property
    def id(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON of `as_dict()`."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """Short text for statuses and logs, e.g. 'executable samtools >=1.10'."""
        return _SPECS[self.kind].describe(dict(self.fields))


def parse_signature(path: str, raw: Mapping[str, object]) -> Signature:
    """Validate and normalize one signature; raises InvalidArgument naming e.g. f'{path}.version'."""
    if not isinstance(raw, Mapping):
        raise wrong_type(path, raw, 'a table such as { kind = "file", path = "/data/ref.fa" }')
    kind = _kind(path, raw)
    spec = _SPECS[kind]
    fields = dict(spec.defaults)
    for key, value in raw.items():
        if key != "kind":
            fields[key] = spec.parse_field(path, kind, key, value)
    fields = {key: value for key, value in fields.items() if value != ()}
    spec.check_required(path, kind, fields)
    spec.check(path, fields)
    return Signature(kind, tuple(fields.items()))


def parse_signatures(path: str, raws: Sequence[Mapping[str, object]]) -> tuple[Signature, ...]:
    """Parse a task's prerequisites (`path` like 'spec.tasks[0].prerequisites'); refuses repeats and too many."""
    if isinstance(raws, (str, bytes, Mapping)) or not isinstance(raws, Sequence):
        raise wrong_type(path, raws, "a list of prerequisite tables")
    if len(raws) > MAX_PER_TASK:
        raise InvalidArgument(path, f"has {len(raws)} prerequisites; a task may declare at most {MAX_PER_TASK}, "
                                    "so split the task or drop some")
    first_index: dict[str, int] = {}
    signatures = []
    for i, raw in enumerate(raws):
        signature = parse_signature(f"{path}[{i}]", raw)
        if signature.id in first_index:
            raise InvalidArgument(f"{path}[{i}]", f"repeats {path}[{first_index[signature.id]}] "
                                                  f"({signature.describe()}); remove one of them")
        first_index[signature.id] = i
        signatures.append(signature)
    return tuple(signatures)


def _kind(path: str, raw: Mapping[str, object]) -> str:
    where = f"{path}.kind"
    if "kind" not in raw:
        raise InvalidArgument(where, f"is missing; add kind = one of {', '.join(KINDS)}")
    kind = raw["kind"]
    if not isinstance(kind, str):
        raise wrong_type(where, kind, "a string")
    if kind not in KINDS:
        raise InvalidArgument(where, f"unknown kind {shown(kind)}; {choices(kind[:MAX_KEY], KINDS)}")
    return kind


# --- kinds ------------------------------------------------------------------------------


def _no_check(path: str, fields: dict[str, object]) -> None:
    """Kinds whose fields are independent of each other need no cross-field check."""


@dataclass(frozen=True)
class _Kind:
    """How to parse, check and describe the fields of one kind."""

    parsers: Mapping[str, _Parser]
    required: tuple[str, ...]
    describe: Callable[[dict[str, object]], str]
    check: Callable[[str, dict[str, object]], None] = _no_check
    defaults: Mapping[str, object] = field(default_factory=dict)

    def parse_field(self, path: str, kind: str, key: object, value: object) -> object:
        if key not in self.parsers:
            name = str(key)[:MAX_KEY]
            raise InvalidArgument(f"{path}.{name}", f"is not a field of a {kind} signature; "
                                                    f"{choices(name, ['kind', *self.parsers])}")
        return self.parsers[key](f"{path}.{key}", value)

    def check_required(self, path: str, kind: str, fields: dict[str, object]) -> None:
        for name in self.required:
            if name not in fields:
                raise InvalidArgument(f"{path}.{name}", f"is required for a {kind} signature; add it")


def _check_file(path: str, fields: dict[str, object]) -> None:
    name, roots = str(fields["path"]), fields.get("roots")
    if roots and name.startswith("/"):
        raise InvalidArgument(f"{path}.roots", f"are not searched because path {name!r} is absolute; "
                                               "drop roots or make path relative to them")
    if not roots and not name.startswith("/"):
        raise InvalidArgument(f"{path}.path", f"{name!r} is relative; make it absolute or give roots to search under")
    if roots and ".." in name.split("/"):
        raise InvalidArgument(f"{path}.path", f"{name!r} climbs out of its roots with '..'; remove the '..' parts")


def _check_executable(path: str, fields: dict[str, object]) -> None:
    name = str(fields["name"])
    if name.startswith("/") and "dirs" in fields:
        raise InvalidArgument(f"{path}.dirs", f"are not searched because name {name!r} is an absolute path; "
                                              "drop dirs or give a bare name")
    wants = [key for key in ("version", "version_regex") if key in fields]
    if wants and "version_args" not in fields:
        raise InvalidArgument(f"{path}.version_args", f"is needed by {wants[0]}; give the arguments that make "
                                                      "the tool print its version, e.g. ['--version']")


def _check_memory(path: str, fields: dict[str, object]) -> None:
    if "free_bytes" not in fields and "total_bytes" not in fields:
        raise InvalidArgument(f"{path}.free_bytes", "is required unless total_bytes is given; give either or both")


# --- descriptions -----------------------------------------------------------------------


def _describe_file(f: dict[str, object]) -> str:
    roots = f.get("roots")
    return f"file {f['path']} under {', '.join(roots)}" if isinstance(roots, tuple) else f"file {f['path']}"


def _describe_named(kind: str) -> Callable[[dict[str, object]], str]:
    return lambda f: " ".join(str(part) for part in (kind, f["name"], f.get("version", "")) if part)


def _describe_env(f: dict[str, object]) -> str:
    return f"env {f['name']} matching {f['pattern']}" if "pattern" in f else f"env {f['name']}"


def _describe_port(f: dict[str, object]) -> str:
    host = str(f["host"])
    return f"port [{host}]:{f['port']}" if ":" in host else f"port {host}:{f['port']}"


def _describe_memory(f: dict[str, object]) -> str:
    amounts = [f"{_bytes(f[key])} {key.removesuffix('_bytes')}" for key in ("free_bytes", "total_bytes") if key in f]
    return "memory " + ", ".join(amounts)


def _bytes(n: object) -> str:
    """A byte count in binary units, e.g. '1.5 GiB'."""
    value = float(n)  # type: ignore[arg-type]
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{round(value, 2):g} {unit}"
        value /= 1024
    return f"{round(value, 2):g} TiB"


# --- field parsers ----------------------------------------------------------------------


def _text(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise wrong_type(where, value, "a string")
    if not value:
        raise InvalidArgument(where, "is empty; give a value or leave the field out")
    if len(value) > MAX_TEXT:
        raise InvalidArgument(where, f"has {len(value)} characters; shorten it to at most {MAX_TEXT}")
    if "\x00" in value:
        raise InvalidArgument(where, "contains a NUL character; remove it")
    return value


def _absolute(where: str, value: object) -> str:
    text = _text(where, value)
    if not text.startswith("/"):
        raise InvalidArgument(where, f"{text!r} is not an absolute path; write it from '/', e.g. '/usr/local/bin'")
    return text


def _root(where: str, value: object) -> str:
    """An absolute directory, or one that starts with an agent environment variable
    (`$DATA` or `${DATA}/refs`): each machine may keep its data somewhere else."""
    text = _text(where, value)
    if text.startswith("$") and ENV_ROOT.match(text):
        return text
    return _absolute(where, text)


def _list_of(item: _Parser) -> _Parser:
    def parse(where: str, value: object) -> tuple[object, ...]:
        if not isinstance(value, (list, tuple)):
            raise wrong_type(where, value, "a list")
        if len(value) > MAX_ITEMS:
            raise InvalidArgument(where, f"has {len(value)} entries; give at most {MAX_ITEMS}")
        return tuple(item(f"{where}[{i}]", entry) for i, entry in enumerate(value))
    return parse


def _number(where: str, value: object, expected: str = "a number") -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise wrong_type(where, value, expected)
    if not math.isfinite(value):
        raise InvalidArgument(where, f"is {value}; give a finite number")
    return int(value) if float(value).is_integer() else value


def _whole(where: str, value: object, low: int, high: int | None = None) -> int:
    number = _number(where, value, "a whole number")
    if not isinstance(number, int):
        raise wrong_type(where, value, "a whole number")
    if number < low or (high is not None and number > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise InvalidArgument(where, f"is {number}; give a whole number {bounds}")
    return number


def _size(where: str, value: object) -> int:
    return _whole(where, value, 0)


def _positive(where: str, value: object) -> int:
    return _whole(where, value, 1)


def _port(where: str, value: object) -> int:
    return _whole(where, value, 1, 65535)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _sha256(where: str, value: object) -> str:
    digest = _text(where, value).lower()
    if not _SHA256.fullmatch(digest):
        raise InvalidArgument(where, f"{digest!r} is not a SHA-256 digest; give 64 hexadecimal digits, "
                                     "as printed by sha256sum")
    return digest


def _regex(where: str, value: object) -> str:
    text = _text(where, value)
    groups = compile_regex(where, text).groups
    if groups > 1:
        raise InvalidArgument(where, f"{shown(text)} has {groups} groups; keep one, around the version, "
                                     "and write the others as (?:...)")
    return text


def _executable_name(where: str, value: object) -> str:
    name = _text(where, value)
    if "/" in name and not name.startswith("/"):
        raise InvalidArgument(where, f"{name!r} has a '/' but is not absolute; give a bare name to search for, "
                                     "or an absolute path")
    return name


_PYPI_NAME = re.compile(r"[A-Z0-9](?:[A-Z0-9._-]*[A-Z0-9])?", re.IGNORECASE)


def _python_name(where: str, value: object) -> str:
    name = _text(where, value)
    if not _PYPI_NAME.fullmatch(name):
        raise InvalidArgument(where, f"{name!r} is not a distribution name; use letters, digits, '.', '_' and '-', "
                                     "starting and ending with a letter or digit, e.g. 'numpy'")
    return re.sub(r"[-_.]+", "-", name).lower()


_DEBIAN_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def _debian_name(where: str, value: object) -> str:
    name = _text(where, value)
    if not _DEBIAN_NAME.fullmatch(name):
        hint = f"; use lowercase: {name.lower()!r}" if _DEBIAN_NAME.fullmatch(name.lower()) else (
            "; use at least two of a-z, 0-9, '+', '-', '.', starting with a letter or digit, e.g. 'samtools'")
        raise InvalidArgument(where, f"{name!r} is not a Debian package name{hint}")
    return name


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(where: str, value: object) -> str:
    name = _text(where, value)
    if not _ENV_NAME.fullmatch(name):
        raise InvalidArgument(where, f"{name!r} is not a variable name; use letters, digits and '_', "
                                     "not starting with a digit, e.g. 'CUDA_HOME'")
    return name


_HOSTNAME = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")


def _host(where: str, value: object) -> str:
    host = _text(where, value).lower()
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host):
        raise InvalidArgument(where, f"{host!r} is neither an IP address nor a host name; "
                                     "give e.g. '127.0.0.1' or 'db.local'")
    return host


_WORD = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def _word(where: str, value: object) -> str:
    word = _text(where, value).lower()
    if not _WORD.fullmatch(word):
        raise InvalidArgument(where, f"{word!r} is not a platform name; use letters, digits, '_', '.' and '-', "
                                     "e.g. 'linux' or 'x86_64'")
    return word


# --- version constraints ----------------------------------------------------------------

_CLAUSE = re.compile(r"\s*([<>=!~]*)\s*(.*?)\s*", re.DOTALL)
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~:-]*")


def _constraint(where: str, value: object) -> str:
    text = _text(where, value)
    try:
        return ",".join(_clause(clause) for clause in text.split(","))
    except ValueError as exc:
        raise InvalidArgument(where, f"{text!r} is not a version constraint: {exc}") from None


def _clause(clause: str) -> str:
    """One normalized clause such as '>=1.10'; raises ValueError saying what is wrong."""
    operator, version = _CLAUSE.fullmatch(clause).groups()  # type: ignore[union-attr]  # matches any text
    if not operator and not version:
        raise ValueError("it has an empty clause; separate clauses with single commas, e.g. '>=1.10,<2'")
    if not operator:
        raise ValueError(f"clause {version!r} has no operator; write e.g. '=={version}' or '>={version}'")
    if operator not in OPERATORS:
        raise ValueError(f"unknown operator {operator!r}; use one of {', '.join(OPERATORS)}")
    wildcard = version.endswith(".*")
    base = version.removesuffix(".*")
    if wildcard and operator != "==":
        raise ValueError(f"'.*' may only follow '=='; write e.g. '=={base}.*'")
    if not base:
        raise ValueError(f"{operator!r} has no version after it; write e.g. '{operator}1.10'")
    if not _VERSION.fullmatch(base) or base.endswith("."):
        raise ValueError(f"{base!r} is not a version; use letters, digits and . + - ~ :, e.g. '1.10'")
    if operator == "~=" and "." not in base:
        raise ValueError(f"'~=' needs at least two version components; write e.g. '~={base}.0'")
    return operator + version


# --- helpers ----------------------------------------------------------------------------


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", tuple: "a list"}
    name = next((text for kind, text in names.items() if isinstance(value, kind)), None)
    if name is None:
        return "a table" if isinstance(value, Mapping) else type(value).__name__
    shown = repr(value)
    return f"{name} ({shown[:40]}...)" if len(shown) > 40 else f"{name} ({shown})"


def wrong_type(where: str, value: object, expected: str) -> InvalidArgument:
    return InvalidArgument(where, f"must be {expected}, got {_type_name(value)}")


def choices(word: str, options: Sequence[str]) -> str:
    """'did you mean 'path'? Use one of …' when a close option exists, else 'use one of …'."""
    close = difflib.get_close_matches(word, options, n=1)
    listed = f"one of {', '.join(options)}"
    return f"did you mean {close[0]!r}? Use {listed}" if close else f"use {listed}"


_SPECS: dict[str, _Kind] = {
    "file": _Kind(
        {"path": _text, "roots": _list_of(_root), "size": _size, "sha256": _sha256, "min_mtime": _number},
        ("path",), _describe_file, _check_file),
    "executable": _Kind(
        {"name": _executable_name, "dirs": _list_of(_absolute), "version_args": _list_of(_text),
         "version_regex": _regex, "version": _constraint},
        ("name",), _describe_named("executable"), _check_executable),
    "python_package": _Kind(
        {"name": _python_name, "version": _constraint, "interpreter": _absolute},
        ("name",), _describe_named("python_package")),
    "debian_package": _Kind(
        {"name": _debian_name, "version": _constraint}, ("name",), _describe_named("debian_package")),
    "env": _Kind({"name": _env_name, "pattern": _text}, ("name",), _describe_env),
    "port": _Kind({"port": _port, "host": _host}, ("port",), _describe_port, defaults={"host": DEFAULT_HOST}),
    "disk": _Kind({"path": _absolute, "free_bytes": _positive}, ("path", "free_bytes"),
                  lambda f: f"disk {f['path']} with {_bytes(f['free_bytes'])} free"),
    "memory": _Kind({"free_bytes": _positive, "total_bytes": _positive}, (), _describe_memory, _check_memory),
    "os": _Kind({"value": _word}, ("value",), lambda f: f"os {f['value']}"),
    "arch": _Kind({"value": _word}, ("value",), lambda f: f"arch {f['value']}"),
    "kernel": _Kind({"version": _constraint}, ("version",), lambda f: f"kernel {f['version']}"),
}
