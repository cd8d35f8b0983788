"""Signature files (`jobplane inventory scan --file`): `signatures = [...]` in TOML or JSON,
checked by the job files' converter and located line by line the same way."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2

from jobplane.client.documents import parse_json, parse_toml, read_text
from jobplane.client.errors import FileProblem
from jobplane.client.jobfile import _Converter
from jobplane.client.locate import LineIndex, format_path, server_field


@dataclass(frozen=True)
class SignatureFile:
    """A checked signature file: its signatures plus what it takes to point back at its lines."""

    name: str
    signatures: tuple[struct_pb2.Struct, ...]
    lines: LineIndex

    def locate(self, message: str) -> FileProblem | None:
        """Map a server message such as `signatures[1].version: ...` to a file line; None if the
        message names no signature (e.g. `provider_id: ...`)."""
        found = server_field(message)
        if found is None or found[0][:1] != ("signatures",):
            return None
        path, rest = found
        return FileProblem(self.name, self.lines.line_of(path), format_path(path), rest)


def load_signature_file(path: str | Path) -> SignatureFile:
    """Read and check a signature file: TOML `signatures = [...]` (or `[[signatures]]` tables), or
    JSON, a list or `{"signatures": [...]}`. Raises JobFileError naming file and line."""
    name = str(path)
    syntax = "json" if name.endswith(".json") else "toml"
    text = read_text(path, "signature file")
    if syntax == "json":
        document, lines = parse_json(text, name), LineIndex.for_json(text)
        if isinstance(document, list):
            document, lines = {"signatures": document}, lines.nested("signatures")
    else:
        document, lines = parse_toml(text, name), LineIndex.for_toml(text)
    signatures = _Converter(syntax, lines, name).signature_file(document)
    return SignatureFile(name, tuple(signatures), lines)


def signature_structs(signatures: Iterable[Mapping[str, Any]]) -> list[struct_pb2.Struct]:
    """Check (each a mapping with a string `kind`) and convert signatures given as mappings;
    Structs pass as they are. Raises JobFileError naming e.g. `signatures[1].kind`."""
    converter = _Converter("python", LineIndex({}), None)
    return converter.signature_file({"signatures": list(signatures)})
