"""Holding work that already runs, with a real agent and real processes: `hold --suspend` stops
every process of the attempt in place (state T) and `release` continues it; `hold --requeue`
stops it and runs it again from its checkpoint on release. Judged by the process table and by
the files the task appends to: nothing stops short, nothing runs twice."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jobplane.client import FailedPrecondition, InvalidArgument
from jobplane.client.errors import JobFileError
from support import AgentProc, ServerProc, free_port, wait_until

ON_HOLD, RUNNING_STATUS = 7, 1
SUCCEEDED = 3
TASK_RUNNING = 4


# A task that notes each start (with where it starts from) and its pid, then appends 0, 1, 2, ... to
# TICKS, one every 0.1 s, until it has appended COUNT of them and GO exists (the test lets it end: a
# loaded machine must not end it before the test has held it). With CHECKPOINTS ("1") it saves the
# next number after each and starts from the saved one. A SIGTERM ends it between two numbers, never
# between a number and its checkpoint (where a shell's trap could run, or kill the `mv` saving it);
# each is noted in TERMS.
TICKING = """
import os, signal, sys, time
from jobplane.agent import checkpoint
ticks, starts, pid, go, terms, count, checkpoints = sys.argv[1:]
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
i = checkpoint.load({"i": 0})["i"] if checkpoints == "1" else 0
print(f"resumed from {i}", flush=True)
with open(starts, "a") as f:
    f.write(f"start {i}\\n")
with open(pid, "w") as f:
    f.write(f"{os.getpid()}\\n")
while i < int(count) or not os.path.exists(go):
    if stopping:
        with open(terms, "a") as f:
            f.write("term\\n")
        sys.exit(143)
    with open(ticks, "a") as f:
        f.write(f"{i}\\n")
    i += 1
    if checkpoints == "1":
        checkpoint.save({"i": i})
    time.sleep(0.1)
"""


def ticking(tmp_path: Path, count: int, checkpoints: bool = False) -> tuple[list[str], Path, Path, Path]:
    """A TICKING task in tmp_path (its go file tmp_path/go: let_end), and its ticks, starts and pid files."""
    ticks, starts, pid = tmp_path / "ticks", tmp_path / "starts", tmp_path / "pid"
    script = tmp_path / "ticking.py"
    script.write_text(TICKING)
    return ([sys.executable, str(script), str(ticks), str(starts), str(pid), str(tmp_path / "go"),
             str(tmp_path / "terms"), str(count), "1" if checkpoints else "0"], ticks, starts, pid)


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def runs(client, job_id: str) -> bool:
    """The job's tasks all RUNNING as the server knows them (`jobplane tasks list`): the hold
    below meets a task known to run (test_suspend_race.py holds one the server sees assigned)."""
    return all(t.state == TASK_RUNNING for t in client.list_tasks(job_id))


def let_end(ticks: Path) -> None:
    """Let the ticking task of `ticks` end once it has appended its count (ticking)."""
    (ticks.parent / "go").touch()


def counted(ticks: Path, count: int) -> bool:
    """The task appended 0, 1, 2, ... each once, and at least count of them: nothing lost,
    nothing twice, nothing stopped short."""
    found = lines(ticks)
    return len(found) >= count and found == [str(i) for i in range(len(found))]


def state_of(pid: int) -> str:
    """The process's state letter in /proc/PID/stat (R, S, T, ...); "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def heartbeats_later(client, provider: str, seconds: float) -> None:
    """Wait until the provider's heartbeats have moved its last-seen time on by `seconds`."""
    first = client.get_provider(provider).last_seen_time.ToNanoseconds()
    wait_until(lambda: client.get_provider(provider).last_seen_time.ToNanoseconds() - first >= seconds * 1e9,
               seconds + 10, f"{seconds:g}s of heartbeats")


