"""Queries for tokens, issued certificates, the shared CA and policy versions. Writes run on the
writer thread, each in its own transaction, so a join token's use is committed before the
enrollment it allowed is answered. Every check that must hold across server replicas is made
by the database in the statement that writes (a use of a join token, the first CA). (The
audit log is written with the engine's batches and read through reads.py.)"""

from __future__ import annotations

import time
from typing import NamedTuple

from peewee import Database, SqliteDatabase

from .models import AuthorityRow, CertificateRow, PolicyRow, TokenRow
from .records import PolicyVersion, TokenView


class StoredAuthority(NamedTuple):
    """The newest CA generation in the database, and the certificate of the one before it."""

    generation: int
    cert_pem: bytes
    key_pem: bytes
    previous_pem: bytes | None


class SecurityStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def shared(self) -> bool:
        """Whether other server replicas may use this database too (PostgreSQL; SQLite serves one)."""
        return not isinstance(self.db, SqliteDatabase)

    # ----- tokens --------------------------------------------------------------------

    def add_token(self, row: dict) -> TokenView:
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            TokenRow.insert(row).execute()
        return TokenView.from_row(TokenRow.get_by_id(row["id"]))

    def tokens(self) -> list[TokenView]:
        self.db.connect(reuse_if_open=True)
        return [TokenView.from_row(r) for r in TokenRow.select().order_by(TokenRow.create_time.desc(), TokenRow.id)]

    def has_admin_token(self, admin_role: int) -> bool:
        self.db.connect(reuse_if_open=True)
        return TokenRow.select().where(TokenRow.role == admin_role).exists()

    def token(self, token_id: str) -> TokenView | None:
        self.db.connect(reuse_if_open=True)
        row = TokenRow.get_or_none(TokenRow.id == token_id)
        return None if row is None else TokenView.from_row(row)

    def use_token(self, token_id: str, now: float) -> TokenView | None:
        """Spend one use of a live token (not revoked, not expired) with uses left; None if it has
        none. The check is the UPDATE's own condition, so two replicas spending the last use at
        once cannot both succeed."""
        self.db.connect(reuse_if_open=True)
        live = ((TokenRow.id == token_id) & (TokenRow.revoked == 0)
                & (TokenRow.expire_time.is_null() | (TokenRow.expire_time > now)))
        with self.db.atomic():
            spent = TokenRow.update(uses_left=TokenRow.uses_left - 1).where(live & (TokenRow.uses_left > 0)).execute()
            if not spent and not TokenRow.select().where(live & (TokenRow.uses_left < 0)).exists():
                return None
            return TokenView.from_row(TokenRow.get_by_id(token_id))

    def revoked_tokens(self, now: float) -> set[str]:
        """Ids of revoked tokens that have not expired (an expired one is refused anyway)."""
        self.db.connect(reuse_if_open=True)
        rows = TokenRow.select(TokenRow.id).where(
            (TokenRow.revoked == 1) & (TokenRow.expire_time.is_null() | (TokenRow.expire_time > now)))
        return {r.id for r in rows}

    def revoke_token(self, token_id: str) -> TokenView | None:
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            TokenRow.update(revoked=1).where(TokenRow.id == token_id).execute()
        row = TokenRow.get_or_none(TokenRow.id == token_id)
        return None if row is None else TokenView.from_row(row)

    # ----- certificates --------------------------------------------------------------

    def add_certificate(self, serial: int, identity: str, role: int, not_after: float) -> None:
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            CertificateRow.insert(serial=str(serial), identity=identity, role=role, not_after=not_after,
                                  revoked=0).execute()

    def revoke_certificates(self, identity: str) -> list[int]:
        """Revoke every certificate issued to `identity`; their serials."""
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            CertificateRow.update(revoked=1).where(CertificateRow.identity == identity).execute()
        return [int(r.serial) for r in CertificateRow.select().where(CertificateRow.identity == identity)]

    def revoked_serials(self, now: float) -> set[int]:
        """Serials of revoked certificates that have not expired (expired ones fail TLS anyway)."""
        self.db.connect(reuse_if_open=True)
        rows = CertificateRow.select().where((CertificateRow.revoked == 1) & (CertificateRow.not_after > now))
        return {int(r.serial) for r in rows}


    # ----- the shared CA -------------------------------------------------------------

    def authority(self) -> StoredAuthority | None:
        """The newest stored CA generation, None before the first replica stored one."""
        self.db.connect(reuse_if_open=True)
        rows = list(AuthorityRow.select().order_by(AuthorityRow.generation.desc()).limit(2))
        if not rows:
            return None
        current = rows[0]
        previous = rows[1].cert_pem.encode() if len(rows) > 1 and rows[1].generation == current.generation - 1 else None
        return StoredAuthority(current.generation, current.cert_pem.encode(), current.key_pem.encode(), previous)

    def offer_authority(self, generation: int, cert_pem: bytes, key_pem: bytes) -> StoredAuthority:
        """Store a CA as `generation` unless another replica stored that generation first; the
        newest generation, whoever won (INSERT ... ON CONFLICT DO NOTHING, then read back)."""
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            AuthorityRow.insert(generation=generation, cert_pem=cert_pem.decode(), key_pem=key_pem.decode(),
                                create_time=time.time()).on_conflict_ignore().execute()
        return self.authority()


class PolicyStore:
    """Versions of policies (default, group, user); every change is a new row (auditable)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def newest(self) -> list[PolicyVersion]:
        """The newest version of every policy, deletions included."""
        self.db.connect(reuse_if_open=True)
        newest: dict[tuple[int, str], PolicyRow] = {}
        for row in PolicyRow.select().order_by(PolicyRow.version):
            newest[(row.scope, row.name)] = row
        return [PolicyVersion.from_row(row) for row in newest.values()]

    def versions(self, scope: int, name: str) -> list[PolicyVersion]:
        """Every stored version of one policy, newest first."""
        self.db.connect(reuse_if_open=True)
        rows = (PolicyRow.select().where((PolicyRow.scope == scope) & (PolicyRow.name == name))
                .order_by(PolicyRow.version.desc()))
        return [PolicyVersion.from_row(row) for row in rows]

    def add_version(self, scope: int, name: str, document: str, time: float, by: str,
                    deleted: bool, first: int = 1) -> PolicyVersion:
        """Store the next version (`first` when there is none yet: the default policy's
        built-in rules are its version 1, never stored)."""
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            last = (PolicyRow.select().where((PolicyRow.scope == scope) & (PolicyRow.name == name))
                    .order_by(PolicyRow.version.desc()).first())
            version = max(last.version if last else 0, first - 1) + 1
            row_id = PolicyRow.insert(scope=scope, name=name, version=version, document=document, time=time,
                                      updated_by=by, deleted=int(deleted)).execute()
        return PolicyVersion.from_row(PolicyRow.get_by_id(row_id))


def token_groups(token: TokenView) -> tuple[str, ...]:
    return token.groups
