"""Reading the documents users write (job, policy and signature files): their text, TOML or
JSON with the line of a syntax error, and the words problems are told in (an unknown key with
the nearest known one, what kind a value is)."""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jobplane.client.errors import FileProblem, JobFileError


def read_text(path: str | Path, what: str) -> str:
    """The text of a file; JobFileError `cannot read the {what}: ...` if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise JobFileError([FileProblem(str(path), None, "", f"cannot read the {what}: {error}")]) from error


def parse_toml(text: str, name: str) -> dict[str, Any]:
    """The document of TOML text; JobFileError naming the line of a syntax error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        where = re.search(r"\(at line (\d+), column (\d+)\)$", message)
        line = int(where.group(1)) if where else None
        problem = message[: where.start()].strip() if where else message
        column = f" (column {where.group(2)})" if where else ""
        raise JobFileError([FileProblem(name, line, "", f"invalid TOML: {problem}{column}")]) from error


def parse_json(text: str, name: str) -> Any:
    """The document of JSON text; JobFileError naming the line of a syntax error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        problem = FileProblem(name, error.lineno, "", f"invalid JSON: {error.msg} (column {error.colno})")
        raise JobFileError([problem]) from error


def unknown_key(key: str, known: Iterable[str]) -> str:
    """`unknown key; did you mean "tasks"?`, or the keys there are."""
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f'did you mean "{close[0]}"?' if close else f"expected one of {', '.join(known)}"
    return f"unknown key; {hint}"


def kind_of(value: Any, table: str) -> str:
    """`a string`, `a list`, `table` for a mapping: what a value is, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return table
    if value is None:
        return "null"
    return f"a {type(value).__name__}"