@pytest.mark.parametrize("containment", ["auto", "subreaper"])  # auto: a cgroup where the machine allows
def test_a_suspended_task_stops_in_place_past_its_timeout_and_finishes_after_release(sqlite_cluster, tmp_path,
                                                                                      containment):
    c = sqlite_cluster
    c.add_agent("a", slots=1, extra=["--containment", containment])
    # A short run (10 numbers, once let end) within its timeout, however slowly a loaded machine runs it.
    command, ticks, starts, pidfile = ticking(tmp_path, 10)
    job = c.client.submit_job({"name": "long", "tasks": [
        {"name": "t", "command": command, "timeout": 8, "max_attempts": 1}]})
    wait_until(lambda: len(lines(ticks)) >= 3 and runs(c.client, job.id), 20, "the task to be running")
    held = c.client.hold_job(job.id, reason="db maintenance", mode="suspend")
    assert "db maintenance" in held.hold
    pid = int(pidfile.read_text())
    wait_until(lambda: state_of(pid) == "T", 30, "the task's process to be stopped (T)")
    let_end(ticks)  # a process that still ran would now go on to its end
    (task,) = c.client.list_tasks(job.id)
    assert task.status == ON_HOLD and "suspended" in task.reason and "db maintenance" in task.reason
    assert c.client.get_job(job.id).status == ON_HOLD
    written = len(lines(ticks))
    heartbeats_later(c.client, "a", 9)  # longer than its 8 s timeout, which waits while it is paused
    assert len(lines(ticks)) == written and state_of(pid) == "T"
    c.client.release_job(job.id)
    wait_until(lambda: state_of(pid) != "T", 30, "the task's process to go on")
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    assert counted(ticks, 10)  # every number once: nothing lost, nothing twice
    assert lines(starts) == ["start", "0"]
    (task,) = c.client.list_tasks(job.id)
    assert task.attempt == 1


