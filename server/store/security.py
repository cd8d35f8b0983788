"""Queries for tokens, issued certificates and policy versions. Writes run on the writer
thread, each in its own transaction, so a join token's use is committed before the
enrollment it allowed is answered. (The audit log is written with the engine's batches and
read through reads.py.)"""

from __future__ import annotations

from peewee import Database

from .models import CertificateRow, PolicyRow, TokenRow
from .records import PolicyVersion, TokenView


class SecurityStore:
    def __init__(self, db: Database) -> None:
        self.db = db

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

    def use_token(self, token_id: str) -> TokenView | None:
        """Spend one use of a token with uses left; None if it has none (or is unknown)."""
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            row = TokenRow.get_or_none(TokenRow.id == token_id)
            if row is None or row.uses_left == 0:
                return None
            if row.uses_left > 0:
                row.uses_left -= 1
                TokenRow.update(uses_left=row.uses_left).where(TokenRow.id == token_id).execute()
        return TokenView.from_row(row)

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


class PolicyStore:
    """Versions of group and user policies; every change is a new row (auditable)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def current(self) -> list[PolicyVersion]:
        """The newest version of every policy that is not deleted."""
        self.db.connect(reuse_if_open=True)
        newest: dict[tuple[int, str], PolicyRow] = {}
        for row in PolicyRow.select().order_by(PolicyRow.version):
            newest[(row.scope, row.name)] = row
        return [PolicyVersion.from_row(row) for row in newest.values() if not row.deleted]

    def add_version(self, scope: int, name: str, document: str, time: float, by: str,
                    deleted: bool) -> PolicyVersion:
        self.db.connect(reuse_if_open=True)
        with self.db.atomic():
            last = (PolicyRow.select().where((PolicyRow.scope == scope) & (PolicyRow.name == name))
                    .order_by(PolicyRow.version.desc()).first())
            version = (last.version if last else 0) + 1
            row_id = PolicyRow.insert(scope=scope, name=name, version=version, document=document, time=time,
                                      updated_by=by, deleted=int(deleted)).execute()
        return PolicyVersion.from_row(PolicyRow.get_by_id(row_id))


def token_groups(token: TokenView) -> tuple[str, ...]:
    return token.groups
