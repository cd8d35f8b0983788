"""Prerequisite inventory with real agents, each with its own file tree, PATH and environment:
placement by what a machine has, piggy-backed scans, version constraints, limits, expiry and
a prerequisite that vanishes."""

from __future__ import annotations

import os
import stat

import pytest

from support import wait_until

SUCCEEDED = 3
REF = {"kind": "file", "path": "ref.fa", "roots": ["$JP_DATA"]}


def machine(tmp_path, name: str, *, ref: bool = False, tool_version: str | None = None,
            extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an agent on its own 'machine': a data tree, maybe a tool on PATH."""
    root = tmp_path / f"machine-{name}"
    (root / "data").mkdir(parents=True)
    (root / "bin").mkdir()
    if ref:
        (root / "data" / "ref.fa").write_text(">chr1\nACGT\n")
    if tool_version is not None:
        tool = root / "bin" / "faketool"
        tool.write_text(f"#!/bin/sh\necho faketool {tool_version}\n")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return {"JP_DATA": str(root / "data"), "PATH": f"{root / 'bin'}:{os.environ['PATH']}", **(extra_env or {})}


def job(name: str, *prerequisites: dict, command=("true",), **task) -> dict:
    return {"name": name, "tasks": [{"name": "t", "command": list(command),
                                     "prerequisites": list(prerequisites), **task}]}


def only_task(cluster, job_id):
    (task,) = list(cluster.client.list_tasks(job_id))
    return task


def entries(cluster, **terms):
    text = " ".join(f"{k}={v}" for k, v in terms.items())
    return list(cluster.client.list_inventory(filter=text))


def test_a_job_needing_a_file_on_one_of_three_agents_runs_only_there(cluster, tmp_path):
    for name in ("a1", "a2", "a3"):
        cluster.add_agent(name, slots=1, env=machine(tmp_path, name, ref=name == "a2"))
    submitted = [cluster.client.submit_job(job(f"j{i}", REF)) for i in range(3)]
    for j in submitted:
        assert cluster.client.wait_job(j.id, timeout=60).state == SUCCEEDED
        assert only_task(cluster, j.id).provider_id == "a2"
    # Each agent's scan answers on its own: a2's "present" may place the jobs before a3's "absent" lands.
    expected = {"a1": False, "a2": True, "a3": False}
    wait_until(lambda: {e.provider_id: e.present for e in entries(cluster)} == expected, 30,
               f"the inventory to hold {expected}")


def test_an_executable_version_constraint_picks_the_right_agent(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    cluster.add_agent("old", slots=1, env=machine(tmp_path, "old", tool_version="1.9.3"))
    cluster.add_agent("new", slots=1, env=machine(tmp_path, "new", tool_version="2.4.1"))
    tool = {"kind": "executable", "name": "faketool", "version_args": ["--version"], "version": ">=2,<3"}
    submitted = cluster.client.submit_job(job("v", tool))
    assert cluster.client.wait_job(submitted.id, timeout=60).state == SUCCEEDED
    assert only_task(cluster, submitted.id).provider_id == "new"
    expected = {"old": (False, "1.9.3"), "new": (True, "2.4.1")}  # "old"'s answer may land after the job ran
    wait_until(lambda: {e.provider_id: (e.present, e.details.get("version")) for e in entries(cluster)} == expected,
               30, f"the inventory to hold {expected}")


def test_python_packages_are_checked_against_the_agents_interpreter(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    cluster.add_agent("a1", slots=1, env=machine(tmp_path, "a1"))
    present = cluster.client.submit_job(job("p", {"kind": "python_package", "name": "pytest", "version": ">=7"}))
    assert cluster.client.wait_job(present.id, timeout=60).state == SUCCEEDED
    missing = cluster.client.submit_job(job("m", {"kind": "python_package", "name": "no-such-dist-jobplane"}))
    wait_until(lambda: "no provider has python_package no-such-dist-jobplane (absent on a1)"
               in only_task(cluster, missing.id).reason, 30, "the task to say what is missing where")
    with pytest.raises(Exception, match="prerequisites: no connected provider has"):
        cluster.client.submit_job(job("m2", {"kind": "python_package", "name": "no-such-dist-jobplane"}))
    cluster.client.cancel_job(missing.id)


def test_prerequisites_of_later_work_are_scanned_along_with_an_unrelated_assignment(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    go = tmp_path / "go"
    cluster.add_agent("a1", slots=2, env=machine(tmp_path, "a1", extra_env={"GPU_DRIVER": "535"}))
    gpu = {"kind": "env", "name": "GPU_DRIVER"}
    submitted = cluster.client.submit_job({"name": "dag", "tasks": [
        {"name": "first", "command": ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"]},
        {"name": "second", "command": ["true"], "after": ["first"], "prerequisites": [gpu]}]})
    wait_until(lambda: entries(cluster, provider="a1"), 30, "the piggy-backed scan to fill the inventory")
    (entry,) = entries(cluster, provider="a1")
    assert (entry.present, entry.source) == (True, "piggyback"), "no explicit scan was needed"
    go.touch()
    assert cluster.client.wait_job(submitted.id, timeout=60).state == SUCCEEDED
    assert [e.source for e in entries(cluster)] == ["piggyback"]


def test_a_hanging_version_command_stops_at_its_limit(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    env = machine(tmp_path, "a1")
    hang = tmp_path / "machine-a1" / "bin" / "hangtool"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    cluster.add_agent("a1", slots=1, env=env)
    tool = {"kind": "executable", "name": "hangtool", "version_args": ["--version"], "version": ">=1"}
    submitted = cluster.client.submit_job(job("h", tool))
    (entry,) = wait_until(lambda: entries(cluster, provider="a1"), 20, "the scan to give up on hangtool")
    assert not entry.present and entry.reason
    cluster.client.cancel_job(submitted.id)


@pytest.mark.server_args("--inventory-ttl", "2")
def test_an_expired_entry_is_scanned_again_when_work_needs_it(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    cluster.add_agent("a1", slots=1, env=machine(tmp_path, "a1", ref=True))
    first = cluster.client.submit_job(job("one", REF))
    assert cluster.client.wait_job(first.id, timeout=60).state == SUCCEEDED
    (before,) = entries(cluster)
    wait_until(lambda: before.expire_time.ToNanoseconds() / 1e9 < _now(), 10, "the entry to expire")
    second = cluster.client.submit_job(job("two", REF))
    assert cluster.client.wait_job(second.id, timeout=60).state == SUCCEEDED
    (after,) = entries(cluster)
    assert after.scan_time.ToNanoseconds() > before.scan_time.ToNanoseconds()


def _now() -> float:
    import time

    return time.time()


def test_a_vanished_prerequisite_moves_the_task_elsewhere(sqlite_cluster, tmp_path):
    cluster = sqlite_cluster
    go = tmp_path / "go"
    cluster.add_agent("a1", slots=1, env=machine(tmp_path, "a1", ref=True))
    cluster.add_agent("a2", slots=1, labels={"role": "b"}, env=machine(tmp_path, "a2", ref=True))
    for name in ("a1", "a2"):
        cluster.client.scan_provider(name, [REF])
    wait_until(lambda: len([e for e in entries(cluster) if e.present]) == 2, 30, "both agents to report the file")
    blocker = cluster.client.submit_job({"name": "blocker", "tasks": [
        {"name": "t", "requires": {"role": "b"}, "command": ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"]}]})
    wait_until(lambda: cluster.client.get_provider("a2").slots_in_use == 1, 30, "a2 to be busy")
    (tmp_path / "machine-a1" / "data" / "ref.fa").unlink()  # the inventory still says a1 has it
    moved = cluster.client.submit_job(job("moved", REF))
    wait_until(lambda: not entries(cluster, provider="a1")[0].present, 30, "a1's entry to be invalidated")
    assert entries(cluster, provider="a1")[0].source == "recheck"
    go.touch()
    assert cluster.client.wait_job(moved.id, timeout=60).state == SUCCEEDED
    task = only_task(cluster, moved.id)
    assert task.provider_id == "a2" and "prerequisite missing on a1" in task.attempts[0].reason
    assert cluster.client.wait_job(blocker.id, timeout=30).state == SUCCEEDED
