"""The leader's lease in PostgreSQL, after River's `river_leader`: one row (jobplane_leader)
with the holder, its epoch and when the lease runs out, on the database's clock.

A replica takes the lease when it has run out (or when the holder is this replica's own
earlier process: the data directory's lock proves that process is gone), raising the epoch;
it renews it every lease/3. Every commit of the leader ends with `fence`, which touches the
row only while this replica holds it at its epoch, and holds the row's lock until the commit:
a takeover either came first (the fence touches nothing and the batch rolls back) or waits
for that commit, and every later one of the deposed leader is rolled back. Fencing last keeps
the row locked only for an instant, so a commit that waits long for a lock of its own never
holds up the renewals. Ids (jobs, tasks, events, ...) are the
maxima read after the lease is taken: fencing makes them final, since no deposed leader can
commit after that.
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import Database

from .failures import drop_connection
from .models import LeaderRow, ReplicaRow

NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
NOTIFY_CHANNEL = "jobplane_events"


@dataclass(frozen=True)
class Term:
    """This replica's leadership: it leads at `epoch` until another takes the lease."""

    replica: str
    epoch: int
    expires: float  # on the database's clock
    previous: str = ""  # who held the lease before this term: another replica's id is a takeover


@dataclass(frozen=True)
class Me:
    """What this replica tells the others about itself."""

    id: str
    address: str
    agent_address: str
    version: str


class LeaseStore:
    """The lease and the replicas' heartbeats. Its calls run on one thread of their own (the
    lease must be renewed even while a long commit holds the writer)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def setup(self) -> None:
        """The lease's one row (its table is made with the schema)."""
        with self.db.connection_context():
            self.db.execute_sql('INSERT INTO jobplane_leader (id, holder, epoch, expires, renewed, address, '
                                "agent_address) VALUES (1, '', 0, 0, 0, '', '') ON CONFLICT (id) DO NOTHING")

    def take(self, me: Me, lease: float) -> Term | None:
        """The lease, if it has run out or was this replica's; None if another holds it."""
        row = self._one(
            f"UPDATE jobplane_leader AS l SET holder = %s, epoch = l.epoch + 1, renewed = {NOW}, "
            f"expires = {NOW} + %s, address = %s, agent_address = %s "
            "FROM (SELECT holder FROM jobplane_leader WHERE id = 1) AS before "
            f"WHERE l.id = 1 AND (l.expires < {NOW} OR l.holder = %s) "
            "RETURNING l.epoch, l.expires, before.holder", (me.id, lease, me.address, me.agent_address, me.id))
        return None if row is None else Term(me.id, row[0], row[1], row[2])

    def renew(self, term: Term, lease: float) -> Term | None:
        """The lease for `lease` seconds more; None if it is no longer this replica's."""
        row = self._one(f"UPDATE jobplane_leader SET renewed = {NOW}, expires = {NOW} + %s "
                        "WHERE id = 1 AND holder = %s AND epoch = %s RETURNING expires",
                        (lease, term.replica, term.epoch))
        return None if row is None else Term(term.replica, term.epoch, row[0])

    def resign(self, term: Term) -> None:
        """Let the lease go at once (a clean stop), so another replica need not wait it out."""
        self._one("UPDATE jobplane_leader SET expires = 0 WHERE id = 1 AND holder = %s AND epoch = %s "
                  "RETURNING epoch", (term.replica, term.epoch))

    def heartbeat(self, me: Me, started: float) -> None:
        self._one(
            "INSERT INTO jobplane_replica (id, address, agent_address, version, started, last_seen) "
            f"VALUES (%s, %s, %s, %s, %s, {NOW}) ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, "
            "agent_address = EXCLUDED.agent_address, version = EXCLUDED.version, started = EXCLUDED.started, "
            "last_seen = EXCLUDED.last_seen RETURNING id", (me.id, me.address, me.agent_address, me.version, started))

    def leader(self) -> tuple[LeaderRow, float] | None:
        """The lease as it is, and the database clock's now."""
        with self.db.connection_context():
            cursor = self.db.execute_sql(f"SELECT holder, epoch, expires, renewed, address, agent_address, {NOW} "
                                         "FROM jobplane_leader WHERE id = 1")
            row = cursor.fetchone()
        if row is None:
            return None
        return LeaderRow(id=1, holder=row[0], epoch=row[1], expires=row[2], renewed=row[3], address=row[4],
                         agent_address=row[5]), row[6]

    def replicas(self) -> list[ReplicaRow]:
        with self.db.connection_context():
            return list(ReplicaRow.select().order_by(ReplicaRow.id))

    def _one(self, sql: str, params: tuple):
        self.db.connect(reuse_if_open=True)
        try:
            with self.db.atomic():
                return self.db.execute_sql(sql, params).fetchone()
        except Exception:
            drop_connection(self.db)
            raise


def fence(db: Database, term: Term) -> bool:
    """Inside a commit's transaction, last: whether this replica still leads at its epoch.
    The row stays locked until the commit."""
    cursor = db.execute_sql("UPDATE jobplane_leader SET renewed = renewed WHERE id = 1 AND holder = %s "
                            "AND epoch = %s", (term.replica, term.epoch))
    return cursor.rowcount == 1


def notify(db: Database, last_event: int) -> None:
    """Tell the followers (LISTEN jobplane_events) that events up to `last_event` are committed;
    PostgreSQL delivers it when the transaction commits, and never if it rolls back."""
    db.execute_sql("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(last_event)))

