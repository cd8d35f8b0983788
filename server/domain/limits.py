"""The server's limits on what a request may hold, in one place, and the checks that apply
them. Each check raises InvalidArgument naming the field's path, the limit and the fix, and
none of them builds anything large first: sizes and depths are measured on the text as sent.

The README's "Limits" section lists these numbers; keep the two in step.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from itertools import accumulate

from ..errors import MAX_DETAILS, InvalidArgument  # noqa: F401  (MAX_DETAILS: listed here with the other limits)

# ----- jobs --------------------------------------------------------------------------

MAX_TASKS_PER_JOB = 100_000  # default of --max-tasks-per-job: tasks one job may expand to
MAX_SPEC_BYTES = 1024 * 1024  # a job spec as sent (serialized); bigger inputs belong in files
MAX_NAME = 200  # characters in a name: job, task, class, selector
MAX_TASK_NAME = 400  # characters in an expanded task's name, e.g. `train[lr=0.1,batch=64]`
MAX_TEXT = 4096  # characters in a short text field: cwd, python target, label or requirement values
MAX_ENTRIES = 1000  # entries in a list or map field (command arguments, env, labels, after, ...)
MAX_MATRIX_PARAMETERS = 32
MAX_ARG_BYTES = 128 * 1024  # one command argument or environment entry (Linux refuses longer ones)
MAX_EXEC_BYTES = 512 * 1024  # a task's command and environment together (ARG_MAX is often 2 MiB)
MAX_JSON_BYTES = 1024 * 1024  # args_json and one matrix parameter's values_json
MAX_JSON_DEPTH = 32  # nesting of arrays and objects in any JSON field
MAX_RULE_VALUE = 100  # a timing rule's date or cron expression (its label is stored in 200 characters)

# ----- times -------------------------------------------------------------------------

MAX_SECONDS = 10 * 365 * 86400.0  # any duration in seconds: timeouts, waits, backoffs, deadlines
TIME_MIN = 0.0  # 1970-01-01T00:00:00Z
TIME_MAX = 221845392000.0  # 9000-01-01T00:00:00Z: calendar arithmetic stays far from year 9999
MAX_TOKEN_TTL = MAX_SECONDS

# ----- queries -----------------------------------------------------------------------

MAX_FILTER = 4096  # characters in a `filter`
MAX_ORDER_BY = 256  # characters in an `order_by`
MAX_NUMBER = 2.0**53  # largest magnitude of a number in a filter (exact as a float, fits any integer column)
MAX_ID = 2**63 - 1  # largest row id, offset or event id a request may name
PAGE_BYTES = 4 * 1024 * 1024  # a List response stops adding rows here (gRPC clients take 4 MiB by default)

# ----- other -------------------------------------------------------------------------

MAX_REGEX = 256  # characters in a regular expression (version_regex)
MAX_REGEX_DEPTH = 10  # nested groups in a regular expression


def shown(value: object, limit: int = 60) -> str:
    """`repr(value)`, shortened: what an error message may echo of a caller's input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"


def check_text(path: str, value: str, limit: int = MAX_TEXT) -> None:
    if len(value) > limit:
        raise InvalidArgument(path, f"has {len(value)} characters; shorten it to at most {limit}")


def check_entries(path: str, values: Iterable | Mapping, limit: int = MAX_ENTRIES) -> None:
    count = len(values)  # type: ignore[arg-type]
    if count > limit:
        raise InvalidArgument(path, f"has {count} entries; give at most {limit}")


def check_map(path: str, values: Mapping[str, str], limit: int = MAX_TEXT) -> None:
    """A map of short texts: at most MAX_ENTRIES keys and values of at most `limit` characters."""
    check_entries(path, values)
    for key, value in values.items():
        check_text(f"{path}[{shown(key)}]", key, limit)
        check_text(f"{path}[{shown(key)}]", value, limit)


def check_arg(path: str, value: str, limit: int = MAX_ARG_BYTES) -> int:
    """One argv or environment string: its size in bytes (what the kernel counts)."""
    if "\x00" in value:
        raise InvalidArgument(path, "contains a NUL character, which no program argument or environment "
                                    "variable can hold; remove it")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InvalidArgument(path, f"is {size} bytes; a program argument or environment entry may have at most "
                                    f"{limit}; pass large data in a file or as items")
    return size


