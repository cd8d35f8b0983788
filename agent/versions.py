"""Version strings and constraints for prerequisite signatures: ``>=1.10,<2``, ``==3.1.*``, ``~=2.2``.

Versions from many ecosystems (PEP 440, Debian, kernels, a tool's ``--version``) are compared by
one key: first the dotted release numbers (``1.10`` == ``1.10.0``), then what follows as words and
numbers. Pre-release words (``dev``, ``a``/``alpha``, ``b``/``beta``, ``rc``/``c``/``pre``/
``preview``) and Debian's ``~`` sort before the bare release; anything else (``post``, a Debian
revision ``-0ubuntu1``, a kernel flavour ``-91-generic``, OpenSSL's ``1.1.1f``) sorts after it.
A Debian epoch ``N:`` (or a PEP 440 ``N!``) and a leading ``v`` are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Constraint", "find_version", "parse_constraint", "version_key"]

_EPOCH = re.compile(r"^\d+[:!]")
_RELEASE = re.compile(r"\d+(?:\.\d+)*")
_TOKEN = re.compile(r"\d+|[a-z]+|~")
# Rank of a token after the release: below 0 sorts before the bare release, above 0 after it.
_PRE_RANK = {"dev": -4, "alpha": -3, "a": -3, "beta": -2, "b": -2, "rc": -1, "c": -1, "pre": -1, "preview": -1}
_TILDE, _END, _NUMBER, _WORD = -9, 0, 1, 2
_CLAUSE = re.compile(r"(~=|==|!=|<=|>=|<|>)\s*([0-9A-Za-z][0-9A-Za-z.+~:!_-]*?)(\.\*)?")
_DEFAULT_VERSION = re.compile(r"(?<![\d.])v?(\d+(?:\.\d+)+(?:[-+~.]?[A-Za-z0-9]+)*)")

Key = tuple[tuple[int, ...], tuple[tuple[int, int, str], ...]]


def version_key(version: str) -> Key:
    """A sort key: versions compare as their keys do."""
    release, rest = _split(version)
    while release and release[-1] == 0:
        release = release[:-1]
    return release, _rest_key(rest)


def _split(version: str) -> tuple[tuple[int, ...], str]:
    text = _EPOCH.sub("", version.strip()).lower()
    if text[:1] == "v" and text[1:2].isdigit():
        text = text[1:]
    match = _RELEASE.match(text)
    if not match:
        return (), text
    return tuple(int(part) for part in match.group().split(".")), text[match.end():]


def _rest_key(rest: str) -> tuple[tuple[int, int, str], ...]:
    tokens = _TOKEN.findall(rest)
    key = []
    for i, token in enumerate(tokens):
        if token == "~":
            key.append((_TILDE, 0, ""))
        elif token.isdigit():
            key.append((_NUMBER, int(token), ""))
        elif token in _PRE_RANK and (len(token) > 1 or _followed_by_number(tokens, i)):
            key.append((_PRE_RANK[token], 0, ""))
        else:  # a lone a/b/c with no number after it is a letter release, as in OpenSSL 1.0.2c
            key.append((_WORD, 0, token))
    key.append((_END, 0, ""))
    return tuple(key)


def _followed_by_number(tokens: list[str], i: int) -> bool:
    return i + 1 < len(tokens) and tokens[i + 1].isdigit()


def _release_prefix_matches(version: str, prefix: tuple[int, ...]) -> bool:
    release = _split(version)[0]
    release += (0,) * (len(prefix) - len(release))
    return release[:len(prefix)] == prefix


@dataclass(frozen=True)
class Clause:
    """One comparison, such as ``>=1.10`` or ``==3.1.*`` (``prefix``: the part before ``.*``)."""

    op: str
    version: str
    prefix: bool = False

    def allows(self, version: str) -> bool:
        if self.prefix:
            matches = _release_prefix_matches(version, _split(self.version)[0])
            return matches if self.op == "==" else not matches
        have, want = version_key(version), version_key(self.version)
        if self.op == "~=":
            return have >= want and _release_prefix_matches(version, _split(self.version)[0][:-1])
        return _COMPARE[self.op](have, want)

    def __str__(self) -> str:
        return f"{self.op}{self.version}{'.*' if self.prefix else ''}"


_COMPARE = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Constraint:
    """Comma-separated clauses, all of which a version must satisfy."""

    clauses: tuple[Clause, ...]

    def allows(self, version: str) -> bool:
        """Whether `version` satisfies every clause."""
        return all(clause.allows(version) for clause in self.clauses)

    def __str__(self) -> str:
        return ",".join(str(clause) for clause in self.clauses)


def parse_constraint(text: str) -> Constraint:
    """Parse ``>=1.10,<2``; ValueError names the clause that is not understood."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty version constraint {text!r}: write e.g. '>=1.10,<2'")
    return Constraint(tuple(_parse_clause(part.strip(), text) for part in text.split(",")))


def _parse_clause(clause: str, text: str) -> Clause:
    match = _CLAUSE.fullmatch(clause)
    if not match or not any(ch.isdigit() for ch in match.group(2)):
        raise ValueError(f"bad clause {clause!r} in version constraint {text!r}: write an operator "
                         "(>=, <=, >, <, ==, !=, ~=) and a version, e.g. '>=1.10'")
    op, version, star = match.groups()
    if star and (op not in ("==", "!=") or not re.fullmatch(r"\d+(\.\d+)*", version)):
        raise ValueError(f"bad clause {clause!r} in version constraint {text!r}: '.*' goes only "
                         "after a numeric release with == or !=, e.g. '==3.1.*'")
    if op == "~=" and len(_split(version)[0]) < 2:
        raise ValueError(f"bad clause {clause!r} in version constraint {text!r}: '~=' needs at "
                         "least two release numbers, e.g. '~=2.2'")
    return Clause(op, version, prefix=bool(star))


def find_version(text: str, regex: str | None = None) -> str | None:
    """The version in a tool's output: `regex`'s first group (or whole match) if given, else the
    first thing that looks like a dotted version (``1.10``, ``3.0.2-0ubuntu1``, ``v2.1.0rc1``)."""
    pattern = re.compile(regex) if regex else _DEFAULT_VERSION
    match = pattern.search(text)
    if not match:
        return None
    return match.group(1) if pattern.groups else match.group(0)
