"""Replicas on PostgreSQL (issue 16) through the faults that take a control plane down: the
leader killed, frozen, cut off from the database; the database restarting; a follower killed
under its watchers. Each runs three real jobplane-server processes (TLS, one CA and one set of
tokens in the database) on a PostgreSQL of the test's own, real agents and a load of a few thousand short tasks, and is judged by the history
(support_history): every acknowledged submit exists, every task's result was accepted once,
no task ran twice or in two places at once (by what the tasks wrote), and every watcher saw the
event log with no gap, repeat or event the database does not hold, across replicas and leaders.
"""

from __future__ import annotations

import time

import pytest

from jobplane.client import InvalidArgument
from support import wait_until
from support_postgres import PrivatePostgres
from support_replicas import FOLLOWER, LEADER, Load, ReplicaSet

# They need PostgreSQL installed (each test starts one of its own), not JOBPLANE_TEST_PG_URL's.
pytestmark = pytest.mark.postgres
ACTIVE = 1  # PROVIDER_STATE_ACTIVE
# Every watcher is the admin: raise the streams per identity (default 64) and the submit rate.
SERVER_ARGS = ["--max-streams", "1000", "--submit-rate", "1000"]


def assert_clean(load: Load) -> None:
    problems = load.check()
    assert not problems, "the history is not clean:\n" + "\n".join(problems)


@pytest.fixture
def pg(request):
    server = PrivatePostgres()
    yield server
    failed = getattr(request.node, "rep_call", None)
    kept = failed is not None and failed.failed
    server.stop(keep=kept)
    if kept:
        print(f"---- the database is kept in {server.dir} ----")


@pytest.fixture
def replicas(tmp_path, pg, request):
    """make(**options): a ReplicaSet on a fresh database of the test's PostgreSQL."""
    made: list[ReplicaSet] = []

    def make(**options) -> ReplicaSet:
        rs = ReplicaSet(tmp_path, pg.create_database(), extra=SERVER_ARGS, **options)
        made.append(rs)
        return rs

    yield make
    failed = getattr(request.node, "rep_call", None)
    for rs in made:
        if failed is not None and failed.failed:
            print(rs.logs())
            print(f"---- postgresql ----\n{pg.log()}")
        rs.close()


def test_one_replica_leads_and_any_replica_takes_a_write(replicas):
    rs = replicas()
    leader, epoch = rs.leader()
    assert epoch >= 1
    for asked in rs.replicas:
        answer = rs.list_servers(asked)
        assert {s.address: s.role for s in answer.servers} == {
            r.address: LEADER if r is leader else FOLLOWER for r in rs.replicas}
        assert (answer.servers[0].address, answer.servers[0].epoch) == (leader.address, epoch), "the leader first"
    rs.add_agent("a", slots=2)
    follower = rs.followers(leader)[0]
    with rs.client(leader, timeout=10) as direct, rs.client(follower, timeout=10) as client:
        wait_until(lambda: [p.state for p in client.list_providers()] == [ACTIVE], 30, "the agent to be ACTIVE")
        job = client.submit_job({"name": "via-follower", "tasks": [{"name": "t", "command": ["true"]}]})
        with pytest.raises(InvalidArgument, match="tasks"):  # the leader's answer, passed back as it is
            client.submit_job({"name": "empty", "tasks": []})
        assert client.wait_job(job.id, timeout=30).counts.success == 1
        mine = direct.submit_job({"name": "direct", "tasks": [{"name": "t", "command": ["true"]}]})
        assert job.owner == mine.owner != "", "the follower passed on who asked, not itself"
    for r in rs.replicas:  # every replica reads them from the database
        with rs.client(r, timeout=10) as client:
            assert sorted(j.spec.name for j in client.list_jobs()) == ["direct", "via-follower"]


def test_the_leader_killed_three_times_in_a_row_loses_and_repeats_nothing(replicas):
    rs = replicas()
    load = Load(rs, jobs=30, tasks=100, pause=0.3).start()
    leader, epoch = rs.leader()
    for _ in range(3):
        load.wait_progress(150)
        leader.kill()
        new, epoch = rs.leader(newer_than=epoch)
        leader.start()  # back on its data directory: a follower now
        leader = new
    assert_clean(load)


def test_a_leader_frozen_past_its_lease_is_deposed_and_rejoins_as_a_follower(replicas):
    rs = replicas()
    leader, epoch = rs.leader()
    # Watcher 0 (it records every event) follows the leader: whatever the deposed leader
    # announces after SIGCONT reaches it, and must match what the database holds.
    load = Load(rs, jobs=20, tasks=100, pause=0.3, first=[leader, *rs.followers(leader)]).start()
    load.wait_progress(200)
    leader.freeze()
    new, _ = rs.leader(newer_than=epoch)
    load.wait_progress(200)
    leader.thaw()
    wait_until(lambda: rs.role_of(leader) == FOLLOWER and rs.role_of(leader, new) == FOLLOWER, 30,
               "the thawed replica to list itself, and to be listed, as a follower")
    assert_clean(load)


def test_a_leader_cut_off_from_postgresql_steps_down_and_another_takes_over(replicas):
    rs = replicas(links=True)
    leader, epoch = rs.leader()
    load = Load(rs, jobs=20, tasks=100, pause=0.3, first=[leader, *rs.followers(leader)]).start()
    load.wait_progress(200)
    leader.partition()  # its queries hang, none fails
    new, _ = rs.leader(newer_than=epoch, ignore=leader)
    load.wait_progress(200)
    leader.heal()
    wait_until(lambda: rs.role_of(leader) == FOLLOWER and rs.role_of(leader, new) == FOLLOWER, 30,
               "the replica cut off to list itself, and to be listed, as a follower")
    assert_clean(load)


def test_a_postgresql_restart_loses_nothing(replicas, pg):
    rs = replicas()
    load = Load(rs, jobs=20, tasks=100, pause=0.3).start()
    load.wait_progress(300)
    rs.faults.append(f"{time.time():.3f} postgresql: restart -m fast")
    pg.restart()  # pg_ctl restart -m fast: every connection closed, open transactions rolled back
    rs.faults.append(f"{time.time():.3f} postgresql: back")
    load.wait_progress(300)
    assert_clean(load)


def test_a_follower_killed_under_200_watchers_loses_them_no_event(replicas):
    rs = replicas()
    leader, epoch = rs.leader()
    follower = rs.followers(leader)[0]
    load = Load(rs, jobs=10, tasks=100, pause=0.3, watchers=200, first=[follower]).start()
    load.wait_progress(300)
    follower.kill()
    load.wait_progress(300)
    assert_clean(load)
    assert load.watchers.resumed() == 200, "every watcher moved to another replica"
    assert rs.leader()[1] == epoch, "the leader never changed"


def test_a_follower_takes_the_lead_after_a_postgresql_restart(replicas, pg):
    """The followers' connections sat idle through the restart (dead, though their driver thinks
    them open); the leader is then killed: a follower must lead on fresh ones, and take writes."""
    rs = replicas()
    leader, epoch = rs.leader()
    with rs.client(leader, timeout=10) as client:
        client.submit_job({"name": "before", "wait_for_providers": True, "tasks": [{"name": "t", "command": ["true"]}]})
    pg.restart()
    leader.kill()
    new, _ = rs.leader(newer_than=epoch, timeout=30)
    with rs.client(new, timeout=10) as client:
        client.submit_job({"name": "after", "wait_for_providers": True, "tasks": [{"name": "t", "command": ["true"]}]})
        assert sorted(j.spec.name for j in client.list_jobs()) == ["after", "before"]
