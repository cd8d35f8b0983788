"""Schedules with a real server and agent: a `* * * * *` schedule runs by itself at the minute
and keeps doing so across a kill -9 of the server without running a due time twice (the only
test here that waits for a real minute boundary); run-now, pause, resume, overlap and delete
through the CLI (run-now keeps these fast); bad schedules are refused at the file's line; and
the schedule's calls are audited. Judged by what each run's command did: it appends to a file."""

from __future__ import annotations

import json
import time

import pytest

from jobplane.client import Client, NotFound
from jobplane.client.jobfile import parse_job_file
from support import free_port, jobplane, wait_until

INACTIVE, WAITING, RUNNING = 10, 3, 1  # NormalizedStatus
SUCCEEDED = 3  # JobState


def lines(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def job_file(tmp_path, schedule: str, command: str, *, name="tick", extra: str = "") -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\nschedule = "{schedule}"\n{extra}\n[[tasks]]\nname = "run"\n'
                    f"command = {json.dumps(['sh', '-c', command])}\n")
    return str(path)


def cli(cluster, *args: str):
    return jobplane(*args, "--server", cluster.server.address, env=cluster.server.env())


def created_id(r) -> str:
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("created schedule "), r.stdout
    return r.stdout.split()[2]


def runs_of(client, schedule_id: str) -> list:
    return sorted(client.list_jobs(filter=f"schedule={schedule_id}"), key=lambda j: int(j.id))


def test_a_minute_schedule_runs_by_itself_and_a_restart_neither_loses_nor_repeats_it(tmp_path, sqlite_url):
    from conftest import Cluster

    log = tmp_path / "runs"
    cluster, port = Cluster(tmp_path, sqlite_url), free_port()
    try:
        cluster.start_server(port=port, grace=5.0)
        cluster.add_agent("a")
        r = cli(cluster, "submit", job_file(tmp_path, "* * * * *", f"date +%H:%M >> {log}"))
        schedule_id = created_id(r)
        wait_until(lambda: lines(log), 75, "the schedule's first run at the minute")
        [first] = runs_of(cluster.client, schedule_id)
        assert first.schedule_id == schedule_id and first.spec.name == "tick"
        assert cluster.client.wait_job(first.id, timeout=30).state == SUCCEEDED
        before = cluster.client.get_schedule(schedule_id)
        assert before.last_job_id == first.id

        cluster.server.kill()  # kill -9 within the minute the run was due in
        cluster.start_server(port=port, grace=5.0)
        after = cluster.client.get_schedule(schedule_id)
        assert (after.cron, after.last_run_time, after.next_run_time) == (
            before.cron, before.last_run_time, before.next_run_time)
        # A run made after the restart has a higher job id than any the restart's first tick made.
        now = cluster.client.run_schedule_now(schedule_id).job
        wait_until(lambda: len(lines(log)) == 2, 30, "the run-now run after the restart")
        assert [j.id for j in runs_of(cluster.client, schedule_id)] == [first.id, now.id], \
            "the due time that ran before the restart did not run again"
        assert now.schedule_id == schedule_id
    finally:
        cluster.close()


def test_a_schedule_that_never_ran_shows_it_also_after_a_resume_and_a_restart(tmp_path, sqlite_url):
    """`schedules get` of a schedule that never ran showed "Last run" = its creation time (or
    the time it was last resumed)."""
    from conftest import Cluster

    cluster, port = Cluster(tmp_path, sqlite_url), free_port()
    try:
        cluster.start_server(port=port)
        cluster.add_agent("a")
        schedule_id = created_id(cli(cluster, "submit", job_file(tmp_path, "0 3 1 1 *", "true")))
        for action in ("pause", "resume"):  # a resume is no run either
            assert cli(cluster, "schedules", action, schedule_id).returncode == 0
        for restarted in (False, True):
            if restarted:
                cluster.server.kill()
                cluster.start_server(port=port)
            shown = cli(cluster, "schedules", "get", schedule_id)
            assert shown.returncode == 0 and "Last run    never\n" in shown.stdout, shown.stdout
            document = json.loads(cli(cluster, "schedules", "get", schedule_id, "-o", "json").stdout)
            assert "last_run_time" not in document and document["next_run_time"].endswith("-01-01T03:00:00Z")
        assert cli(cluster, "schedules", "run-now", schedule_id).returncode == 0
        shown = cli(cluster, "schedules", "get", schedule_id)  # a run now is no due time: none is shown
        assert "Last run    -\n" in shown.stdout and "Last job    " in shown.stdout, shown.stdout
    finally:
        cluster.close()


