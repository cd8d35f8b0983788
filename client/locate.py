"""Find the line of a field path (e.g. `tasks[2].after`) in a TOML or JSON job file.

Error messages point at lines, but neither tomllib nor json reports where a value came from.
These indexers re-read the text (already known to parse) and note the line of every key,
`[[tasks]]` header and array element they see; a lookup falls back to the nearest enclosing
path that has a line. `server_field` reads the field path a server INVALID_ARGUMENT starts with.
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import re
from collections.abc import Iterator

FieldPath = tuple[str | int, ...]

# A field path at the start of a server message: `spec.tasks[2].after[0]: ...`, `rules[0].when["RC X"]: ...`.
_QUOTED = r'"(?:[^"\\]|\\.)*"'  # a JSON string, as the server quotes a key that is not a bare word
_SERVER_PATH = re.compile(rf'^(?P<path>[A-Za-z_]\w*(?:\.[\w-]+|\[\d+\]|\[{_QUOTED}\])*):\s*(?P<rest>.*)$', re.DOTALL)
_SERVER_PART = re.compile(rf'\.?([\w-]+)|\[(\d+)\]|\[({_QUOTED})\]')
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

_BARE_OR_QUOTED = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_TOML_HEADER = re.compile(rf"^\s*(\[\[|\[)\s*({_DOTTED})\s*\]")
_TOML_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")
_TOML_PART = re.compile(_BARE_OR_QUOTED)


class LineIndex:
    """The line (1-based) on which each field path of a document starts."""

    def __init__(self, lines: dict[FieldPath, int]) -> None:
        self._lines = lines

    @classmethod
    def for_toml(cls, text: str) -> LineIndex:
        return cls(_index_toml(text))

    @classmethod
    def for_json(cls, text: str) -> LineIndex:
        return cls(_JsonIndexer(text).index())

    def nested(self, key: str) -> LineIndex:
        """This index as the value of `key` in an enclosing document (a JSON list read as `{key: [...]}`)."""
        return LineIndex({(key, *path): line for path, line in self._lines.items()})

    def line_of(self, path: FieldPath) -> int | None:
        """The line of `path`, else of its nearest ancestor with a known line, else None."""
        for end in range(len(path), 0, -1):
            if (line := self._lines.get(path[:end])) is not None:
                return line
        return None


def server_field(message: str) -> tuple[FieldPath, str] | None:
    """The field path a server message starts with, and the rest; None when it names no field.

    `spec.tasks[2].after[0]: unknown task "x"` -> (("spec", "tasks", 2, "after", 0), 'unknown task "x"').
    """
    match = _SERVER_PATH.match(message)
    if not match:
        return None
    parts: list[str | int] = []
    for name, index, quoted in _SERVER_PART.findall(match.group("path")):
        parts.append(int(index) if index else json.loads(quoted) if quoted else name)
    return tuple(parts), match.group("rest")


def format_path(path: FieldPath) -> str:
    """("tasks", 1, "command") -> "tasks[1].command"; a key TOML would quote shows as `when["RC X"]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _BARE_KEY.fullmatch(part):
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
        else:
            text += f".{part}" if text else part
    return text


def _index_toml(text: str) -> dict[FieldPath, int]:
    lines: dict[FieldPath, int] = {}
    rows = text.splitlines()
    table: FieldPath = ()
    array_lengths: dict[tuple[str, ...], int] = {}  # `[[name]]` tables seen so far, by dotted name
    for number, line in _toml_statement_lines(text):
        if header := _TOML_HEADER.match(line):
            names = _toml_key_parts(header.group(2))
            if header.group(1) == "[[":
                array_lengths[names] = array_lengths.get(names, 0) + 1
                _restart_nested_arrays(array_lengths, names)
            table = _toml_table_path(names, array_lengths)
            lines.setdefault(table, number)
        elif key := _TOML_KEY.match(line):
            names = _toml_key_parts(key.group(1))
            for end in range(1, len(names) + 1):
                lines.setdefault(table + names[:end], number)
            for index, element_line in enumerate(_toml_array_elements(rows, number - 1, key.end())):
                lines.setdefault(table + names + (index,), element_line)
    return lines


def _restart_nested_arrays(array_lengths: dict[tuple[str, ...], int], names: tuple[str, ...]) -> None:
    """A new `[[tasks]]` starts its own `[[tasks.prerequisites]]` from 0."""
    for nested in [other for other in array_lengths if len(other) > len(names) and other[: len(names)] == names]:
        del array_lengths[nested]


def _toml_array_elements(rows: list[str], row: int, column: int) -> list[int]:
    """The line of each element of the array that opens at (`row`, `column`), if one does."""
    found: list[int] = []
    depth, expecting, quote = 0, True, None
    for number in range(row, len(rows)):
        tokens, quote = _toml_tokens(rows[number], quote, column if number == row else 0)
        for token in tokens:
            if depth == 0 and token != "[":
                return []  # not an array value
            if depth == 1 and expecting and token not in ",]":
                found.append(number + 1)
                expecting = False
            depth += (token in "[{") - (token in "]}")
            if depth == 0:
                return found
            expecting = expecting or (depth == 1 and token == ",")
    return found


def _toml_table_path(names: tuple[str, ...], array_lengths: dict[tuple[str, ...], int]) -> FieldPath:
    """`[tasks.env]` after the third `[[tasks]]` is ("tasks", 2, "env")."""
    path: list[str | int] = []
    for end in range(1, len(names) + 1):
        path.append(names[end - 1])
        if (count := array_lengths.get(names[:end])) is not None:
            path.append(count - 1)
    return tuple(path)


def _toml_key_parts(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _TOML_PART.findall(dotted))


def _toml_statement_lines(text: str) -> Iterator[tuple[int, str]]:
    """The lines that start a statement: not inside a multi-line array, table or string."""
    depth = 0
    multiline_quote: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if depth == 0 and multiline_quote is None:
            yield number, line
            if _TOML_HEADER.match(line):
                continue  # a header's brackets do not open a value
        depth, multiline_quote = _toml_scan(line, depth, multiline_quote)


def _toml_scan(line: str, depth: int, quote: str | None) -> tuple[int, str | None]:
    """Bracket depth and open multi-line string after `line`, skipping strings and comments."""
    tokens, quote = _toml_tokens(line, quote)
    return depth + sum((token in "[{") - (token in "]}") for token in tokens), quote


def _toml_tokens(line: str, quote: str | None, start: int = 0) -> tuple[list[str], str | None]:
    """The characters of `line` from `start` outside strings and comments, one `"` standing for
    each string that begins; and the multi-line string (its quotes) still open at the end."""
    tokens: list[str] = []
    i = start
    while i < len(line):
        if quote is not None:
            end = line.find(quote, i)
            if end < 0:
                return tokens, quote
            i, quote = end + 3, None
            continue
        char = line[i]
        if char == "#":
            break
        if line.startswith(('"""', "'''"), i):
            tokens.append('"')
            quote, i = line[i : i + 3], i + 3
            continue
        if char in "\"'":
            tokens.append('"')
            i = _skip_string(line, i)
            continue
        if not char.isspace():
            tokens.append(char)
        i += 1
    return tokens, quote


