"""Submit → extract → delegate → run → results, with real agents and a real database."""

import json


SUCCEEDED, FAILED = 3, 4  # JobState
TASK_SUCCEEDED, TASK_CANCELLED = 5, 7


def interval(task):
    a = task.attempts[-1]
    return a.start_time.ToNanoseconds(), a.end_time.ToNanoseconds()


def tasks_by_name(cluster, job_id):
    return {t.name: t for t in cluster.client.list_tasks(job_id)}


def test_tasks_run_in_parallel_across_two_agents(cluster):
    cluster.add_agent("a", slots=2)
    cluster.add_agent("b", slots=2)
    job = cluster.client.submit_job({"name": "par", "tasks": [
        {"name": f"t{i}", "command": ["sh", "-c", "sleep 0.5; echo done-$JOBPLANE_TASK_NAME"]} for i in range(4)]})
    assert cluster.client.get_job(job.id).spec.name == "par"  # stored before submit returned
    done = cluster.client.wait_job(job.id, timeout=60)
    assert done.state == SUCCEEDED and done.counts.success == 4
    tasks = list(cluster.client.list_tasks(job.id))
    assert {t.provider_id for t in tasks} == {"a", "b"}
    assert all(t.stdout_tail.strip() == f"done-{t.name}" for t in tasks)
    spans = sorted(interval(t) for t in tasks)
    assert spans[1][0] < spans[0][1], "the first two tasks should have overlapped"


def test_sweep_and_chunks_produce_the_right_tasks_and_results(cluster):
    cluster.add_agent("a", slots=4)
    job = cluster.client.submit_job({"name": "shapes", "tasks": [
        {"name": "sweep", "command": ["echo", "{lr}-{bs}"], "matrix": {"lr": [0.1, 0.01], "bs": [16, 32, 64]}},
        {"name": "sum", "python": "jobplane.examples.funcs:sum_items", "items": list(range(1, 11)), "chunk_size": 3},
    ]})
    assert job.counts.total == 6 + 4
    assert cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    tasks = tasks_by_name(cluster, job.id)
    assert tasks["sweep[lr=0.01,bs=64]"].stdout_tail.strip() == "0.01-64"
    sums = [json.loads(tasks[f"sum[{i}]"].result_json) for i in range(4)]
    assert sums == [6, 15, 24, 10]


def test_dag_order_is_respected(cluster):
    cluster.add_agent("a", slots=4)
    cluster.add_agent("b", slots=4)
    sleep = ["sh", "-c", "sleep 0.2"]
    job = cluster.client.submit_job({"name": "dag", "tasks": [
        {"name": "extract", "command": sleep},
        {"name": "clean", "command": sleep, "after": ["extract"]},
        {"name": "enrich", "command": sleep, "after": ["extract"]},
        {"name": "load", "command": sleep, "after": ["clean", "enrich"]},
    ]})
    assert cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    t = {name: interval(task) for name, task in tasks_by_name(cluster, job.id).items()}
    assert t["clean"][0] >= t["extract"][1] and t["enrich"][0] >= t["extract"][1]
    assert t["load"][0] >= max(t["clean"][1], t["enrich"][1])


def test_failing_task_fails_the_job_with_its_exit_code(cluster):
    cluster.add_agent("a")
    job = cluster.client.submit_job({"name": "fails", "tasks": [
        {"name": "build", "command": ["sh", "-c", "echo broken >&2; exit 3"]},
        {"name": "deploy", "command": ["true"], "after": ["build"]},
    ]})
    done = cluster.client.wait_job(job.id, timeout=60)
    assert done.state == FAILED
    assert "build exited with code 3" in done.reason
    tasks = tasks_by_name(cluster, job.id)
    assert tasks["build"].exit_code == 3 and "broken" in tasks["build"].stderr_tail
    assert tasks["deploy"].state == TASK_CANCELLED


def test_python_callable_results_and_exceptions(cluster):
    cluster.add_agent("a")
    job = cluster.client.submit_job({"name": "py", "tasks": [
        {"name": "sq", "python": "jobplane.examples.funcs:square", "args": {"x": 7}},
        {"name": "boom", "python": "jobplane.examples.funcs:fail", "args": {"message": "no luck"}},
    ]})
    assert cluster.client.wait_job(job.id, timeout=60).state == FAILED
    tasks = tasks_by_name(cluster, job.id)
    assert json.loads(tasks["sq"].result_json) == 49
    assert "no luck" in tasks["boom"].error


def test_labels_route_tasks_only_to_matching_agents(cluster):
    cluster.add_agent("cpu", labels={"gpu": "false"})
    cluster.add_agent("gpu", labels={"gpu": "true"})
    job = cluster.client.submit_job({"name": "route", "tasks": [
        {"name": f"g{i}", "command": ["true"], "requires": {"gpu": "true"}} for i in range(6)]})
    assert cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    assert {t.provider_id for t in cluster.client.list_tasks(job.id)} == {"gpu"}


def test_slots_are_never_exceeded(cluster, tmp_path):
    running = tmp_path / "running"
    running.mkdir()
    log = tmp_path / "counts.log"
    cluster.add_agent("a", slots=2)
    script = f'touch {running}/$JOBPLANE_TASK_ID; ls {running} | wc -l >> {log}; sleep 0.2; rm {running}/$JOBPLANE_TASK_ID'
    job = cluster.client.submit_job({"name": "slots", "tasks": [
        {"name": f"t{i}", "command": ["sh", "-c", script]} for i in range(8)]})
    assert cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    counts = [int(line) for line in log.read_text().split()]
    assert len(counts) == 8 and max(counts) == 2


def test_higher_priority_job_runs_first(cluster, tmp_path):
    order = tmp_path / "order"
    record = lambda tag: ["sh", "-c", f"echo {tag} >> {order}"]  # noqa: E731
    low = cluster.client.submit_job({"name": "low", "wait_for_providers": True,
                                     "tasks": [{"name": "t", "command": record("low")}]})
    high = cluster.client.submit_job({"name": "high", "priority": 10, "wait_for_providers": True,
                                      "tasks": [{"name": "t", "command": record("high")}]})
    cluster.add_agent("a", slots=1)
    for job in (low, high):
        assert cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    assert order.read_text().split() == ["high", "low"]


def test_a_command_sees_the_agents_environment_under_its_specs_and_its_own(cluster):
    # The keeper holds the agent's environment; each start sends how a task's differs from it.
    cluster.add_agent("a", slots=2, env={"JP_FROM_AGENT": "agent", "JP_OVERRIDDEN": "agent"})
    show = 'echo "$JP_FROM_AGENT $JP_OVERRIDDEN ${JP_FROM_SPEC:-unset} $JOBPLANE_TASK_NAME ${JOBPLANE_CHECKPOINT_FILE:+file}"'
    job = cluster.client.submit_job({"name": "env", "tasks": [
        {"name": "own", "command": ["sh", "-c", show], "env": {"JP_OVERRIDDEN": "spec", "JP_FROM_SPEC": "spec"}},
        {"name": "plain", "command": ["sh", "-c", show], "after": ["own"]},
    ]})
    assert cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED
    tasks = tasks_by_name(cluster, job.id)
    assert tasks["own"].stdout_tail.strip() == "agent spec spec own file"
    assert tasks["plain"].stdout_tail.strip() == "agent agent unset plain file"
