"""INACTIVE through a real server and agent: a job whose only provider with the labels it needs
is drained shows INACTIVE (job and task, saying which provider to resume), and runs once it is
resumed. Judged by the file the task writes."""

from __future__ import annotations

from support import wait_until

ACTIVE, DRAINED = 1, 6
SUCCEEDED = 3
INACTIVE, WAITING = 10, 3


def test_a_job_only_a_drained_provider_can_run_is_inactive_until_it_is_resumed(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("gpu-1", labels={"gpu": "true"})
    c.client.drain_provider("gpu-1")
    wait_until(lambda: c.client.get_provider("gpu-1").state == DRAINED, 20, "gpu-1 to be drained")
    ran = tmp_path / "ran"
    job = c.client.submit_job({"name": "train", "wait_for_providers": True, "tasks": [
        {"name": "t", "command": ["touch", str(ran)], "requires": {"gpu": "true"}}]})
    wait_until(lambda: c.client.get_job(job.id).status == INACTIVE, 20, "the job to be INACTIVE")
    (task,) = c.client.list_tasks(job.id)
    assert task.status == INACTIVE and "jobplane providers resume gpu-1" in task.reason, task.reason
    assert [t.id for t in c.client.list_tasks(filter="status=INACTIVE")] == [task.id]
    assert not ran.exists()
    c.client.resume_provider("gpu-1")
    assert c.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    assert ran.exists()