def test_run_now_pause_resume_and_delete_through_the_cli(cluster, tmp_path):
    log = tmp_path / "runs"
    cluster.add_agent("a")
    schedule_id = created_id(cli(cluster, "submit", job_file(tmp_path, "0 3 1 1 *", f"echo run >> {log}",
                                                             extra='time_zone = "Europe/Berlin"')))
    listed = cli(cluster, "schedules", "list")
    assert listed.returncode == 0 and "0 3 1 1 *" in listed.stdout and "Europe/Berlin" in listed.stdout

    r = cli(cluster, "schedules", "run-now", schedule_id)
    assert r.returncode == 0 and r.stdout.startswith("started job "), r.stdout + r.stderr
    wait_until(lambda: lines(log) == ["run"], 30, "the run-now run")
    job_id = r.stdout.split()[2]
    shown = cli(cluster, "jobs", "get", job_id)
    assert f"Schedule   {schedule_id}" in shown.stdout or f"Schedule  {schedule_id}" in shown.stdout, shown.stdout
    listed = cli(cluster, "jobs", "list", "--filter", f"schedule={schedule_id}", "-o", "json")
    assert [j["id"] for j in json.loads(listed.stdout)] == [job_id]

    r = cli(cluster, "schedules", "pause", schedule_id)
    assert r.returncode == 0 and "paused schedule" in r.stdout
    got = cluster.client.get_schedule(schedule_id)
    assert got.paused and got.status == INACTIVE
    r = cli(cluster, "schedules", "run-now", schedule_id)  # paused: run-now still runs it
    assert r.returncode == 0, r.stderr
    wait_until(lambda: len(lines(log)) == 2, 30, "run-now on a paused schedule")

    r = cli(cluster, "schedules", "resume", schedule_id)
    assert r.returncode == 0 and "next run" in r.stdout
    got = cluster.client.get_schedule(schedule_id)
    assert not got.paused and got.status == WAITING and got.next_run_time.seconds > time.time()

    assert cli(cluster, "schedules", "delete", schedule_id).returncode == 0
    r = cli(cluster, "schedules", "get", schedule_id)
    assert r.returncode == 3 and f"schedule {schedule_id} not found" in r.stderr
    assert len(runs_of(cluster.client, schedule_id)) == 2, "its jobs are kept"


def test_overlap_skip_refuses_run_now_and_queue_runs_after(cluster, tmp_path):
    log, gate = tmp_path / "runs", tmp_path / "gate"
    cluster.add_agent("a", slots=4)
    blocking = f"echo start >> {log}; while [ ! -e {gate} ]; do sleep 0.05; done"
    skip_id = created_id(cli(cluster, "submit", job_file(tmp_path, "0 3 1 1 *", blocking, name="skip")))
    queue_id = created_id(cli(cluster, "submit", job_file(tmp_path, "0 3 1 1 *", blocking, name="queue",
                                                          extra='overlap = "queue"')))

    assert cli(cluster, "schedules", "run-now", skip_id).returncode == 0
    wait_until(lambda: lines(log) == ["start"], 30, "the skip schedule's run to start")
    r = cli(cluster, "schedules", "run-now", skip_id)
    assert r.returncode == 3 and "is still running and its overlap is skip" in r.stderr, r.stderr

    assert cli(cluster, "schedules", "run-now", queue_id).returncode == 0
    wait_until(lambda: len(lines(log)) == 2, 30, "the queue schedule's first run")
    r = cli(cluster, "schedules", "run-now", queue_id)
    assert r.returncode == 0 and "waits for it (overlap = queue)" in r.stdout, r.stdout
    assert cluster.client.get_schedule(queue_id).queued
    gate.touch()  # the runs going on end: the queued one starts by itself
    wait_until(lambda: len(lines(log)) == 3, 30, "the queued run after the first ended")
    assert len(runs_of(cluster.client, queue_id)) == 2 and len(runs_of(cluster.client, skip_id)) == 1


