"""The keeper's two ways to spawn a command give it the same start: agent/_spawn.c (built at
install time where a C compiler is found; the child joins its cgroup and cwd itself) and
os.posix_spawn (where it was not built, or with JOBPLANE_KEEPER_SPAWN=posix_spawn; the keeper
steps into both around the call). Judged from the command's own view of itself (/proc), and
from the keeper's cgroup, which the C spawn never moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from support import pid_alive, wait_until
from test_agent_containment import containment  # noqa: F401  (the fixture: each containment mode)

from jobplane.agent import cgroups
from jobplane.agent.commands import CommandSpec, run_command
from jobplane.agent.keeper_attempts import SPAWN_ENV
from jobplane.agent.keeper_client import Keeper
from jobplane.agent.results import Outcome, Started

try:
    from jobplane.agent import _spawn  # noqa: F401
    BUILT = True
except ImportError:
    BUILT = False

# What the command reports of itself: its pid, session and group; its working directory and
# cgroup; where each of its file descriptors leads; then, exec'd in its place (no child of the
# shell's running, which it would block signals for), its blocked and ignored signals.
LOOK = r"""
echo "ids $$ $(cut -d' ' -f6,5 /proc/$$/stat)"
echo "cwd $(readlink /proc/$$/cwd)"
echo "cgroup $(grep '^0::' /proc/$$/cgroup | cut -c4-)"
for fd in /proc/$$/fd/*; do echo "fd ${fd##*/} $(readlink "$fd")"; done
echo "env $MARK"
exec grep -E '^Sig(Blk|Ign)' /proc/self/status
"""
# glibc's posix_spawn leaves its own two signals (32 and 33, which no program may use) ignored.
GLIBC_INTERNAL = (1 << 31) | (1 << 32)


@pytest.fixture(params=["native", "posix_spawn"])
def spawn_mode(request, monkeypatch) -> str:
    """Each way to spawn, for the keepers started in the test (they read it as they start)."""
    if request.param == "native" and not BUILT:
        if os.environ.get("CI") == "true":
            pytest.fail("agent/_spawn.c was not built: CI installs a C compiler and Python's headers")
        pytest.skip("agent/_spawn.c was not built here (no C compiler at install time)")
    monkeypatch.setenv(SPAWN_ENV, request.param)
    return request.param


def needs_cgroups() -> cgroups.Containment:
    """The machine's cgroup containment; skips the test where there is none."""
    found = cgroups.detect()
    if found.kind != cgroups.CGROUP:
        pytest.skip("cgroup containment is not available on this machine")
    return found


@contextlib.asynccontextmanager
async def cgroup_keeper(state: Path):
    """A keeper of `state` that contains its attempts in cgroups, open for the block."""
    keeper = Keeper(state, containment=cgroups.CGROUP)
    await keeper.open()
    try:
        yield keeper
    finally:
        await keeper.close()


async def sh(keeper: Keeper, directory: Path, script: str) -> tuple:
    """Start `script` under /bin/sh as the attempt in `directory`: keeper.start's answer."""
    return await keeper.start({"dir": str(directory), "argv": ["/bin/sh", "-c", script], "env": {"PATH": os.defpath}})


def look(tmp_path: Path, containment: str) -> tuple[dict[str, list[str]], Started, str, str]:
    """Run LOOK in a working directory of its own; what it printed, by its lines' first word,
    how it started, and the keeper's cgroup before and after."""
    cwd = tmp_path / "work dir"
    cwd.mkdir()
    seen: list[Started] = []

    async def main():
        keeper = Keeper(tmp_path / "state", containment=containment)
        await keeper.open()
        before = _cgroup(keeper.pid)
        try:
            spec = CommandSpec(["/bin/sh", "-c", LOOK], env={"PATH": os.defpath, "MARK": "m é"},
                               cwd=str(cwd), attempt_dir=str(tmp_path / "state" / "t.1"))
            result = await run_command(spec, keeper=keeper, on_start=seen.append)
            return result, before, _cgroup(keeper.pid)
        finally:
            await keeper.close()

    result, before, after = asyncio.run(main())
    assert result.outcome == Outcome.SUCCEEDED, result
    lines: dict[str, list[str]] = {}
    for line in result.stdout_tail.splitlines():
        word, rest = (line.split(None, 1) + [""])[:2]
        lines.setdefault(word.rstrip(":"), []).append(rest.strip())
    return lines, seen[0], before, after


