"""Resource requests with a real server and real agents whose capacity is set by flag: tasks are
packed into what an agent advertises (judged by when each task's process ran, from the file it
appends to), a custom resource is shared out one at a time, a task too big for every agent says
which resource is short and runs once a big enough agent joins, in-use capacity is right after a
server restart, and every bad request is refused naming its field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobplane.client import InvalidArgument
from jobplane.v1 import job_pb2
from support import RunLog, free_port, jobplane, recorded_command, wait_until

SUCCEEDED, QUEUED = 3, 2


def spans(log: Path) -> dict[str, tuple[float, float]]:
    """When each task's (first) attempt ran: its start and end lines in the log."""
    run = RunLog(log)
    return {name: (starts[0][1], run.ends[name][0][1]) for name, starts in run.starts.items() if name in run.ends}


def overlapping(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def cli(c, *args: str):
    return jobplane(*args, "--server", c.server.address, env=c.server.env())


def job(name: str, tasks: list[dict], **fields) -> dict:
    return {"name": name, "tasks": tasks, **fields}


@pytest.mark.parametrize("cpus, together", [(6, False), (8, True)])
def test_two_four_cpu_tasks_take_turns_on_six_cpus_and_run_together_on_eight(sqlite_cluster, tmp_path, cpus, together):
    c, log = sqlite_cluster, tmp_path / "runs.log"
    c.add_agent("a", slots=4, extra=["--cpus", str(cpus)])
    submitted = c.client.submit_job(job("pair", [{"name": f"t{i}", "command": recorded_command(log, 1.5), "cpus": 4}
                                                 for i in range(2)]))
    assert c.client.wait_job(submitted.id, timeout=60).state == SUCCEEDED
    ran = spans(log)
    assert sorted(ran) == ["t0", "t1"]
    assert overlapping(ran["t0"], ran["t1"]) == together, ran


def test_a_custom_resource_lets_each_agent_run_one_task_at_a_time(sqlite_cluster, tmp_path):
    c, log = sqlite_cluster, tmp_path / "runs.log"
    c.add_agent("a", slots=3, extra=["--resource", "license=1"])
    c.add_agent("b", slots=3, extra=["--resource", "license=1"])
    c.add_agent("none", slots=3)  # has no license: never takes a task that needs one
    submitted = c.client.submit_job(job("licensed", [
        {"name": f"t{i}", "command": recorded_command(log, 0.6), "resources": {"license": 1}} for i in range(5)]))
    assert c.client.wait_job(submitted.id, timeout=60).state == SUCCEEDED
    ran, where = spans(log), {t.name: t.provider_id for t in c.client.list_tasks(submitted.id)}
    assert sorted(ran) == [f"t{i}" for i in range(5)]
    assert set(where.values()) <= {"a", "b"}, where
    for first in ran:
        for second in ran:
            if first < second and where[first] == where[second]:
                assert not overlapping(ran[first], ran[second]), (first, second, where[first], ran)


def test_a_task_too_big_for_every_agent_says_what_is_short_and_runs_once_a_big_agent_joins(tmp_path, sqlite_url):
    from conftest import Cluster

    c, log, marker = Cluster(tmp_path, sqlite_url), tmp_path / "runs.log", tmp_path / "unmet"
    try:
        c.start_server(extra=["--scale-out-hook", f'echo "$JOBPLANE_UNMET" > {marker}', "--scale-interval", "1"])
        _too_big_waits_then_runs(c, log, marker)
    finally:
        c.close()


def _too_big_waits_then_runs(c, log: Path, marker: Path) -> None:
    c.add_agent("small", extra=["--cpus", "2", "--memory", "64GiB"])
    submitted = c.client.submit_job(job("big", [{"name": "big", "command": recorded_command(log, 0.1), "cpus": 16,
                                                 "memory": "8GiB"}]))
    task = wait_until(lambda: next((t for t in c.client.list_tasks(submitted.id) if "needs" in t.reason), None), 20,
                      "the task to say what it needs")
    assert task.reason == "waiting: needs 16 cpus, the largest provider has 2 cpus"
    assert task.state == QUEUED
    shown = cli(c, "tasks", "get", task.id)
    assert "16 cpus, 8 GiB memory" in shown.stdout, shown.stdout + shown.stderr
    unmet = wait_until(lambda: marker.exists() and marker.read_text().strip() and json.loads(marker.read_text()), 20,
                       "the scale-out hook to run")
    assert unmet[0]["resources"] == {"cpus": 16, "memory": 8 * 2**30} and unmet[0]["tasks"] == 1
    c.add_agent("big", extra=["--cpus", "16", "--memory", "16GiB"])
    assert c.client.wait_job(submitted.id, timeout=30).state == SUCCEEDED
    assert next(iter(c.client.list_tasks(submitted.id))).provider_id == "big"
    assert RunLog(log).runs("big") == 1


def test_capacity_in_use_is_right_after_a_server_restart(tmp_path, db_url):
    from conftest import Cluster

    c, log, release = Cluster(tmp_path, db_url), tmp_path / "runs.log", tmp_path / "release"
    port = free_port()
    hold = ["sh", "-c", f'echo "start $JOBPLANE_TASK_NAME 1 $(date +%s.%N)" >> {log}; '
                        f"while [ ! -e {release} ]; do sleep 0.05; done; "
                        f'echo "end $JOBPLANE_TASK_NAME 1 $(date +%s.%N)" >> {log}']
    try:
        c.start_server(port=port, grace=5.0)
        c.add_agent("a", slots=4, extra=["--cpus", "4"])
        hog = c.client.submit_job(job("hog", [{"name": "hog", "command": hold, "cpus": 3}]))
        wait_until(lambda: "hog" in RunLog(log).starts, 20, "the hog to start")
        c.server.kill()
        c.start_server(port=port, grace=5.0)
        c.wait_active("a")
        provider = c.client.get_provider("a")
        assert (provider.capacity.cpus, provider.in_use.cpus) == (4, 3)
        small = c.client.submit_job(job("small", [{"name": "small", "command": recorded_command(log, 0.1),
                                                   "cpus": 2}], priority=5))
        # A later job with no requests runs: the agent takes work, so `small` waits only for room.
        probe = c.client.submit_job(job("probe", [{"name": "probe", "command": recorded_command(log, 0.1)}]))
        assert c.client.wait_job(probe.id, timeout=30).state == SUCCEEDED
        assert next(iter(c.client.list_tasks(small.id))).state == QUEUED
        release.touch()
        assert c.client.wait_job(small.id, timeout=30).state == SUCCEEDED
        assert c.client.wait_job(hog.id, timeout=30).state == SUCCEEDED
        ran = spans(log)
        assert ran["small"][0] >= ran["hog"][1], ran
        assert c.client.get_provider("a").in_use.cpus == 0
    finally:
        c.close()


BAD_REQUESTS = [
    (job_pb2.ResourceRequest(cpus=-1), "spec.tasks[0].resources.cpus"),
    (job_pb2.ResourceRequest(memory="8XB"), "spec.tasks[0].resources.memory"),
    (job_pb2.ResourceRequest(memory="-5"), "spec.tasks[0].resources.memory"),
    (job_pb2.ResourceRequest(gpus=-1), "spec.tasks[0].resources.gpus"),
    (job_pb2.ResourceRequest(custom={"license": 0}), 'spec.tasks[0].resources.custom["license"]'),
    (job_pb2.ResourceRequest(custom={"bad name": 1}), 'spec.tasks[0].resources.custom["bad name"]'),
    (job_pb2.ResourceRequest(custom={"gpus": 1}), 'spec.tasks[0].resources.custom["gpus"]'),
]


@pytest.mark.parametrize("request_, field", BAD_REQUESTS, ids=[f for _, f in BAD_REQUESTS])
def test_a_bad_resource_request_is_refused_naming_its_field_and_makes_no_job(sqlite_cluster, request_, field):
    c = sqlite_cluster
    spec = job_pb2.JobSpec(name="bad", tasks=[job_pb2.TaskSpec(name="t", command=["true"], resources=request_)],
                           wait_for_providers=True)
    with pytest.raises(InvalidArgument) as raised:
        c.client.submit_job(spec)
    assert raised.value.message.startswith(f"{field}: "), raised.value.message
    assert not list(c.client.list_jobs())


def test_a_bad_job_default_is_refused_naming_its_field(sqlite_cluster):
    spec = job_pb2.JobSpec(name="bad", tasks=[job_pb2.TaskSpec(name="t", command=["true"])], wait_for_providers=True,
                           task_resources=job_pb2.ResourceRequest(memory="lots"))
    with pytest.raises(InvalidArgument) as raised:
        sqlite_cluster.client.submit_job(spec)
    assert raised.value.message.startswith("spec.task_resources.memory: "), raised.value.message


def test_job_defaults_apply_to_tasks_that_ask_for_nothing_themselves(sqlite_cluster, tmp_path):
    c, log = sqlite_cluster, tmp_path / "runs.log"
    c.add_agent("a", slots=4, extra=["--cpus", "3"])
    submitted = c.client.submit_job(job("defaults", [
        {"name": "t0", "command": recorded_command(log, 1.0)},
        {"name": "t1", "command": recorded_command(log, 1.0), "cpus": 1}], cpus=2))
    assert c.client.wait_job(submitted.id, timeout=30).state == SUCCEEDED
    requests = {t.name: t.spec.resources.cpus for t in c.client.list_tasks(submitted.id)}
    assert requests == {"t0": 2, "t1": 1}
    ran = spans(log)
    assert overlapping(ran["t0"], ran["t1"]), ran  # 2 + 1 fit in 3


def test_a_bad_job_file_value_names_its_line(sqlite_cluster, tmp_path):
    path = tmp_path / "job.toml"
    path.write_text('name = "x"\n\n[[tasks]]\nname = "t"\ncommand = "true"\nmemory = "8 parsecs"\n')
    result = cli(sqlite_cluster, "submit", str(path))
    assert result.returncode != 0
    assert f"{path}:6: tasks[0].memory: unknown unit 'parsecs'" in result.stderr, result.stderr


def test_continuations_are_packed_into_the_capacity_of_the_provider_they_go_to(sqlite_cluster, tmp_path):
    c, log = sqlite_cluster, tmp_path / "runs.log"
    line = f'echo "$1 $JOBPLANE_TASK_NAME $JOBPLANE_ATTEMPT $(date +%s.%N)" >> {log}'
    # The first attempt runs until its provider is drained; the continued one for a second.
    body = (f"{line.replace('$1', 'start')}; if [ $JOBPLANE_ATTEMPT = 1 ]; then sleep 60; else sleep 1; fi; "
            f"{line.replace('$1', 'end')}")
    c.add_agent("a", slots=4, extra=["--cpus", "8"])
    submitted = c.client.submit_job(job("moved", [{"name": f"t{i}", "command": ["sh", "-c", body], "cpus": 4}
                                                  for i in range(2)]))
    wait_until(lambda: len(RunLog(log).starts) == 2, 20, "both tasks to run on a")
    c.add_agent("b", slots=4, extra=["--cpus", "4"])
    c.client.drain_provider("a")
    assert c.client.wait_job(submitted.id, timeout=60).state == SUCCEEDED
    run = RunLog(log)
    moved = {name: (dict(run.starts[name])[2], dict(run.ends[name])[2]) for name in ("t0", "t1")}
    assert {t.provider_id for t in c.client.list_tasks(submitted.id)} == {"b"}
    assert not overlapping(moved["t0"], moved["t1"]), moved
