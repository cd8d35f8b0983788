"""The agent's lease end to end: a real server, real agents, kill -9. What a killed agent ran
must not outlive it once no agent process comes back for it; what a restarted one adopts runs
on. Judged by the process table: nothing here kills a task's processes itself."""

from __future__ import annotations

from support import escapes_command, noted_pids, pid_alive, wait_until

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
