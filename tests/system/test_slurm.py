"""The slurm environment against a real Slurm cluster (.ci/slurm-up.sh starts one: munged,
MariaDB + slurmdbd, slurmctld and slurmd on this machine), with a real server and a real
agent. Skipped where no Slurm answers; a failure under CI=true.

Slurm's own commands are what the agent calls, through wrappers first on its PATH that log
each call (with a timestamp) before running the real command: that is how the tests count
sbatch, squeue and sacct calls. What Slurm itself recorded (sacct) is the judge of what ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from support import wait_until

RUNNING, FAILURE, WAITING, SUCCESS, CANCEL, ON_HOLD = 1, 2, 3, 4, 5, 7
DONE = (5, 6, 7)  # TASK_STATE_SUCCEEDED, FAILED, CANCELLED
COMMANDS = ("sbatch", "squeue", "sacct", "scancel")
POLL = 0.5  # the agent's --slurm-poll-interval in these tests


def _slurm_problem() -> str:
    """Why these tests cannot run here; "" when a Slurm cluster with accounting answers."""
    for name in (*COMMANDS, "sinfo", "scontrol"):
        if shutil.which(name) is None:
            return f"{name} is not on the PATH"
    nodes = _run(["sinfo", "--noheader", "--Node", "-o", "%t"], check=False)
    if nodes.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in nodes.stdout.split()):
        return f"no Slurm node is up (sinfo: {(nodes.stdout + nodes.stderr).strip()[:200]!r})"
    accounting = _run(["sacct", "--noheader", "--allocations", "--jobs=1"], check=False)
    if accounting.returncode != 0:
        return f"sacct does not answer: {accounting.stderr.strip()[:200]!r}"
    return ""


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=check)


@pytest.fixture(scope="module")
def slurm_cluster_up() -> None:
    problem = _slurm_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Slurm tests, but {problem}: .ci/run starts Slurm with .ci/slurm-up.sh")
        pytest.skip(f"no Slurm cluster here ({problem}); start one with `bash .ci/slurm-up.sh` (as root)")


class SlurmCalls:
    """Wrappers for Slurm's commands that log each call to a file, and what that file says."""

    def __init__(self, directory: Path) -> None:
        self.bin = directory / "bin"
        self.log = directory / "slurm-calls.log"
        self.bin.mkdir()
        self.log.touch()
        for name in COMMANDS:
            wrapper = self.bin / name
            wrapper.write_text(f'#!/bin/sh\nprintf "%s {name} %s\\n" "$(date +%s.%N)" "$*" >>"{self.log}"\n'
                               f'exec {shutil.which(name)} "$@"\n')
            wrapper.chmod(0o755)

    def calls(self, name: str) -> list[tuple[float, str]]:
        """(time, arguments) of each call of `name`, in order."""
        found = []
        for line in self.log.read_text().splitlines():
            stamp, command, _, args = line.partition(" ")[0], *line.partition(" ")[2].partition(" ")
            if command == name:
                found.append((float(stamp), args))
        return found

    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}:{os.environ['PATH']}"}


@pytest.fixture
def slurm(slurm_cluster_up, sqlite_cluster, tmp_path):
    """A real server with one agent started with --slurm, whose Slurm calls are logged."""
    calls = SlurmCalls(tmp_path)
    harness = Harness(sqlite_cluster, calls, tmp_path)
    harness.start_agent()
    yield harness
    harness.cancel_leftovers()


class Harness:
    def __init__(self, cluster, calls: SlurmCalls, workdir: Path) -> None:
        self.cluster = cluster
        self.client = cluster.client
        self.calls = calls
        self.workdir = workdir
        self.own_jobs: list[str] = []  # submitted by the test itself, outside jobplane

    def start_agent(self, name: str = "login-1", *, wait: bool = True):
        return self.cluster.add_agent(name, slots=64, wait=wait, env=self.calls.env(),
                                      extra=["--slurm", "--slurm-poll-interval", str(POLL)])

    def attempt_dir(self, agent: str, task_id: str, attempt: int) -> Path:
        """Where the agent keeps its record of the attempt (gone once it let go of it)."""
        return self.workdir / f"agent-{agent}.state" / f"{task_id}.{attempt}"

    def submit(self, *tasks: dict, name: str = "sim"):
        return self.client.submit_job({"name": name, "tasks": [
            {"cwd": str(self.workdir), **task} for task in tasks]})

    def task(self, job_id: str, name: str):
        return next(t for t in self.client.list_tasks(job_id) if t.name == name)

    def wait_task(self, job_id: str, name: str, check, what: str, timeout: float = 60):
        last = []

        def reached():
            task = self.task(job_id, name)
            last[:] = [task]
            return task if check(task) else None
        try:
            return wait_until(reached, timeout, f"task {name} {what}", interval=0.2)
        except AssertionError as exc:
            t = last[0] if last else None
            raise AssertionError(f"{exc}; it was last seen {t and (t.state, t.attempt, t.provider_id, dict(t.raw))}")

    def script(self, name: str, text: str) -> str:
        path = self.workdir / name
        path.write_text("#!/bin/sh\n" + text)
        path.chmod(0o755)
        return str(path)

    def sbatch(self, *args: str) -> str:
        """Submit a job outside jobplane (e.g. one that takes the node's CPUs); cancelled at the end."""
        job_id = _run(["sbatch", "--parsable", f"--chdir={self.workdir}", *args]).stdout.strip().split(";")[0]
        self.own_jobs.append(job_id)
        return job_id

    def cancel_leftovers(self) -> None:
        """This test's jobs still in Slurm (by their working directory: other test runs may
        share the cluster)."""
        listed = _run(["squeue", "--noheader", "-o", "%i|%Z"], check=False).stdout.splitlines()
        ours = [line.split("|")[0] for line in listed
                if Path(line.partition("|")[2]).is_relative_to(self.workdir)]
        if ours or self.own_jobs:
            _run(["scancel", *ours, *self.own_jobs], check=False)