def check_seconds(path: str, value: float, zero: str) -> None:
    """A duration in seconds: finite, from 0 to MAX_SECONDS; `zero` says what 0 means."""
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise InvalidArgument(path, f"must be a number of seconds >= 0 and at most {MAX_SECONDS:.0f} (10 years; "
                                    f"0 = {zero}), got {value}")


def check_time(path: str, seconds: int, nanos: int) -> float:
    """A google.protobuf.Timestamp's parts as seconds since the epoch, if it is a time jobplane takes."""
    if not 0 <= nanos <= 999_999_999:
        raise InvalidArgument(path, f"nanos is {nanos}; a Timestamp's nanos must be from 0 to 999999999")
    if not TIME_MIN <= seconds <= TIME_MAX:
        raise InvalidArgument(path, f"seconds is {seconds}; give a time from 1970-01-01T00:00:00Z to "
                                    "9000-01-01T00:00:00Z")
    return seconds + nanos / 1e9


# ----- JSON, measured without parsing ------------------------------------------------

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_MARKS = bytes.maketrans(b"[{]}", b"(())")
_NOT_MARKS = bytes(set(range(256)) - set(b"[]{},"))
_INNERMOST = re.compile(rb"\(,*\)")
_EMPTY = re.compile(r"\s*(?:\[\s*\]|\{\s*\})\s*")


def json_shape(text: str, max_depth: int = MAX_JSON_DEPTH) -> tuple[int, int]:
    """(nesting depth, entries at the top level) of JSON text, from its brackets and commas
    outside strings: nothing is parsed, so no depth or size can exhaust the server. A depth
    over `max_depth` is reported as `max_depth + 1` without measuring further. For text that
    is not JSON the numbers mean little (json.loads refuses it afterwards)."""
    bare = _STRING.sub('""', text) if '"' in text else text
    marks = bare.encode("utf-8", "surrogatepass").translate(_MARKS, _NOT_MARKS)  # b"(", b")", b","
    depth = _depth(marks.replace(b",", b""), max_depth)
    if depth > max_depth or depth == 0:
        return depth, 0
    for _ in range(depth - 1):  # take away the inner levels, commas and all
        marks = _INNERMOST.sub(b"", marks)
    return depth, 0 if _EMPTY.fullmatch(bare) else marks.count(b",") + 1


def _depth(parens: bytes, max_depth: int) -> int:
    """Nesting depth of balanced parentheses; `max_depth + 1` for anything deeper."""
    if b"(" * (max_depth + 1) in parens:
        return max_depth + 1
    depth = 0
    while parens and depth <= max_depth:
        shorter = parens.replace(b"()", b"")  # each pass takes away the innermost level
        if len(shorter) == len(parens):
            break  # unbalanced: not JSON
        parens, depth = shorter, depth + 1
    return depth


def check_json(path: str, text: str, limit: int = MAX_JSON_BYTES) -> int:
    """Check a JSON field's size and nesting before it is parsed; the number of top-level entries."""
    if len(text) > limit:
        raise InvalidArgument(path, f"has {len(text)} characters; at most {limit} are accepted here")
    depth, entries = json_shape(text)
    if depth > MAX_JSON_DEPTH:
        raise InvalidArgument(path, f"nests arrays and objects {depth} deep; at most {MAX_JSON_DEPTH} levels "
                                    "are accepted")
    return entries


# ----- regular expressions -----------------------------------------------------------

def compile_regex(path: str, text: str) -> re.Pattern:
    """Compile a caller's regular expression, bounded in length and nesting first (the
    compiler recurses once per nested group)."""
    if len(text) > MAX_REGEX:
        raise InvalidArgument(path, f"has {len(text)} characters; a regular expression may have at most {MAX_REGEX}")
    depth = max(accumulate(1 if c == "(" else -1 for c in _unescaped_parens(text)), default=0)
    if depth > MAX_REGEX_DEPTH:
        raise InvalidArgument(path, f"nests groups {depth} deep; at most {MAX_REGEX_DEPTH} levels")
    try:
        return re.compile(text)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        raise InvalidArgument(path, f"{shown(text)} does not compile ({exc}); fix the regular expression") from None


def _unescaped_parens(text: str) -> str:
    """The regex's group parentheses, without escaped ones and those in character classes."""
    out, escaped, in_class = [], False, False
    for c in text:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c in "()":
            out.append(c)
    return "".join(out)
