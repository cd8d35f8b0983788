"""How the keeper runs commands: spawned by the keeper itself (no process of ours in between),
and each attempt's strays told apart from the others' by the keeper, under both mechanisms.

The process table is the judge: who a command's parent is, and which processes are alive as
each attempt ends while another still runs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from support import pid_alive, wait_until
from test_agent_containment import containment  # noqa: F401  (the fixture: each containment mode)

from jobplane.agent import procs
from jobplane.agent.commands import CommandSpec, run_command
from jobplane.agent.keeper_attempts import read_state
from jobplane.agent.keeper_client import Keeper
from jobplane.agent.results import Outcome, Started, StopRequest

# Once MAKE exists, leaves a stray: a double fork whose grandchild starts a session of its own
# (it is reparented to the keeper's side, outside the attempt's session), notes its pid, and
# sleeps; then the command waits for GO and exits.
STRAY = r"""
import os, sys, time
stray, make, go = sys.argv[1:4]
while not os.path.exists(make):
    time.sleep(0.02)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(stray + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(stray + ".tmp", stray)
        time.sleep(1000)
    os._exit(0)
os.wait()
while not os.path.exists(go):
    time.sleep(0.02)
"""


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_the_command_is_the_keepers_own_child(tmp_path, containment):
    # No wrapper process in between: the pid the agent is given is the command's, its parent
    # the keeper, and the command leads its own session.
    seen: dict[str, object] = {}

    async def main() -> object:
        keeper = Keeper(tmp_path / "state", containment=containment)
        await keeper.open()
        go = tmp_path / "go"

        def look(started: Started) -> None:
            pid = started.pgid
            seen.update(exe=os.readlink(f"/proc/{pid}/exe"), parent=_comm(_parent(pid)),
                        session=os.getsid(pid) == pid, keeper=_parent(pid) == keeper.pid)
            go.touch()

        try:
            spec = CommandSpec(["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.02; done"],
                               attempt_dir=str(tmp_path / "state" / "t.1"))
            return await run_command(spec, on_start=look, keeper=keeper)
        finally:
            await keeper.close()

    result = asyncio.run(main())
    assert result.outcome == Outcome.SUCCEEDED
    assert seen == {"exe": os.path.realpath(shutil.which("sh")), "parent": "jobplane-keeper",
                    "session": True, "keeper": True}


def test_a_stray_goes_with_its_own_attempt_not_with_one_that_ends_before(tmp_path, containment):
    # Two attempts each leave a stray outside their session, both after the second started;
    # the second ends first: its stray dies with it, the first's lives on until the first ends.
    script = tmp_path / "stray.py"
    script.write_text(STRAY)

    async def main() -> dict[str, bool]:
        keeper = Keeper(tmp_path / "state", containment=containment)
        await keeper.open()
        alive: dict[str, bool] = {}

        def attempt(name: str) -> asyncio.Task:
            spec = CommandSpec([sys.executable, str(script), str(tmp_path / f"{name}.stray"),
                                str(tmp_path / f"{name}.make"), str(tmp_path / f"{name}.go")],
                               attempt_dir=str(tmp_path / "state" / name))
            return asyncio.create_task(run_command(spec, keeper=keeper))

        def stray(name: str) -> int:
            path = tmp_path / f"{name}.stray"
            return int(wait_until(lambda: path.exists() and path.read_text(), 30, f"{name}'s stray"))

        try:
            first, second = attempt("first"), attempt("second")
            for name in ("first", "second"):
                await asyncio.to_thread(wait_until, (tmp_path / "state" / name / "pid").exists,
                                        30, f"the {name} attempt to start")
            (tmp_path / "first.make").touch()
            first_stray = await asyncio.to_thread(stray, "first")
            (tmp_path / "second.make").touch()
            second_stray = await asyncio.to_thread(stray, "second")
            (tmp_path / "second.go").touch()
            assert (await second).outcome == Outcome.SUCCEEDED
            alive["second's stray after the second ended"] = pid_alive(second_stray)
            alive["first's stray after the second ended"] = pid_alive(first_stray)
            alive["first running after the second ended"] = not first.done()
            (tmp_path / "first.go").touch()
            assert (await first).outcome == Outcome.SUCCEEDED
            alive["first's stray after the first ended"] = pid_alive(first_stray)
            return alive
        finally:
            await keeper.close()

    assert asyncio.run(main()) == {"second's stray after the second ended": False,
                                   "first's stray after the second ended": True,
                                   "first running after the second ended": True,
                                   "first's stray after the first ended": False}


# As the keeper reads the process table in subreaper mode: a subreaper that reads it, sees a
# grandchild under its child, then sees it again once the child died (reparented to it).
REPARENTED = r"""
import os, sys, time
from jobplane.agent import procs
procs.become_subreaper()
table = procs.Table(os.getpid(), period=3600)  # never a whole read again: only what may change
go_r, go_w = os.pipe()
child = os.fork()
if child == 0:
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    os.read(go_r, 1)
    os._exit(0)
deadline = time.monotonic() + 30
while not [p for p, r in procs.table().items() if r.ppid == child] and time.monotonic() < deadline:
    time.sleep(0.01)
grandchild = [p for p, r in table.read().items() if r.ppid == child][0]
os.write(go_w, b"x")
os.waitpid(child, 0)
while procs.table()[grandchild].ppid != os.getpid() and time.monotonic() < deadline:
    time.sleep(0.01)
print(table.read()[grandchild].ppid == os.getpid(), flush=True)
os.kill(grandchild, 9)
"""


def test_the_keepers_table_sees_a_process_reparented_since_its_last_read():
    found = subprocess.run([sys.executable, "-c", REPARENTED], capture_output=True, text=True,
                           timeout=60, check=True)
    assert found.stdout.strip() == "True", found.stderr


BOUNDED = r"""
import os, sys, time
from pathlib import Path
from jobplane.agent import keeper_guard
keeper_guard._KEPT_STATUSES = 3
guard = keeper_guard._Guard(Path(sys.argv[1]), keeper=1)  # (pid 1: never a child of ours)
reaped = []
for code in range(5):
    pid = os.fork()
    if pid == 0:
        os._exit(code)
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        time.sleep(0.01)
    guard._reap()
    reaped.append((pid, code))
print(list(guard.statuses.items()) == reaped[-3:], guard.statuses, reaped)
"""


def test_the_guard_keeps_the_exit_statuses_of_the_latest_processes_it_reaped_only(tmp_path):
    kept = subprocess.run([sys.executable, "-c", BOUNDED, str(tmp_path)], capture_output=True, text=True,
                          timeout=60, check=True)
    assert kept.stdout.startswith("True"), kept.stdout + kept.stderr


def test_a_suspend_sends_sigstop_again_until_the_process_table_shows_the_process_stopped():
    from jobplane.agent import procs

    running = subprocess.Popen(["sleep", "300"])
    try:
        # Never sent SIGSTOP before (as if the first stop had been lost): the check sends it.
        assert procs.unstopped([running.pid], time.monotonic() + 5) == []
        assert Path(f"/proc/{running.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
        zombie = subprocess.Popen(["true"])
        wait_until(lambda: Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
                   10, "the unreaped child to be a zombie")
        assert procs.unstopped([zombie.pid, 2**22 + 1], time.monotonic() + 5) == []  # a zombie, a gone pid
        zombie.wait()
    finally:
        running.kill()
        running.wait()


def test_a_command_gets_its_whole_environment_though_only_its_difference_is_sent(tmp_path):
    # The keeper holds the agent's environment (from the hello); a start sends what differs:
    # a variable changed, one added, one of the agent's left out, and one set to "".
    base = {"PATH": os.defpath, "KEPT": "k", "CHANGED": "old", "DROPPED": "d", "EMPTIED": "e"}
    env = {"PATH": os.defpath, "KEPT": "k", "CHANGED": "new", "ADDED": "a", "EMPTIED": ""}

    async def main():
        keeper = Keeper(tmp_path / "state", env=base)
        await keeper.open()
        try:
            spec = CommandSpec(["/usr/bin/env", "-0"], env=env, attempt_dir=str(tmp_path / "state" / "t.1"))
            return await run_command(spec, keeper=keeper)
        finally:
            await keeper.close()

    result = asyncio.run(main())
    seen = dict(item.split("=", 1) for item in result.stdout_tail.split("\0") if item)
    assert seen == env


def test_the_end_of_an_attempt_is_told_however_soon_it_ends(tmp_path):
    # An attempt may end before its starter looks (its `ended` came in the same read as its
    # `started`): the news of its end is still there to await, so no file need be read.
    async def main():
        keeper = Keeper(tmp_path / "state")
        await keeper.open()
        try:
            directory = tmp_path / "state" / "t.1"
            pid, _, ended = await keeper.start({"dir": str(directory), "argv": ["/bin/sh", "-c", "exit 3"],
                                                "env": {"PATH": os.defpath}})
            while not (directory / "pid").exists() or "exit" not in (directory / "pid").read_text():
                await asyncio.sleep(0.01)
            assert not await keeper.suspend(pid)  # a round trip after the keeper's `ended`
            return await ended
        finally:
            await keeper.close()

    news = asyncio.run(main())
    assert news["status"] == 3 and not news["lost"]


def test_the_start_time_a_command_is_recorded_with_is_the_one_proc_shows(tmp_path):
    """The keeper tells a command's start time from the clock it read around the spawn (not
    from /proc, which waits while the command is still in its exec): what the attempt's state
    file says, which an agent process started after a crash checks a pid against, must be what
    /proc shows, or that agent would take a running command for one that ended."""
    recorded: list[tuple[int, int | None]] = []

    async def main() -> None:
        keeper = Keeper(tmp_path / "state", containment="subreaper")
        await keeper.open()
        try:
            for n in range(20):
                directory = tmp_path / "state" / f"t.{n}"
                go = tmp_path / f"go{n}"

                def look(started: Started, directory=directory, go=go) -> None:
                    fields, _ = read_state(directory)
                    recorded.append((int(fields[2]), procs.start_time(started.pgid)))
                    go.touch()

                spec = CommandSpec(["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.01; done"],
                                   attempt_dir=str(directory))
                result = await run_command(spec, on_start=look, keeper=keeper)
                assert result.outcome == Outcome.SUCCEEDED
        finally:
            await keeper.close()

    asyncio.run(main())
    assert len(recorded) == 20
    assert all(state == shown for state, shown in recorded), recorded


def test_a_start_time_is_read_from_proc_when_a_clock_tick_ends_during_the_spawn(monkeypatch):
    pid = os.posix_spawn("/bin/true", ["/bin/true"], {})
    try:
        tick = 10**9 // os.sysconf("SC_CLK_TCK")
        before = procs.boot_ns()
        assert procs.started_between(pid, before - tick, before) == procs.start_time(pid)
        monkeypatch.setattr(procs, "start_time", lambda _: 12345)
        assert procs.started_between(pid, tick * 7, tick * 8) == 12345, "a tick ended between: read"
    finally:
        os.waitpid(pid, 0)


def test_a_kernel_whose_start_times_do_not_follow_the_clock_has_them_read_from_proc(monkeypatch):
    monkeypatch.setattr(procs, "_checked", 0)
    monkeypatch.setattr(procs, "_TOLD", True)
    monkeypatch.setattr(procs, "start_time", lambda _: 999)  # never the clock's tick
    tick = 10**9 // os.sysconf("SC_CLK_TCK")
    assert procs.started_between(1, tick * 5, tick * 5 + 1) == 999
    assert procs._TOLD is False, "the clock is not trusted again"
    assert procs.started_between(1, tick * 6, tick * 6 + 1) == 999


def test_a_suspended_shell_stops_even_when_caught_starting_a_command(tmp_path, containment):
    """A shell starts each command with vfork: it waits (D, not T) until the child has exec'd.
    A suspend that stops the child before its exec left the shell in D for good, never T (a
    console test saw it: 'the task's process stopped in place' timed out). The keeper lets
    such a child exec and stops it after: every process of the attempt shows T, each time."""
    def state(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return "gone"

    seen: list[dict[int, str]] = []

    async def main() -> None:
        keeper = Keeper(tmp_path / "state", containment=containment)
        await keeper.open()
        stop = asyncio.get_running_loop().create_future()
        shell = asyncio.get_running_loop().create_future()
        spec = CommandSpec(["sh", "-c", "while :; do /bin/true; done"], attempt_dir=str(tmp_path / "state" / "t.1"))
        running = asyncio.ensure_future(run_command(spec, keeper=keeper, stop=stop,
                                                    on_start=lambda s: shell.set_result(s.pgid)))
        try:
            pid = await asyncio.wait_for(shell, 10)
            for _ in range(15):
                await asyncio.sleep(0.02)  # the shell runs on, starting command after command
                assert await keeper.suspend(pid)
                seen.append({p: state(p) for p in _session(pid)})
                assert await keeper.suspend(pid, resume=True)
        finally:
            stop.set_result(StopRequest.cancel("done"))
            await running
            await keeper.close()

    asyncio.run(main())
    assert len(seen) == 15
    assert all(s and set(s.values()) <= {"T", "Z", "gone"} for s in seen), seen


def _session(sid: int) -> list[int]:
    """The processes of session `sid` (an attempt's command leads its own)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            if int(fields[3]) == sid:
                found.append(int(entry))
    return found