def sacct_states(job_ids) -> dict[str, str]:
    """Job id -> its state as Slurm's accounting recorded it."""
    out = _run(["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={','.join(job_ids)}",
                "--format=JobIDRaw,State"]).stdout
    return {line.split("|")[0]: line.split("|")[1].split(" ")[0] for line in out.splitlines() if "|" in line}


def squeue_states(job_ids) -> dict[str, str]:
    """Job id -> its state as slurmctld sees it now (sacct may lag behind by a few seconds)."""
    out = _run(["squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}", "-o", "%i|%T"]).stdout
    return dict(line.split("|") for line in out.splitlines() if "|" in line)


def accounted(job_ids, states) -> dict[str, str]:
    """sacct's states of these jobs once it has recorded them all in one of `states`."""
    def recorded():
        found = sacct_states(job_ids)
        return found if all(found.get(j) in states for j in job_ids) else None
    return wait_until(recorded, 30, f"sacct to record jobs {job_ids} as {states}", interval=0.5)


def _jobs_asked(args: str) -> list[str]:
    """The job ids a logged squeue or sacct call asked about (its --jobs=A,B,...)."""
    jobs = next(arg for arg in args.split() if arg.startswith("--jobs="))
    return jobs.removeprefix("--jobs=").split(",")


def test_a_job_that_succeeds_and_one_that_exits_3(slurm):
    fails = slurm.script("fails.sh", "echo working; echo 'disk quota exceeded' >&2; exit 3\n")
    job = slurm.submit({"name": "ok", "slurm": {"wrap": "echo hello from $SLURM_JOB_ID; echo warn >&2"}},
                       {"name": "fails", "environment": "slurm", "slurm": {"script": fails, "time_limit": "5"}})
    done = slurm.client.wait_job(job.id, timeout=90)
    ok, bad = slurm.task(job.id, "ok"), slurm.task(job.id, "fails")

    assert (ok.status, ok.environment, ok.raw["State"], ok.raw["ExitCode"]) == (SUCCESS, "slurm", "COMPLETED", "0:0")
    assert ok.stdout_tail == f"hello from {ok.raw['JobId']}\n" and ok.stderr_tail == "warn\n"
    assert ok.raw["Partition"] == "debug" and ok.raw["NodeList"]
    assert (bad.status, bad.exit_code, bad.raw["State"], bad.raw["ExitCode"]) == (FAILURE, 3, "FAILED", "3:0")
    assert (bad.stdout_tail, bad.stderr_tail) == ("working\n", "disk quota exceeded\n")
    assert done.status == FAILURE
    # Slurm's own record agrees, and each task was submitted once.
    assert accounted([ok.raw["JobId"], bad.raw["JobId"]], {"COMPLETED", "FAILED"}) == {
        ok.raw["JobId"]: "COMPLETED", bad.raw["JobId"]: "FAILED"}
    assert len(slurm.calls.calls("sbatch")) == 2


def test_a_job_past_its_time_limit_fails_with_slurms_reason(slurm):
    job = slurm.submit({"name": "slow", "slurm": {"wrap": "echo started; sleep 600", "time_limit": "1"}})
    task = slurm.wait_task(job.id, "slow", lambda t: t.state in DONE, "to end", timeout=180)

    assert (task.status, task.raw["State"]) == (FAILURE, "TIMEOUT")
    assert "TIMEOUT" in task.reason and "TIMEOUT" in task.error
    assert task.stdout_tail == "started\n"
    assert "DUE TO TIME LIMIT" in task.stderr_tail  # slurmstepd's own words
    assert accounted([task.raw["JobId"]], {"TIMEOUT"})


