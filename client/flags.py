"""Server messages in the CLI's words: a request field a flag set is named by that flag.

The server names the request field it refused (`ttl_seconds: must be ...`), as an API caller
needs. A command declares which of its flags fill which fields (`name_fields`), and the CLI
rewords a refusal with them before showing it (`in_flags`): `--ttl: must be ...`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping


def name_fields(parser: argparse.ArgumentParser, fields: Mapping[str, str]) -> None:
    """Say which flag of `parser`'s command fills each request field (`{"ttl_seconds": "--ttl"}`)."""
    parser.set_defaults(fields={**(parser.get_default("fields") or {}), **fields})


def in_flags(message: str, fields: Mapping[str, str]) -> str:
    """`message` with the field path it starts with (`rule.filter: ...`) replaced by its flag, and
    so every mention of a field whose name is no plain word (`ttl_seconds`, `rule.name`) outside
    quotes and paths (a view named 'order_by', a file under /tmp/request_id/ stay as they are)."""
    head, colon, rest = message.partition(": ")
    head = re.sub(r"\[\d+\]$", "", head)  # `groups[1]`: the flag that gave it
    if colon and head in fields:
        message = f"{fields[head]}: {rest}"
    parts = _QUOTED.split(message)  # (odd ones quoted: a user's text, left as it is)
    for i in range(0, len(parts), 2):
        for field, flag in fields.items():
            if "_" in field or "." in field:  # (not inside a path or a longer name either)
                parts[i] = re.sub(rf"(?<![\w./-]){re.escape(field)}(?![\w./])", flag, parts[i])
    return "".join(parts)


_QUOTED = re.compile(r"""('[^']*'|"[^"]*")""")
