"""A server killed with work queued or running resumes it after a restart on the same database."""

from support import free_port, wait_until

SUCCEEDED = 3


def test_queued_work_completes_after_kill_and_restart(cluster):
    job = cluster.client.submit_job({"name": "queued", "wait_for_providers": True, "tasks": [
        {"name": f"t{i}", "command": ["true"]} for i in range(5)]})
    cluster.server.kill()  # kill -9: the job was acknowledged, so it must survive
    cluster.start_server()
    cluster.add_agent("a")
    done = cluster.client.wait_job(job.id, timeout=60)
    assert done.state == SUCCEEDED and done.counts.success == 5


def test_running_work_completes_once_after_kill_and_restart(tmp_path, db_url):
    from conftest import Cluster

    cluster = Cluster(tmp_path, db_url)
    port = free_port()
    try:
        cluster.start_server(port=port, grace=5.0)
        cluster.add_agent("a", slots=2)
        marks = tmp_path / "marks"
        marks.mkdir()
        job = cluster.client.submit_job({"name": "running", "tasks": [
            {"name": f"t{i}", "command": ["sh", "-c", f"sleep 1; echo x >> {marks}/$JOBPLANE_TASK_NAME"]}
            for i in range(4)]})
        wait_until(lambda: cluster.client.get_job(job.id).counts.running == 2, 30, "two tasks running")
        cluster.server.kill()
        cluster.start_server(port=port, grace=5.0)  # the agent reconnects to the same address
        done = cluster.client.wait_job(job.id, timeout=60)
        assert done.state == SUCCEEDED and done.counts.success == 4
        assert sorted(p.name for p in marks.iterdir()) == ["t0", "t1", "t2", "t3"]
        assert all(p.read_text() == "x\n" for p in marks.iterdir()), "each task ran exactly once"
    finally:
        cluster.close()