def _cgroup(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def test_ci_builds_the_c_spawn():
    if os.environ.get("CI") != "true" and not BUILT:
        pytest.skip("agent/_spawn.c was not built here (no C compiler at install time)")
    from jobplane.agent import _spawn

    assert callable(_spawn.spawn)


def test_a_command_starts_alike_either_way(tmp_path, spawn_mode, containment):
    lines, started, keeper_before, keeper_after = look(tmp_path, containment)
    said = (tmp_path / "state" / "keeper.log").read_text()  # the keeper says which spawn it uses
    assert ("spawning commands with agent/_spawn.c" in said) == (spawn_mode == "native")
    assert ("spawning commands with os.posix_spawn" in said) == (spawn_mode == "posix_spawn")
    pid, session, group = (int(x) for x in lines["ids"][0].split())
    assert pid == started.pgid and session == pid and group == pid  # a session of its own
    assert lines["cwd"] == [str(tmp_path / "work dir")]
    # Signals as a program expects them: none blocked, none ignored (the keeper ignores SIGINT,
    # and Python SIGPIPE and SIGXFSZ; the shell's grep, exec'd in its place, shows them).
    assert int(lines["SigBlk"][0], 16) == 0 and int(lines["SigIgn"][0], 16) & ~GLIBC_INTERNAL == 0
    assert lines["env"] == ["m é"]
    fds = dict(line.split(" ", 1) for line in lines["fd"])
    assert fds["0"] == "/dev/null" and fds["1"].startswith("pipe:") and fds["2"].startswith("pipe:")
    # Nothing of the keeper's leaked into it: every other descriptor is the shell's own (the
    # pipe of its `for` loop's command substitution, or the directory listing it reads).
    leaked = {fd: target for fd, target in fds.items() if fd not in "012"
              and not target.startswith(("pipe:", "/proc/"))}
    assert leaked == {}
    assert keeper_after == keeper_before  # the keeper is back where it was (never moved, in C)
    if containment == cgroups.CGROUP:  # born in a cgroup of its own, below the keeper's
        assert lines["cgroup"][0] != keeper_before
        assert lines["cgroup"][0].startswith(keeper_before.rsplit("/", 1)[0])


def test_a_start_that_fails_says_where_either_way(tmp_path, spawn_mode, containment):
    async def main():
        keeper = Keeper(tmp_path / "state", containment=containment)
        await keeper.open()
        errors = []
        try:
            for n, (argv, cwd, env) in enumerate([(["/nonexistent/program"], "", {}),
                                                  (["/bin/true"], str(tmp_path / "gone"), {}),
                                                  (["/bin/true"], "", {"BAD": "a\0b"}),
                                                  ([], "", {})]):  # refused as malformed, the keeper on
                try:
                    await keeper.start({"dir": str(tmp_path / "state" / f"t.{n}"), "argv": argv,
                                        "env": {"PATH": os.defpath, **env}, "cwd": cwd})
                except OSError as exc:
                    errors.append((exc.errno, exc.filename))
            # The keeper goes on: the next start works.
            pid, _, ended = await keeper.start({"dir": str(tmp_path / "state" / "t.9"),
                                                "argv": ["/bin/sh", "-c", "exit 4"],
                                                "env": {"PATH": os.defpath}})
            return errors, (await ended)["status"]
        finally:
            await keeper.close()

    errors, status = asyncio.run(main())
    assert errors == [(errno.ENOENT, None), (errno.ENOENT, str(tmp_path / "gone")), (errno.EINVAL, None), (0, None)]
    assert status == 4


def test_starts_read_at_once_are_each_answered_for_themselves_either_way(tmp_path, spawn_mode, containment):
    """Start requests the keeper reads at once (asked in one turn of the agent's loop, they go
    in one write) are readied together, then spawned, then answered: a refused one among them
    (malformed, its program missing, its cwd gone) refuses only itself, and each of the others
    runs its own command, told by its own pid."""
    ran = tmp_path / "ran"
    ran.mkdir()

    async def main():
        keeper = Keeper(tmp_path / "state", containment=containment)
        await keeper.open()
        requests = [(["/bin/sh", "-c", f"echo $$ > {ran}/0"], ""), (["/nonexistent/program"], ""),
                    ([], ""), (["/bin/sh", "-c", f"echo $$ > {ran}/3"], ""),
                    (["/bin/true"], str(tmp_path / "gone")), (["/bin/sh", "-c", f"echo $$ > {ran}/5"], "")]
        try:
            answers = await asyncio.gather(*(
                keeper.start({"dir": str(tmp_path / "state" / f"t.{n}"), "argv": argv, "cwd": cwd,
                              "env": {"PATH": os.defpath}}) for n, (argv, cwd) in enumerate(requests)),
                return_exceptions=True)
            ends = [(await answer[2])["status"] if isinstance(answer, tuple) else None for answer in answers]
            return answers, ends
        finally:
            await keeper.close()

    answers, ends = asyncio.run(main())
    assert [type(a).__name__ if isinstance(a, OSError) else "started" for a in answers] == \
        ["started", "FileNotFoundError", "OSError", "started", "FileNotFoundError", "started"]
    assert answers[2].errno == 0 and "malformed start request" in answers[2].strerror
    assert answers[4].filename == str(tmp_path / "gone")
    assert ends == [0, None, None, 0, None, 0]
    assert {int((ran / str(n)).read_text()): n for n in (0, 3, 5)} == {answers[n][0]: n for n in (0, 3, 5)}


def test_a_start_of_the_wrong_types_refuses_only_itself_either_way(tmp_path, spawn_mode, containment):
    """A start whose fields are not of their types (a number in argv or in the environment,
    where an agent sends strings) is refused as malformed, and the starts read with it run: the
    keeper goes on. (Such a start failed in the spawn, in the middle of the starts read at once,
    and the keeper ended with every attempt it held.)"""
    ran = tmp_path / "ran"
    ran.mkdir()

    async def main():
        keeper = Keeper(tmp_path / "state", containment=containment)
        await keeper.open()
        env = {"PATH": os.defpath}
        requests = [{"argv": ["/bin/sh", "-c", f"echo $$ > {ran}/0"], "env": env},
                    {"argv": ["/bin/true", 1], "env": env},
                    {"argv": ["/bin/true"], "env": {**env, "N": 1}},
                    {"argv": ["/bin/sh", "-c", f"echo $$ > {ran}/3"], "env": env},
                    {"argv": ["/bin/true"], "env": env, "cwd": 0}]
        try:
            answers = await asyncio.gather(*(
                keeper.start({"dir": str(tmp_path / "state" / f"t.{n}"), **request})
                for n, request in enumerate(requests)), return_exceptions=True)
            ends = [(await answer[2])["status"] if isinstance(answer, tuple) else None for answer in answers]
            _, _, ended = await keeper.start({"dir": str(tmp_path / "state" / "t.9"), "env": env,
                                              "argv": ["/bin/sh", "-c", "exit 4"]})
            return answers, ends, (await ended)["status"]
        finally:
            await keeper.close()

    answers, ends, last = asyncio.run(main())
    refused = {n: a.strerror for n, a in enumerate(answers) if isinstance(a, OSError) and a.errno == 0}
    assert sorted(refused) == [1, 2, 4], answers
    assert all("malformed start request" in why for why in refused.values())
    assert ends == [0, None, None, 0, None]
    assert {int((ran / str(n)).read_text()): n for n in (0, 3)} == {answers[n][0]: n for n in (0, 3)}
    assert last == 4  # the same keeper goes on


def test_a_working_directory_with_a_nul_is_refused_either_way(tmp_path, spawn_mode, containment):
    """Not cut short at the NUL (the C spawn ran the command in the directory before it)."""
    marker = tmp_path / "ran"

    async def main():
        keeper = Keeper(tmp_path / "state", containment=containment)
        await keeper.open()
        try:
            _, _, ended = await keeper.start({"dir": str(tmp_path / "state" / "t.1"),
                                              "argv": ["/bin/sh", "-c", f"touch {marker}"],
                                              "env": {"PATH": os.defpath}, "cwd": f"{tmp_path}\0/elsewhere"})
            await ended  # (it ran: its file is there to see)
        except OSError as exc:
            return exc.errno
        finally:
            await keeper.close()
        return None

    assert asyncio.run(main()) == errno.EINVAL
    assert not marker.exists()


def test_a_spare_cgroup_removed_from_outside_is_not_used_again_either_way(tmp_path, spawn_mode):
    """The keeper keeps an ended attempt's cgroup for the next; one removed meanwhile (by an
    admin, a cleaner) is let go by the start that took it, which runs in another: every start
    runs (they were all refused before, the removed cgroup going back to the spares each time;
    then the one that took it was)."""
    needs_cgroups()
    seen, state = tmp_path / "cgroup", tmp_path / "state"

    async def main():
        outcomes = []
        async with cgroup_keeper(state) as keeper:
            _, _, ended = await sh(keeper, state / "t.0", f"grep ^0:: /proc/$$/cgroup > {seen}")
            await ended
            os.rmdir(f"{cgroups.cgroup2_mount()}{seen.read_text().strip()[3:]}")  # (empty: it ended)
            for n in range(1, 4):
                try:
                    _, _, ended = await sh(keeper, state / f"t.{n}", f"exit {n}")
                    outcomes.append((await ended)["status"])
                except OSError as exc:
                    outcomes.append(exc.errno)
            return outcomes

    outcomes = asyncio.run(main())
    assert outcomes == [1, 2, 3]


def test_every_spare_cgroup_removed_from_outside_at_once_still_runs_the_next_start(tmp_path, spawn_mode):
    """A sweep of empty cgroups (an admin's, a cleaner's) removes all the keeper's spares at
    once: the start that takes one, and then another for its retry, runs in a new cgroup (the
    retry took the next removed spare and the start was refused). The command's side effect
    (the file it writes) shows it ran, and where."""
    needs_cgroups()
    state = tmp_path / "state"

    async def main():
        async with cgroup_keeper(state) as keeper:
            running = []
            for n in range(3):  # at once: three cgroups, all spare once they end
                _, _, ended = await sh(keeper, state / f"t.{n}", f"grep ^0:: /proc/$$/cgroup > {tmp_path}/{n}"
                                                                  f"; while [ ! -e {tmp_path}/go ]; do sleep 0.01; done")
                running.append(ended)
            while not all((tmp_path / str(n)).exists() and (tmp_path / str(n)).read_text() for n in range(3)):
                await asyncio.sleep(0.01)  # each has joined its cgroup
            (tmp_path / "go").write_text("")
            for ended in running:
                await ended
            spares = [f"{cgroups.cgroup2_mount()}{(tmp_path / str(n)).read_text().strip()[3:]}" for n in range(3)]
            for cgroup in spares:
                os.rmdir(cgroup)  # (empty: they ended)
            _, _, ended = await sh(keeper, state / "t.3", f"grep ^0:: /proc/$$/cgroup > {tmp_path}/3")
            return (await ended)["status"], spares

    status, spares = asyncio.run(main())
    assert status == 0
    assert (tmp_path / "3").read_text().strip()[3:] not in {s.removeprefix(str(cgroups.cgroup2_mount())) for s in spares}


def test_a_command_runs_in_a_spare_cgroup_that_was_killed_either_way(tmp_path, spawn_mode):
    """An ended attempt's cgroup is the next attempt's, also once it was killed whole: by an
    admin's cgroup.kill while it was spare, or by the keeper (an attempt killed, here at the
    agent's request): the next command runs there. (clone3 kills what it makes in a cgroup
    killed once, as of Linux 6.14: each such command was killed by SIGKILL as it was born,
    before it ran.) Judged by the file each command writes, naming its cgroup."""
    needs_cgroups()
    state = tmp_path / "state"

    async def run(keeper, n: int, then: str = "") -> tuple[int, object]:
        pid, _, ended = await sh(keeper, state / f"t.{n}", f"grep ^0:: /proc/$$/cgroup > {tmp_path}/{n}{then}")
        return pid, ended

    async def main():
        async with cgroup_keeper(state) as keeper:
            _, ended = await run(keeper, 0)
            statuses = [(await ended)["status"]]
            cgroup = f"{cgroups.cgroup2_mount()}{(tmp_path / '0').read_text().strip()[3:]}"
            Path(cgroup, "cgroup.kill").write_text("1")  # an admin's, of the spare (empty)
            _, ended = await run(keeper, 1)
            statuses.append((await ended)["status"])
            pid, ended = await run(keeper, 2, "; exec sleep 30")
            while not ((tmp_path / "2").exists() and (tmp_path / "2").read_text()) and not ended.done():
                await asyncio.sleep(0.01)  # (it ran, or ended without running)
            keeper.signal(pid, kill=True)  # its cgroup is killed whole
            statuses.append((await ended)["status"])
            _, ended = await run(keeper, 3)
            return statuses + [(await ended)["status"]]

    statuses = asyncio.run(main())
    assert statuses[:2] == [0, 0] and statuses[2] != 0 and statuses[3] == 0, statuses
    # Each ran, in the cgroup the first left.
    assert len({(tmp_path / str(n)).read_text() for n in range(4)}) == 1


def test_the_c_spawn_makes_the_command_in_its_cgroup_rather_than_moving_it_there(tmp_path):
    """On x86-64 the C spawn makes the command in its attempt's cgroup (clone3 with
    CLONE_INTO_CGROUP), which spares it the move by cgroup.procs that takes the hierarchy's
    locks for writing: given the cgroup's directory and no cgroup.procs at all, the command is
    found in the cgroup. Elsewhere (another machine, an older kernel) the move remains, which
    the other tests here cover."""
    if platform.machine() != "x86_64" or not BUILT or cgroups.detect().kind != cgroups.CGROUP:
        pytest.skip("needs agent/_spawn.c built on x86-64 and cgroup containment")
    from jobplane.agent import _spawn

    cgroup = cgroups.create(cgroups.keeper_dir(cgroups.detect().base), f"born-{tmp_path.name}")
    seen = tmp_path / "seen"
    into = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with open(seen, "wb") as out:
            pid, pidfd = _spawn.spawn(b"/bin/grep", [b"grep", b"^0::", b"/proc/self/cgroup"], [], None,
                                      -1, 0, out.fileno(), 2, (), into)
        os.close(pidfd)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert seen.read_text().strip() == "0::" + cgroup.removeprefix(str(cgroups.cgroup2_mount()))
    finally:
        os.close(into)
        cgroups.remove(cgroup)
        cgroups.remove(cgroups.keeper_dir(cgroups.detect().base))


def test_a_command_runs_after_an_attempt_whose_leftovers_were_killed_either_way(tmp_path, spawn_mode):
    """An attempt that leaves a process behind has it killed with its cgroup (cgroup.kill) as it
    ends, and the cgroup is the next attempt's. That one runs to its own end: Linux 6.18 SIGKILLs
    at birth whatever clone3 makes in a cgroup that was killed (the next command died of SIGKILL
    before it ran)."""
    needs_cgroups()
    stray, state = tmp_path / "stray", tmp_path / "state"

    async def main():
        async with cgroup_keeper(state) as keeper:
            _, _, ended = await sh(keeper, state / "t.1", f"sleep 60 & echo $! > {stray}")
            first = await ended
            _, _, ended = await sh(keeper, state / "t.2", f"echo ran > {tmp_path}/ran; exit 3")
            return first["status"], (await ended)["status"]

    assert asyncio.run(main()) == (0, 3)
    assert (tmp_path / "ran").read_text() == "ran\n"
    assert not pid_alive(int(stray.read_text()))


# Run by the next test in a process of its own: it moves into HOME, a cgroup killed once while
# empty, and runs a command under a keeper it starts there (the keeper lives in its cgroup).
IN_A_KILLED_CGROUP = r"""
import asyncio, os, sys
from jobplane.agent import cgroups
from jobplane.agent.keeper_client import Keeper
state, home = sys.argv[1:3]
cgroups.join(home)

async def main():
    keeper = Keeper(state, containment=cgroups.CGROUP)
    await keeper.open()
    try:
        _, _, ended = await keeper.start({"dir": state + "/t.1", "env": {"PATH": os.defpath},
                                          "argv": ["/bin/sh", "-c", "exit 3"]})
        print((await ended)["status"])
    finally:
        await keeper.close()

asyncio.run(main())
"""


def test_a_keeper_whose_own_cgroup_was_killed_once_still_runs_commands(tmp_path, spawn_mode):
    """Linux 6.18 SIGKILLs at birth whatever clone3 makes in a cgroup (CLONE_INTO_CGROUP) when
    the cgroup of the process that clones was killed (cgroup.kill) a different number of times:
    a keeper started in a cgroup that was once killed has its commands, killed at birth, made
    again and moved into their cgroups (every command died of SIGKILL before it ran)."""
    home = needs_cgroups().base / f"killed-home-{os.getpid()}"
    home.mkdir()
    try:
        (home / "cgroup.kill").write_text("1")  # (empty: only its count of kills changes)
        ran = subprocess.run([sys.executable, "-c", IN_A_KILLED_CGROUP, str(tmp_path / "state"), str(home)],
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.split() == ["3"]
    finally:
        wait_until(lambda: not cgroups.populated(home), 10, "the keeper and its guard to leave")
        home.rmdir()


# Run by the next test in a process of its own, whose soft limit of open files is low: it starts
# a keeper (which inherits the limit) and runs COUNT commands at once, each noting the soft
# limit it got, until GO exists; it prints each one's exit status, or the error it was refused with.
WITH_FEW_FILES = r"""
import asyncio, os, resource, sys
from jobplane.agent.keeper_client import Keeper
state, count, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

async def main():
    keeper = Keeper(state)
    await keeper.open()
    try:
        ends = []
        for n in range(count):
            script = f"ulimit -n > {state}/limit.{n}; while [ ! -e {state}/go ]; do sleep 0.01; done"
            try:
                _, _, ended = await keeper.start({"dir": f"{state}/t.{n}", "env": {"PATH": os.defpath},
                                                  "argv": ["/bin/sh", "-c", script]})
                ends.append(ended)
            except OSError as exc:
                ends.append(exc.strerror)
        open(f"{state}/go", "w").close()
        print(*[end if isinstance(end, str) else (await end)["status"] for end in ends], sep="\n")
    finally:
        await keeper.close()

asyncio.run(main())
"""


def test_a_keeper_runs_more_commands_at_once_than_its_first_open_files_limit_allows(tmp_path):
    """A keeper holds about 7 files per running command: started under a soft limit of 100 open
    files (systemd's default is 1,024), it raises its own (up to the hard limit) and runs 40 at
    once, each command getting the limit of 100 it would have had (they were refused 'Too many
    open files' past about a dozen)."""
    if not BUILT:
        pytest.skip("agent/_spawn.c was not built here: with posix_spawn the keeper keeps its limit")
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 1000:
        pytest.skip("the hard limit of open files here is too low to raise the keeper's")
    state = tmp_path / "state"
    state.mkdir()
    ran = subprocess.run([sys.executable, "-c", WITH_FEW_FILES, str(state), "40", "100"],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split("\n")[:-1] == ["0"] * 40
    assert {(state / f"limit.{n}").read_text().strip() for n in range(40)} == {"100"}