def test_a_requeued_task_resumes_from_its_checkpoint_on_release(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    command, ticks, starts, pidfile = ticking(tmp_path, 30, checkpoints=True)
    job = c.client.submit_job({"name": "resumable", "tasks": [{"name": "t", "command": command, "max_attempts": 1}]})
    wait_until(lambda: len(lines(ticks)) >= 5 and runs(c.client, job.id), 20, "the task to be running")
    pid = int(pidfile.read_text())
    c.client.hold_job(job.id, reason="month-end freeze", mode="requeue")
    wait_until(lambda: state_of(pid) == "", 30, "the task's process to be stopped for good")
    wait_until(lambda: next(iter(c.client.list_tasks(job.id))).state == 2, 30, "the task to be queued again")  # QUEUED
    (task,) = c.client.list_tasks(job.id)
    assert task.status == ON_HOLD and "month-end freeze" in task.reason
    assert c.client.get_job(job.id).status == ON_HOLD
    written = len(lines(ticks))
    let_end(ticks)
    c.client.release_job(job.id)
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    assert counted(ticks, 30)  # nothing ran twice, nothing was skipped
    assert lines(starts) == ["start", "0", "start", str(written)]
    (task,) = c.client.list_tasks(job.id)
    assert task.attempt == 2  # its max_attempts of 1 was not used up by the requeue
    assert f"resumed from {written}" in c.client.get_task(task.id).stdout_tail


def test_a_plain_hold_of_a_job_whose_tasks_all_run_is_refused_naming_the_modes(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    command, ticks, _, _ = ticking(tmp_path, 1)  # runs until cancelled
    job = c.client.submit_job({"name": "busy", "tasks": [{"name": "t", "command": command}]})
    wait_until(lambda: len(lines(ticks)) >= 1 and runs(c.client, job.id), 20, "the task to be running")
    with pytest.raises(FailedPrecondition, match="--suspend.*--requeue"):
        c.client.hold_job(job.id, reason="oops")
    assert c.client.get_job(job.id).hold == ""
    c.client.cancel_job(job.id)


def set_fact(path: Path, value: float) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(f'{{"ok": {value}}}')
    temporary.replace(path)


def test_a_task_whose_condition_is_lost_is_suspended_and_goes_on_when_it_holds_again(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    facts = tmp_path / "facts.json"
    set_fact(facts, 1)
    c.add_agent("a", slots=1, extra=["--facts-file", str(facts)])
    command, ticks, starts, pidfile = ticking(tmp_path, 30)
    job = c.client.submit_job({"name": "picky", "conditions": ["ok>=1"], "on_condition_lost": "suspend",
                               "tasks": [{"name": "t", "command": command}]})
    wait_until(lambda: len(lines(ticks)) >= 3 and runs(c.client, job.id), 20, "the task to be running")
    pid = int(pidfile.read_text())
    set_fact(facts, 0)
    wait_until(lambda: state_of(pid) == "T", 30, "the task's process to be stopped (T) once ok<1")
    let_end(ticks)
    (task,) = c.client.list_tasks(job.id)
    assert task.status == ON_HOLD and "no longer meets its conditions" in task.reason and "ok>=1" in task.reason
    written = len(lines(ticks))
    heartbeats_later(c.client, "a", 2)
    assert len(lines(ticks)) == written
    set_fact(facts, 1)
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    assert counted(ticks, 30) and lines(starts) == ["start", "0"]


def test_a_task_whose_condition_is_lost_is_requeued_and_resumes_from_its_checkpoint(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    facts = tmp_path / "facts.json"
    set_fact(facts, 1)
    c.add_agent("a", slots=1, extra=["--facts-file", str(facts)])
    command, ticks, starts, pidfile = ticking(tmp_path, 30, checkpoints=True)
    job = c.client.submit_job({"name": "picky", "conditions": ["ok>=1"], "on_condition_lost": "requeue",
                               "tasks": [{"name": "t", "command": command, "max_attempts": 1}]})
    wait_until(lambda: len(lines(ticks)) >= 3 and runs(c.client, job.id), 20, "the task to be running")
    pid = int(pidfile.read_text())
    set_fact(facts, 0)
    wait_until(lambda: state_of(pid) == "", 30, "the task's process to be stopped for good once ok<1")
    wait_until(lambda: next(iter(c.client.list_tasks(job.id))).status == ON_HOLD, 30, "the task to wait ON_HOLD")
    written = len(lines(ticks))
    let_end(ticks)
    set_fact(facts, 1)
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    assert counted(ticks, 30)
    assert lines(starts) == ["start", "0", "start", str(written)]


def test_on_condition_lost_is_refused_where_it_cannot_apply(sqlite_cluster):
    c = sqlite_cluster
    with pytest.raises(InvalidArgument, match="spec.on_condition_lost.*has none"):
        c.client.submit_job({"name": "x", "on_condition_lost": "suspend", "wait_for_providers": True,
                             "tasks": [{"name": "t", "command": ["true"]}]})
    with pytest.raises(InvalidArgument, match="spec.on_condition_lost.*python task; use requeue"):
        c.client.submit_job({"name": "x", "on_condition_lost": "suspend", "conditions": ["ok>=1"],
                             "wait_for_providers": True, "tasks": [{"name": "t", "python": "os:getcwd"}]})
    with pytest.raises(JobFileError, match="on_condition_lost.*expected \"continue\""):
        c.client.submit_job({"name": "x", "on_condition_lost": "pause", "conditions": ["ok>=1"],
                             "tasks": [{"name": "t", "command": ["true"]}]})
    assert list(c.client.list_jobs()) == []


def test_a_rule_applied_to_running_jobs_suspends_the_later_until_the_earlier_ends(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=2)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first_cmd, first_ticks, _, _ = ticking(tmp_path / "first", 20)
    second_cmd, second_ticks, second_starts, second_pid = ticking(tmp_path / "second", 30)
    first = c.client.submit_job({"name": "load-a", "class": "etl", "tasks": [{"name": "t", "command": first_cmd}]})
    wait_until(lambda: len(lines(first_ticks)) >= 1 and runs(c.client, first.id), 20, "the first job to be running")
    second = c.client.submit_job({"name": "load-b", "class": "etl", "tasks": [{"name": "t", "command": second_cmd}]})
    wait_until(lambda: len(lines(second_ticks)) >= 1 and runs(c.client, second.id), 20,
               "the second job to be running beside it")
    response = c.client.apply_conflict_rule({"name": "one-etl", "kind": "exclusive", "jobs": "class=etl"},
                                            to_running="suspend")
    assert list(response.held_job_ids) == [second.id]
    pid = int(second_pid.read_text())
    wait_until(lambda: state_of(pid) == "T", 30, "the later job's process to be stopped (T)")
    let_end(second_ticks)
    held = c.client.get_job(second.id)
    assert held.status == ON_HOLD and f"yields to job {first.id} load-a (rule one-etl)" in held.hold
    written, going = len(lines(second_ticks)), len(lines(first_ticks))
    wait_until(lambda: len(lines(first_ticks)) >= going + 5, 20, "the earlier job to run on")
    assert len(lines(second_ticks)) == written  # it does not run beside the first once the rule applies
    let_end(first_ticks)
    assert c.client.wait_job(first.id, timeout=30).state == SUCCEEDED
    assert c.client.wait_job(second.id, timeout=30).state == SUCCEEDED  # released by itself
    released = [e.message for e in c.client.watch(second.id, timeout=20) if e.message.startswith("released")]
    assert released and all(m.startswith(f"released: job {first.id}, which it yielded to, has ended")
                            for m in released), released  # not "by hand": no one released it
    assert counted(second_ticks, 30) and lines(second_starts) == ["start", "0"]
    assert counted(first_ticks, 20)


@pytest.mark.postgres
def test_suspend_release_and_a_rule_applied_to_running_jobs_through_a_follower(tmp_path: Path, pg_url):
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "data").mkdir(parents=True)
    a = ServerProc(tmp_path / "a", pg_url, extra=["--lease", "2"])
    (tmp_path / "b" / "data" / "admin.token").write_text(a.token)  # the database's admin token
    b = ServerProc(tmp_path / "b", pg_url, extra=["--lease", "2"])
    agent = AgentProc(tmp_path, a, "w1", slots=2)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one_cmd, one_ticks, _, one_pid = ticking(tmp_path / "one", 20)
    two_cmd, two_ticks, _, two_pid = ticking(tmp_path / "two", 30, checkpoints=True)
    try:
        with b.client(timeout=10) as client:  # the follower: every write here is the leader's to do
            wait_until(lambda: list(client.list_providers(filter="state=ACTIVE")), 20, "the agent to join")
            one = client.submit_job({"name": "one", "class": "etl", "tasks": [{"name": "t", "command": one_cmd}]})
            wait_until(lambda: len(lines(one_ticks)) >= 2 and runs(client, one.id), 20, "the first job to be running")
            client.hold_job(one.id, reason="through b", mode="suspend")
            pid = int(one_pid.read_text())
            wait_until(lambda: state_of(pid) == "T", 30, "the first job's process to be stopped (T)")
            client.release_job(one.id)
            wait_until(lambda: state_of(pid) != "T", 30, "the first job's process to go on")
            two = client.submit_job({"name": "two", "class": "etl", "tasks": [{"name": "t", "command": two_cmd}]})
            wait_until(lambda: len(lines(two_ticks)) >= 2 and runs(client, two.id), 20,
                       "the second job to be running beside it")
            response = client.apply_conflict_rule({"name": "one-etl", "kind": "exclusive", "jobs": "class=etl"},
                                                  to_running="requeue")
            assert list(response.held_job_ids) == [two.id]
            let_end(one_ticks)
            let_end(two_ticks)
            assert client.wait_job(one.id, timeout=60).state == SUCCEEDED
            assert client.wait_job(two.id, timeout=60).state == SUCCEEDED
            assert counted(one_ticks, 20)
            assert counted(two_ticks, 30)
    finally:
        agent.stop()
        for server in (a, b):
            server.stop()


def test_a_task_suspended_before_a_server_restart_stays_suspended_until_released(tmp_path, sqlite_url):
    from conftest import Cluster

    c = Cluster(tmp_path, sqlite_url)
    port = free_port()
    try:
        c.start_server(port=port, grace=5.0)
        c.add_agent("a", slots=1)
        command, ticks, starts, pidfile = ticking(tmp_path, 20)
        job = c.client.submit_job({"name": "long", "tasks": [{"name": "t", "command": command}]})
        wait_until(lambda: len(lines(ticks)) >= 2 and runs(c.client, job.id), 20, "the task to be running")
        c.client.hold_job(job.id, reason="overnight", mode="suspend")
        pid = int(pidfile.read_text())
        wait_until(lambda: state_of(pid) == "T", 30, "the task's process to be stopped (T)")
        let_end(ticks)
        c.server.kill()
        c.start_server(port=port, grace=5.0)  # the agent reconnects to the same address, keeping it
        c.wait_active("a")
        (task,) = c.client.list_tasks(job.id)
        assert task.status == ON_HOLD and "overnight" in task.reason and state_of(pid) == "T"
        c.client.release_job(job.id)
        assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
        assert counted(ticks, 20) and lines(starts) == ["start", "0"]
    finally:
        c.close()


def test_a_suspended_task_requeued_then_cancelled_gets_its_sigterm_each_time(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    command, ticks, starts, pidfile = ticking(tmp_path, 1, checkpoints=True)  # runs until cancelled
    job = c.client.submit_job({"name": "long", "tasks": [{"name": "t", "command": command}]})
    wait_until(lambda: len(lines(ticks)) >= 2 and runs(c.client, job.id), 20, "the task to be running")
    c.client.hold_job(job.id, mode="suspend")
    pid = int(pidfile.read_text())
    wait_until(lambda: state_of(pid) == "T", 30, "the task's process to be stopped (T)")
    c.client.hold_job(job.id, mode="requeue")  # continued, so that it saves its checkpoint as it stops
    wait_until(lambda: state_of(pid) == "", 30, "the suspended process to be stopped for good")
    written = len(lines(ticks))
    c.client.release_job(job.id)
    wait_until(lambda: len(lines(starts)) == 4, 20, "the task to run again")
    assert lines(starts)[2:] == ["start", str(written)]
    wait_until(lambda: len(lines(ticks)) >= written + 2 and runs(c.client, job.id), 20, "the task to run on")
    c.client.hold_job(job.id, mode="suspend")
    pid = int(pidfile.read_text())
    wait_until(lambda: state_of(pid) == "T", 30, "the second attempt's process to be stopped (T)")
    c.client.cancel_job(job.id)
    wait_until(lambda: state_of(pid) == "", 30, "the cancelled process to be gone")
    assert c.client.wait_job(job.id, timeout=20).state == 5  # CANCELLED
    assert lines(ticks) == [str(i) for i in range(len(lines(ticks)))]  # each number once
    assert lines(tmp_path / "terms") == ["term", "term"]  # SIGTERMed (not SIGKILLed stopped) both times


def suspended_with_its_agent_killed(c, tmp_path: Path, timeout: float) -> tuple:
    """A ticking task (let end: it ends once it runs on) of `timeout` seconds on a new agent
    "a" of `c`, held in place (its process stopped, T), then the agent killed with SIGKILL:
    (the job, its ticks and starts files, the command's pid)."""
    c.add_agent("a", slots=1)
    command, ticks, starts, pidfile = ticking(tmp_path, 10)
    job = c.client.submit_job({"name": "long", "tasks": [{"name": "t", "command": command, "timeout": timeout}]})
    wait_until(lambda: len(lines(ticks)) >= 2 and runs(c.client, job.id), 20, "the task to be running")
    c.client.hold_job(job.id, reason="overnight", mode="suspend")
    pid = int(pidfile.read_text())
    wait_until(lambda: state_of(pid) == "T", 30, "the task's process to be stopped (T)")
    let_end(ticks)
    crashed = c.agents["a"]
    crashed.kill()
    crashed.stop()
    return job, ticks, starts, pid


def test_a_suspended_task_stays_suspended_while_a_restarted_agent_adopts_it(tmp_path, sqlite_url):
    from conftest import Cluster

    c = Cluster(tmp_path, sqlite_url)
    c.start_server(grace=5.0)  # a new agent process must start within it on a loaded machine
    try:
        job, ticks, starts, pid = suspended_with_its_agent_killed(c, tmp_path, timeout=8)
        c.add_agent("a", slots=1)  # the same name and state directory: it adopts the attempt
        written = len(lines(ticks))
        heartbeats_later(c.client, "a", 9)  # past its timeout: the new agent process knows it is paused
        assert state_of(pid) == "T" and len(lines(ticks)) == written
        c.client.release_job(job.id)
        assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
        assert counted(ticks, 10) and lines(starts) == ["start", "0"]
        (task,) = c.client.list_tasks(job.id)
        assert task.attempt == 1
    finally:
        c.close()


def test_a_task_released_while_its_agent_was_away_runs_on_with_the_agent_process_that_adopts_it(
        tmp_path, sqlite_url):
    """The release goes nowhere while no agent process holds the suspended attempt: it is sent
    again when one connects holding it. Before, the command stayed stopped (T) for good and its
    job never ended."""
    from conftest import Cluster

    c = Cluster(tmp_path, sqlite_url)
    c.start_server(grace=5.0)  # a new agent process must start within it on a loaded machine
    try:
        job, ticks, starts, pid = suspended_with_its_agent_killed(c, tmp_path, timeout=60)
        c.client.release_job(job.id)  # no agent process holds the attempt now
        c.add_agent("a", slots=1)  # the same name and state directory: it adopts the attempt
        assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
        assert counted(ticks, 10) and lines(starts) == ["start", "0"], "it ran on where it stopped"
        (task,) = c.client.list_tasks(job.id)
        assert task.attempt == 1
    finally:
        c.close()
