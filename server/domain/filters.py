"""The `filter` grammar of List calls: whitespace-separated `key=value` terms, all of
which must hold. A value ending in `*` matches by prefix. Example: `state=RUNNING name=nightly*`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ..errors import InvalidArgument
from .limits import MAX_FILTER, check_text, shown


@dataclass(frozen=True)
class Term:
    key: str
    value: str
    prefix: bool  # value ended in `*`


def parse_filter(text: str, keys: dict[str, type[IntEnum] | None]) -> list[Term]:
    """Parse and validate; `keys` maps each allowed key to the enum its values name (or None)."""
    check_text("filter", text, MAX_FILTER)
    terms = []
    pos = 0
    for token in text.split():
        pos = text.index(token, pos)
        key, sep, value = token.partition("=")
        lookup = key.split(".", 1)[0] + ".*" if "." in key else key
        if not sep or not key or not value:
            raise InvalidArgument("filter", f"expected key=value at position {pos}, got {shown(token)}")
        if key not in keys and lookup not in keys:
            raise InvalidArgument("filter", f"unknown key {shown(key)} at position {pos}; "
                                            f"use one of {', '.join(sorted(keys))}")
        enum = keys.get(key, keys.get(lookup))
        prefix = value.endswith("*")
        if enum is not None:
            value = value.upper()
            if prefix or value not in enum.__members__:
                raise InvalidArgument("filter", f"{key}={shown(value)} at position {pos}: "
                                                f"use one of {', '.join(enum.__members__)}")
        terms.append(Term(key, value.rstrip("*") if prefix else value, prefix))
        pos += len(token)
    return terms