def test_a_bad_schedule_is_refused_at_its_line_and_makes_nothing(sqlite_cluster, tmp_path):
    r = cli(sqlite_cluster, "submit", job_file(tmp_path, "0 25 * * *", "true"))
    assert r.returncode == 2
    assert 'tick.toml:2: schedule: "0 25 * * *": hour 25 is out of range 0-23' in r.stderr, r.stderr
    r = cli(sqlite_cluster, "submit", job_file(tmp_path, "0 2 * * *", "true", extra='time_zone = "Mars/Base"'))
    assert r.returncode == 2 and "tick.toml:3: time_zone: 'Mars/Base' is not a known IANA time zone" in r.stderr
    r = cli(sqlite_cluster, "submit", job_file(tmp_path, "0 2 * * *", "true", extra='overlap = "sometimes"'))
    assert r.returncode == 2 and 'tick.toml:3: overlap: expected one of "skip", "queue", "allow"' in r.stderr
    assert list(sqlite_cluster.client.list_schedules()) == []


def test_schedule_calls_are_audited_and_a_submitter_sees_only_their_own(sqlite_cluster, tmp_path):
    client = sqlite_cluster.client
    schedule = client.create_schedule(parse_job_file(
        'name = "nightly"\nschedule = "0 2 * * *"\n[[tasks]]\nname = "t"\ncommand = ["true"]\n').schedule)
    client.pause_schedule(schedule.id)

    def audited():  # a call's audit record is written with the batch after its answer
        return {(a.method.rsplit("/", 1)[1], a.target) for a in client.list_audit_records()}

    wait_until(lambda: ("PauseSchedule", f"schedule {schedule.id}") in audited(), 10, "the pause audited")
    assert ("CreateSchedule", "schedule '0 2 * * *' of job nightly") in audited()

    secret = client.create_token("submitter", user="bob").secret
    with Client.connect(sqlite_cluster.server.address, token=secret, ca=sqlite_cluster.server.ca) as bob:
        assert list(bob.list_schedules()) == []
        with pytest.raises(NotFound):
            bob.pause_schedule(schedule.id)


@pytest.mark.postgres
def test_schedules_through_a_follower_replica(tmp_path, pg_url):
    """Every schedule call sent to a follower is done by the leader (reads by the follower itself)."""
    from support import AgentProc, ServerProc

    (tmp_path / "a").mkdir()
    a = ServerProc(tmp_path / "a", pg_url, extra=["--lease", "2"])
    (tmp_path / "b" / "data").mkdir(parents=True)
    (tmp_path / "b" / "data" / "admin.token").write_text(a.token)  # the database's admin token
    b = ServerProc(tmp_path / "b", pg_url, extra=["--lease", "2"])
    agent = AgentProc(tmp_path, a, "w1")
    log = tmp_path / "runs"
    try:
        with b.client(timeout=10) as follower:
            made = follower.create_schedule(parse_job_file(
                f'name = "n"\nschedule = "0 3 1 1 *"\n[[tasks]]\nname = "t"\n'
                f'command = ["sh", "-c", "echo run >> {log}"]\n').schedule)
            assert [s.id for s in follower.list_schedules()] == [made.id]
            assert follower.pause_schedule(made.id).status == INACTIVE
            job = follower.run_schedule_now(made.id).job
            wait_until(lambda: lines(log) == ["run"], 30, "the run started through the follower")
            assert follower.get_job(job.id).schedule_id == made.id
            assert not follower.resume_schedule(made.id).paused
            follower.delete_schedule(made.id)
            assert list(follower.list_schedules()) == []
    finally:
        agent.stop()
        for server in (a, b):
            server.stop()
