"""`jobplane suspend|resume|hold --requeue` and `conflicts add --apply-to-running` end to end: real
processes, exit codes, output, and the process table."""

from __future__ import annotations

from pathlib import Path

from support import jobplane, wait_until

ON_HOLD, SUCCEEDED = 7, 3
TASK_RUNNING = 4


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _looping(directory: Path, count: int) -> list[str]:
    """Appends 0, 1, 2, ... to directory/ticks, one every 0.1 s, until it has appended 0..count-1 and
    directory/go exists (the test lets it end: CLIs start slowly on a loaded machine, and the task
    must not end before they act on it); its pid in directory/pid."""
    directory.mkdir(exist_ok=True)
    return ["sh", "-c", f"echo $$ > {directory}/pid; i=0; while [ $i -lt {count} ] || [ ! -e {directory}/go ]; "
                        f"do echo $i >> {directory}/ticks; i=$((i+1)); sleep 0.1; done"]


def _running(c, job_id: str) -> bool:
    """Its task RUNNING as the server knows it: a suspend while its start report is still on its way
    would requeue it (there is nothing to pause yet) instead."""
    return [t.state for t in c.client.list_tasks(job_id)] == [TASK_RUNNING]


def _counted(ticks: Path, count: int) -> bool:
    """0, 1, 2, ... each once, at least count of them: nothing lost, nothing twice."""
    found = ticks.read_text().split()
    return len(found) >= count and found == [str(i) for i in range(len(found))]


def test_suspend_and_resume_from_the_cli(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=1)
    addr, env = c.server.address, c.server.env()
    job = c.client.submit_job({"name": "long", "tasks": [{"name": "t", "command": _looping(tmp_path, 30)}]})
    wait_until(lambda: (tmp_path / "ticks").exists() and _running(c, job.id), 20, "the task to be running")
    r = jobplane("hold", job.id, "--server", addr, env=env)
    assert r.returncode == 3 and "--suspend" in r.stderr and "--requeue" in r.stderr  # it would hold nothing
    r = jobplane("suspend", job.id, "--reason", "disk full", "--server", addr, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"suspended job {job.id}" in r.stdout and "disk full" in r.stdout
    pid = int((tmp_path / "pid").read_text())
    wait_until(lambda: _state(pid) == "T", 30, "the task's process to be stopped (T)")
    (tmp_path / "go").touch()  # a process that still ran would now go on to its end
    r = jobplane("providers", "resume", "a", "--server", addr, env=env)
    assert r.returncode == 0 and _state(pid) == "T"  # a provider's resume is not a job's
    r = jobplane("resume", job.id, "--server", addr, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert c.client.wait_job(job.id, timeout=30).state == SUCCEEDED
    assert _counted(tmp_path / "ticks", 30)


def test_conflicts_add_apply_to_running_requeue_from_the_cli(sqlite_cluster, tmp_path):
    c = sqlite_cluster
    c.add_agent("a", slots=2)
    addr, env = c.server.address, c.server.env()
    first = c.client.submit_job({"name": "backup", "class": "backup",
                                 "tasks": [{"name": "t", "command": _looping(tmp_path / "first", 20)}]})
    second = c.client.submit_job({"name": "load", "class": "load",
                                  "tasks": [{"name": "t", "command": _looping(tmp_path / "second", 20)}]})
    wait_until(lambda: (tmp_path / "first" / "ticks").exists() and (tmp_path / "second" / "ticks").exists(),
               20, "both jobs to be running")
    pid = int((tmp_path / "second" / "pid").read_text())
    r = jobplane("conflicts", "add", "no-load-in-backup", "--exclusive", "--jobs", "class=backup", "--other",
                 "class=load", "--apply-to-running", "requeue", "--server", addr, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"held, running tasks requeued: jobs {second.id}" in r.stdout
    wait_until(lambda: _state(pid) == "", 30, "the later job's process to be stopped")
    assert c.client.get_job(second.id).status == ON_HOLD
    for job in ("first", "second"):
        (tmp_path / job / "go").touch()
    assert c.client.wait_job(first.id, timeout=30).state == SUCCEEDED
    assert c.client.wait_job(second.id, timeout=30).state == SUCCEEDED  # ran again once the backup ended
    starts = [t.attempt for t in c.client.list_tasks(second.id)]
    assert starts == [2]
    r = jobplane("conflicts", "add", "x", "--exclusive", "--jobs", "class=a", "--apply-to-running", "pause",
                 "--server", addr, env=env)
    assert r.returncode == 2 and "--apply-to-running" in r.stderr
