"""A fleet of simulated agents on real streams against a real server (insecure: one identity
for every agent, so --max-streams is raised): connecting in a burst commits in batches, a quiet
fleet's heartbeats write nothing, and no provider whose heartbeats keep coming is suspected.
Judged by what the server's /metrics and event log say, never by timing."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import ServerProc, wait_until
from support_fleet import BEATS, Fleet, judge
from support_http import HTTP, get


@pytest.fixture
def server(tmp_path):
    s = ServerProc(tmp_path, f"sqlite:///{tmp_path / 'jobplane.db'}", insecure=True,
                   extra=[*HTTP, "--max-streams", "10000", "--reconnect-grace", "10"])
    yield s
    s.stop()


def scrape(server) -> dict[tuple, float]:
    body = get(server, "/metrics").body
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def commits(samples: dict) -> float:
    return samples.get(("jobplane_commit_seconds_count",), 0.0)


def heartbeats(samples: dict) -> float:
    return samples.get(("jobplane_heartbeat_handling_seconds_count",), 0.0)


def active(server) -> int:
    return int(scrape(server).get(("jobplane_providers", ("state", "ACTIVE")), 0))


def suspicions(db: Path) -> list[str]:
    """Every SUSPECT or LOST a provider was ever taken for, from the server's event table."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [f"{p} {s}: {m}" for p, s, m in conn.execute(
            "SELECT provider, raw_status, message FROM event WHERE provider != '' AND raw_status IN "
            "('SUSPECT', 'LOST')")]


def test_a_burst_of_agents_connecting_commits_their_states_in_batches(server):
    """200 agents connecting at once: each is written CONNECTING then ACTIVE (400 provider
    states, 400 events) in shared transactions. One commit per state change (what the server
    did before) is at least 400, whatever the timing; how far below that batching gets depends
    on how the connects and the commits interleave (about 25 to 130 here, by the load), so the
    test asks only that they were shared."""
    n = 200
    before = commits(scrape(server))
    with Fleet(server.agent_address, heartbeat=5.0) as fleet:
        fleet.add(n)  # one process, every hello written at once
        wait_until(lambda: fleet.connected() == n and active(server) == n, 60, f"{n} agents connected and ACTIVE")
        spent = commits(scrape(server)) - before
        assert 0 < spent < 2 * n, f"{spent:g} commits for {n} agents connecting (2n: one per state change)"


def test_a_quiet_fleets_heartbeats_write_nothing_and_none_is_suspected(server):
    """50 agents beating every 0.5 s (promised: suspected after 1 s of silence): hundreds of
    heartbeats are taken, none commits anything, and no provider is ever suspected."""
    n = 50
    with Fleet(server.agent_address, heartbeat=0.5) as fleet:
        fleet.add(n)
        wait_until(lambda: fleet.connected() == n and active(server) == n, 60, f"{n} agents connected and ACTIVE")
        def beating():
            samples = scrape(server)
            return samples if heartbeats(samples) >= n else None
        settled = wait_until(beating, 30, "every agent's first heartbeat taken")
        wait_until(lambda: heartbeats(scrape(server)) >= heartbeats(settled) + 10 * n, 60,
                   f"{10 * n} more heartbeats taken")
        assert fleet.count(BEATS) >= 10 * n
        assert commits(scrape(server)) == commits(settled), "heartbeats of a quiet fleet committed something"
        assert suspicions(server.workdir / "jobplane.db") == []
        assert active(server) == n == fleet.connected()


def test_the_bench_judges_a_hung_agents_suspicions_justified_and_a_beating_ones_false(server):
    """Two of 20 agents hang once connected (no heartbeat, no answer to a probe): the server
    suspects them and gives up on them; the bench's judge, from what each simulated agent really
    sent, calls every suspicion of theirs justified. A suspicion of an agent that kept beating
    (none is expected on this server) would be judged false: the same event, moved to the last
    thing a beating agent sent, is."""
    n, quiet = 20, 2
    db = server.workdir / "jobplane.db"
    with Fleet(server.agent_address, heartbeat=0.5) as fleet:
        fleet.add(n, quiet=quiet)
        hung = {f"sim-{i}" for i in range(quiet)}
        events = wait_until(lambda: (lambda e: e if {p for p, _ in e} >= hung else None)(suspected(db)), 60,
                            "both hung agents suspected")
        wait_until(lambda: {p for p, s in lost(db)} >= hung, 60, "both hung agents lost")
        logs = fleet.sent()
    assert {p for p, _ in events} == hung, "an agent that kept beating was suspected"
    assert judge(events, logs, allowed=0.5 * 2.0) == (len(events), 0)
    beating = "sim-5"
    last = [t for t in logs[beating] if t > 0][-1]
    assert judge([(beating, last + 0.1)], logs, allowed=0.5 * 2.0) == (0, 1)


def suspected(db: Path) -> list[tuple[str, float]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT provider, time FROM event WHERE raw_status = 'SUSPECT' AND message LIKE 'silent%'"
                            ).fetchall()


def lost(db: Path) -> list[tuple[str, float]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT provider, raw_status FROM event WHERE raw_status = 'LOST'").fetchall()
