"""The agent's lease end to end: a real server, real agents, kill -9. What a killed agent ran
must not outlive it once no agent process comes back for it; what a restarted one adopts runs
on. Judged by the process table: nothing here kills a task's processes itself."""

from __future__ import annotations

import pytest

from support import escapes_command, noted_pids, paused, pid_alive, wait_until

TASK_RUNNING = 4


def running_on(cluster, job_id, name):
    return [t for t in cluster.client.list_tasks(job_id)
            if t.state == TASK_RUNNING and t.provider_id == name]


def test_a_killed_agents_task_processes_die_when_no_agent_process_comes_back(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    argv, pids, ready = escapes_command(tmp_path, "double-fork")  # one of them left its session
    cluster.add_agent("a", slots=1)
    job = cluster.client.submit_job({"name": "stranded", "tasks": [{"name": "t", "command": argv}]})
    wait_until(lambda: running_on(cluster, job.id, "a") and ready.exists(), 30, "the task to run on a")
    noted = noted_pids(pids)
    cluster.agents["a"].kill()
    # Within the reconnect grace and the kill deadline (loosely bounded; bench/ times it).
    wait_until(lambda: not [pid for pid in noted if pid_alive(pid)], 30,
               "the killed agent's task processes to be killed")


# Items 1..10, each once its tick file exists (polled every half second), checkpointed after
# each; every start and item is logged with the attempt and pid. A continued attempt notes
# whether the earlier attempt's process is still alive as it starts.
TICKED = """
import os, sys, time
from jobplane.agent import checkpoint
log, ticks = sys.argv[1], sys.argv[2]
attempt, pid = os.environ["JOBPLANE_ATTEMPT"], os.getpid()

def alive(p):
    try:
        return open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

earlier = [line.split()[2] for line in open(log).read().splitlines()] if os.path.exists(log) else []
with open(log, "a") as f:
    f.write(f"start {attempt} {pid} {time.time()} {any(alive(p) for p in earlier)}\\n")
state = checkpoint.load({"i": 0})
for i in range(state["i"] + 1, 11):
    while not os.path.exists(os.path.join(ticks, str(i))):
        time.sleep(0.5)
    with open(log, "a") as f:
        f.write(f"item {attempt} {pid} {time.time()} {i}\\n")
    checkpoint.save({"i": i})
"""


@pytest.mark.server_args("--reconnect-grace", "3")
def test_a_killed_agents_checkpointed_task_continues_with_each_item_processed_once(cluster, tmp_path):
    import json
    import sys

    script, log, ticks = tmp_path / "ticked.py", tmp_path / "items.log", tmp_path / "ticks"
    script.write_text(TICKED)
    ticks.mkdir()
    cluster.add_agent("a", slots=1)
    job = cluster.client.submit_job({"name": "ticked", "tasks": [
        {"name": "t", "command": [sys.executable, str(script), str(log), str(ticks)]}]})
    wait_until(lambda: running_on(cluster, job.id, "a"), 30, "the task to run on a")
    cluster.add_agent("b", slots=1)
    for i in (1, 2, 3):
        (ticks / str(i)).touch()

    def checkpoint():
        (task,) = list(cluster.client.list_tasks(job.id))
        return json.loads(task.checkpoint_json) if task.checkpoint_json else {}

    wait_until(lambda: checkpoint().get("i") == 3, 30, "the server to have the checkpoint after item 3")
    cluster.agents["a"].kill()
    # Its keeper pauses the attempt as soon as it sees the agent gone, and kills it after the grace
    # (3 s here, for a loaded machine to see it paused); an item it took before the pause would be
    # done again (no checkpoint of it reaches the server), so the next items come once it is paused.
    first = int(next(line for line in log.read_text().splitlines() if line.startswith("start 1 ")).split()[2])
    wait_until(lambda: paused(first), 30, "the killed agent's attempt to be paused")
    for i in range(4, 11):  # a stranded attempt that still ran would take these at once
        (ticks / str(i)).touch()
    assert cluster.client.wait_job(job.id, timeout=60).state == 3  # SUCCEEDED
    lines = [line.split() for line in log.read_text().splitlines()]
    items = [(int(attempt), int(i)) for kind, attempt, _, _, i in (l for l in lines if l[0] == "item")]
    assert sorted(i for _, i in items) == list(range(1, 11)), "each item processed exactly once"
    assert [i for attempt, i in items if attempt == 1] == [1, 2, 3]
    starts = [l for l in lines if l[0] == "start"]
    assert [(s[1], s[4]) for s in starts] == [("1", "False"), ("2", "False")], \
        "the killed agent's process was gone when the continuation started"
    assert not pid_alive(int(starts[0][2]))


def test_an_agent_stopped_with_sigterm_hands_its_running_task_on_instead_of_failing_it(cluster, tmp_path):
    import json
    import signal
    import sys

    script, log, ticks = tmp_path / "ticked.py", tmp_path / "items.log", tmp_path / "ticks"
    script.write_text(TICKED)
    ticks.mkdir()
    cluster.add_agent("a", slots=1)
    job = cluster.client.submit_job({"name": "ticked", "tasks": [
        {"name": "t", "command": [sys.executable, str(script), str(log), str(ticks)]}]})
    wait_until(lambda: running_on(cluster, job.id, "a"), 30, "the task to run on a")
    cluster.add_agent("b", slots=1)
    (ticks / "1").touch()
    wait_until(lambda: json.loads(list(cluster.client.list_tasks(job.id))[0].checkpoint_json or "{}").get("i") == 1,
               30, "the checkpoint after item 1")
    stopping = cluster.agents["a"]
    stopping.signal(signal.SIGTERM)  # what Ctrl-C on `jobplane up` or a service manager does
    assert stopping.p.wait(30) == 0
    for i in range(2, 11):
        (ticks / str(i)).touch()
    done = cluster.client.wait_job(job.id, timeout=60)
    assert done.state == 3, done.reason  # SUCCEEDED: handed on, never failed
    (task,) = list(cluster.client.list_tasks(job.id))
    assert [a.provider_id for a in task.attempts] == ["a", "b"] and "is stopping" in task.attempts[0].reason
    assert json.loads(task.attempts[1].resumed_from_json) == {"i": 1}
    assert cluster.client.get_provider("a").state == 9  # STOPPED
    items = [int(l.split()[4]) for l in log.read_text().splitlines() if l.startswith("item")]
    assert sorted(items) == list(range(1, 11))
