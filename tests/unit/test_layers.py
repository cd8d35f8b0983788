"""The server's layer rules (the design map): services read through the store's read API and
the core's snapshots, never rows, SQL or the engine's objects; the domain knows neither
protobuf nor peewee. Read from the source, so a new module is checked the day it is added."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
# What only the store itself may use: the ORM, the row classes, the SQL of filters, paging over SQL.
STORE_INSIDES = ("peewee", "playhouse", "jobplane.server.store.models", "jobplane.server.store.queries",
                 "jobplane.server.store.paging", "jobplane.server.store.db")
WIRE_AND_SQL = ("google.protobuf", "grpc", "jobplane.v1", "peewee", "playhouse", "jobplane.server.store")


def modules(package: str) -> list[Path]:
    return sorted((SERVER / package).glob("*.py"))


def imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, absolute module, imported name or "") for every import of a server module."""
    package = "jobplane.server." + path.parent.name
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            out += [(node.lineno, module, alias.name) for alias in node.names]
    return out


def within(module: str, name: str, prefixes: tuple[str, ...]) -> bool:
    full = f"{module}.{name}" if name else module
    return any(m == p or m.startswith(p + ".") for m in (module, full) for p in prefixes)


@pytest.mark.parametrize("path", modules("services"), ids=lambda p: p.name)
def test_services_import_no_rows_no_sql(path):
    wrong = [f"{path.name}:{line}: {module} {name}".rstrip() for line, module, name in imports(path)
             if within(module, name, STORE_INSIDES) or name.endswith("Row")]
    assert wrong == [], "services read through store.reads / store.live views, not rows or SQL"


@pytest.mark.parametrize("path", modules("services"), ids=lambda p: p.name)
def test_services_read_no_engine_objects(path):
    tree = ast.parse(path.read_text(), str(path))
    wrong = [f"{path.name}:{node.lineno}" for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr == "engine"]
    assert wrong == [], "services read live state through the core's snapshots (Core.providers_view, ...)"


@pytest.mark.parametrize("path", modules("domain"), ids=lambda p: p.name)
def test_the_domain_imports_neither_protobuf_nor_peewee(path):
    wrong = [f"{path.name}:{line}: {module} {name}".rstrip() for line, module, name in imports(path)
             if within(module, name, WIRE_AND_SQL)]
    assert wrong == []


def test_the_rule_sees_a_relative_import_of_rows(tmp_path):
    """The checks above would pass vacuously if relative imports were misread."""
    services = tmp_path / "services"
    services.mkdir()
    (services / "bad.py").write_text("from ..store.models import JobRow\nfrom ..store import queries\n")
    found = imports(services / "bad.py")
    assert [(m, n) for _, m, n in found] == [("jobplane.server.store.models", "JobRow"),
                                             ("jobplane.server.store", "queries")]
    assert all(within(m, n, STORE_INSIDES) for _, m, n in found)