def _skip_string(line: str, start: int) -> int:
    quote, i = line[start], start + 1
    while i < len(line) and line[i] != quote:
        i += 2 if quote == '"' and line[i] == "\\" else 1
    return i + 1


class _JsonIndexer:
    """Walks JSON text that json.loads accepted, noting the line of every key and element."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]
        self._lines: dict[FieldPath, int] = {}

    def index(self) -> dict[FieldPath, int]:
        self._value(())
        return self._lines

    def _line(self) -> int:
        return bisect.bisect_left(self._newlines, self._pos) + 1

    def _skip_space(self) -> None:
        while self._pos < len(self._text) and self._text[self._pos] in " \t\r\n":
            self._pos += 1

    def _value(self, path: FieldPath) -> None:
        self._skip_space()
        char = self._text[self._pos]
        if char == "{":
            self._object(path)
        elif char == "[":
            self._array(path)
        elif char == '"':
            self._string()
        else:
            while self._pos < len(self._text) and self._text[self._pos] not in ",]} \t\r\n":
                self._pos += 1

    def _string(self) -> str:
        value, self._pos = json.decoder.scanstring(self._text, self._pos + 1)
        return value

    def _object(self, path: FieldPath) -> None:
        self._pos += 1
        while self._next_member("}"):
            line = self._line()
            key = self._string()
            self._lines.setdefault(path + (key,), line)
            self._skip_space()
            self._pos += 1  # the colon
            self._value(path + (key,))

    def _array(self, path: FieldPath) -> None:
        self._pos += 1
        index = 0
        while self._next_member("]"):
            self._lines.setdefault(path + (index,), self._line())
            self._value(path + (index,))
            index += 1

    def _next_member(self, closing: str) -> bool:
        """Steps over a separating comma; False (and past `closing`) at the end of the container."""
        self._skip_space()
        if self._text[self._pos] == ",":
            self._pos += 1
            self._skip_space()
        if self._text[self._pos] == closing:
            self._pos += 1
            return False
        return True