def test_a_job_cancelled_from_jobplane_is_scancelled(slurm):
    job = slurm.submit({"name": "long", "slurm": {"wrap": "sleep 600"}})
    running = slurm.wait_task(job.id, "long", lambda t: t.raw.get("State") == "RUNNING", "to run in Slurm")
    assert running.status == RUNNING

    slurm.client.cancel_job(job.id)
    # The agent reports the attempt stopped once Slurm shows the job ended.
    task = slurm.wait_task(job.id, "long", lambda t: t.attempts[-1].raw.get("state") == "cancelled",
                           "to be reported cancelled")

    job_id = running.raw["JobId"]
    assert [args for _, args in slurm.calls.calls("scancel")] == [job_id]
    assert accounted([job_id], {"CANCELLED"}) == {job_id: "CANCELLED"}
    assert (task.state, task.status, task.attempts[-1].raw["State"]) == (7, CANCEL, "CANCELLED")


def test_a_held_job_is_on_hold_and_runs_once_released(slurm):
    blocker = slurm.sbatch("--cpus-per-task=1", "--wrap=sleep 600")  # takes one of the node's two CPUs
    wait_until(lambda: squeue_states([blocker]).get(blocker) == "RUNNING", 30, "the blocker to run", interval=0.3)
    job = slurm.submit({"name": "big", "slurm": {"wrap": "sleep 600", "cpus": 2}})
    waiting = slurm.wait_task(job.id, "big", lambda t: t.raw.get("Reason") == "Resources", "to wait for resources")
    assert (waiting.status, waiting.raw["Reason"]) == (WAITING, "Resources")

    job_id = waiting.raw["JobId"]
    _run(["scontrol", "hold", job_id])
    held = slurm.wait_task(job.id, "big", lambda t: t.status == ON_HOLD, "to be ON_HOLD")
    assert (held.raw["State"], held.raw["Reason"]) == ("PENDING", "JobHeldAdmin")
    with closing(slurm.client.watch(job.id, timeout=10)) as events:  # and the event stream said so
        event = next(e for e in events if e.environment == "slurm" and e.status == ON_HOLD)
    assert (event.raw_status, event.raw["Reason"]) == ("PENDING", "JobHeldAdmin")

    _run(["scancel", blocker])
    _run(["scontrol", "release", job_id])
    released = slurm.wait_task(job.id, "big", lambda t: t.status == RUNNING, "to run once released")
    assert released.raw["State"] == "RUNNING"
    slurm.client.cancel_job(job.id)


def test_an_array_of_4_is_four_tasks(slurm):
    job = slurm.submit({"name": "sweep", "slurm": {"wrap": "echo element $SLURM_ARRAY_TASK_ID", "array": "1-4"}})
    slurm.client.wait_job(job.id, timeout=90)
    tasks = {t.name: t for t in slurm.client.list_tasks(job.id)}

    assert sorted(tasks) == ["sweep[1]", "sweep[2]", "sweep[3]", "sweep[4]"]
    for index in range(1, 5):
        task = tasks[f"sweep[{index}]"]
        assert (task.status, task.raw["ArrayTaskId"]) == (SUCCESS, str(index))
        assert task.stdout_tail == f"element {index}\n"
    job_ids = [t.raw["JobId"] for t in tasks.values()]
    assert accounted(job_ids, {"COMPLETED"}) == dict.fromkeys(job_ids, "COMPLETED")


def test_fifty_jobs_are_followed_with_one_squeue_per_poll(slurm):
    job = slurm.submit({"name": "many", "slurm": {"wrap": "true", "array": "1-50"}})
    done = slurm.client.wait_job(job.id, timeout=240)
    assert done.status == SUCCESS

    calls = slurm.calls
    assert len(calls.calls("sbatch")) == 50
    squeues, saccts = calls.calls("squeue"), calls.calls("sacct")
    # Batched: each squeue asks about every job followed at that moment, not one job ...
    assert max(len(_jobs_asked(args)) for _, args in squeues) >= 40
    # ... and the agent asks once per poll interval, whatever the number of jobs.
    stamps = [stamp for stamp, _ in squeues]
    assert min(later - earlier for earlier, later in zip(stamps, stamps[1:])) >= POLL * 0.9
    assert len(saccts) <= len(squeues)  # sacct only for the jobs squeue no longer lists


@pytest.mark.server_args("--reconnect-grace", "10")  # time to start a new agent process on a busy machine
def test_a_killed_agent_adopts_its_slurm_jobs_without_submitting_them_again(slurm):
    job = slurm.submit({"name": "a", "slurm": {"wrap": "sleep 8; echo finished a"}},
                       {"name": "b", "slurm": {"wrap": "sleep 8; echo finished b"}})
    for name in ("a", "b"):
        slurm.wait_task(job.id, name, lambda t: t.raw.get("State") == "RUNNING", "to run in Slurm")
    job_ids = sorted(slurm.task(job.id, name).raw["JobId"] for name in ("a", "b"))

    slurm.cluster.agents["login-1"].kill()  # kill -9: no goodbye, no scancel
    assert squeue_states(job_ids) == dict.fromkeys(job_ids, "RUNNING")  # they run on without it
    slurm.start_agent()
    done = slurm.client.wait_job(job.id, timeout=90)

    assert done.status == SUCCESS
    tasks = {name: slurm.task(job.id, name) for name in ("a", "b")}
    assert sorted(t.raw["JobId"] for t in tasks.values()) == job_ids
    assert [t.stdout_tail for t in tasks.values()] == ["finished a\n", "finished b\n"]
    assert [t.attempt for t in tasks.values()] == [1, 1]
    assert len(slurm.calls.calls("sbatch")) == 2  # the new agent process submitted nothing
    names = _run(["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={','.join(job_ids)}",
                  "--format=JobName"]).stdout.split()
    assert sorted(names) == ["a", "b"]


# A lost, drained or late agent's Slurm job is adopted by another agent from its recorded id.

@pytest.fixture
def held_job(slurm):
    """A Slurm job that says it ran (its id into `ran`), then runs until the test says `go`."""
    ran, go = slurm.workdir / "ran", slurm.workdir / "go"
    job = slurm.submit({"name": "sim", "slurm": {
        "wrap": f"echo $SLURM_JOB_ID >> {ran}; while [ ! -e {go} ]; do sleep 0.2; done; echo finished"}})
    task = slurm.wait_task(job.id, "sim", lambda t: t.raw.get("State") == "RUNNING", "to run in Slurm")
    assert task.provider_id == "login-1"
    slurm.start_agent("login-2")
    yield job, task.id, task.raw["JobId"]
    go.touch()


def followed_by_login_2(slurm, job) -> None:
    slurm.wait_task(job.id, "sim", lambda t: (t.attempt, t.provider_id, t.raw.get("State")) == (2, "login-2", "RUNNING"),
                    "to be followed by login-2 as attempt 2")


def finishes_once(slurm, job, job_id: str) -> None:
    """The one Slurm job ends as it should, the task succeeds as attempt 2 on login-2 and
    nothing was submitted or cancelled a second time."""
    assert squeue_states([job_id]) == {job_id: "RUNNING"}, "never cancelled"
    (slurm.workdir / "go").touch()
    done = slurm.client.wait_job(job.id, timeout=90)
    task = slurm.task(job.id, "sim")
    assert done.status == SUCCESS
    assert (task.attempt, [a.provider_id for a in task.attempts]) == (2, ["login-1", "login-2"])
    assert (task.raw["JobId"], task.raw["State"], task.stdout_tail) == (job_id, "COMPLETED", "finished\n")
    assert len(slurm.calls.calls("sbatch")) == 1, "submitted once"
    assert slurm.calls.calls("scancel") == [], "never scancelled"
    assert (slurm.workdir / "ran").read_text().split() == [job_id], "the job ran once"
    assert accounted([job_id], {"COMPLETED"}) == {job_id: "COMPLETED"}


def test_a_lost_agents_slurm_job_is_adopted_by_another_agent_and_not_submitted_again(slurm, held_job):
    job, task_id, job_id = held_job
    slurm.cluster.agents["login-1"].kill()  # kill -9, and it does not come back
    followed_by_login_2(slurm, job)
    finishes_once(slurm, job, job_id)


def test_a_drained_agents_slurm_job_is_adopted_without_scancel(slurm, held_job):
    job, task_id, job_id = held_job
    slurm.client.drain_provider("login-1")
    followed_by_login_2(slurm, job)
    record = slurm.attempt_dir("login-1", task_id, 1)
    wait_until(lambda: not record.exists(), 30, "login-1 to let go of attempt 1", interval=0.2)
    finishes_once(slurm, job, job_id)


@pytest.mark.server_args("--reconnect-grace", "2")
def test_an_agent_back_after_its_slurm_job_was_adopted_drops_it_without_scancel(slurm, held_job):
    job, task_id, job_id = held_job
    slurm.cluster.agents["login-1"].kill()
    followed_by_login_2(slurm, job)
    record = slurm.attempt_dir("login-1", task_id, 1)
    assert record.exists(), "login-1's record of the job, for a new process to adopt"
    slurm.start_agent("login-1")  # the same name and state directory
    # It adopts attempt 1 from its record, is told login-2 follows the job now, and lets go.
    wait_until(lambda: not record.exists(), 30, "login-1 to drop its superseded attempt", interval=0.2)
    finishes_once(slurm, job, job_id)
