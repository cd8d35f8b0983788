"""Prerequisite scans on the agent: every signature kind present and absent, version constraints,
and the limits (file budget, hash cap, hanging version command, stuck check) holding."""

from __future__ import annotations

import asyncio
import hashlib
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobplane.agent.scan import ScanLimits, scan, scan_one
from jobplane.agent.versions import find_version, parse_constraint
from support import pid_alive, wait_until

# Generous, so that a loaded machine does not fail the tests; the limits under test are set small.
FAST = ScanLimits(timeout=10.0, version_timeout=5.0)
HANG = ScanLimits(timeout=10.0, version_timeout=0.3)


def tool(directory: Path, name: str, body: str) -> Path:
    """A fake executable: a shell script."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def present(signature: dict, limits: ScanLimits = FAST) -> dict:
    result = scan_one(signature, limits)
    assert result["present"], result
    assert result["reason"] == "" and isinstance(result["scanned_at"], float)
    return result["details"]


def absent(signature: dict, limits: ScanLimits = FAST) -> str:
    result = scan_one(signature, limits)
    assert not result["present"], result
    assert result["reason"]
    return result["reason"]


# --- versions -------------------------------------------------------------------------------

@pytest.mark.parametrize("constraint, version, allowed", [
    (">=1.10,<2", "1.10", True),
    (">=1.10,<2", "1.9.9", False),
    (">=1.10,<2", "1.10.2", True),
    (">=1.10,<2", "2.0", False),
    (">=1.10,<2", "2.0rc1", True),  # a pre-release of 2 comes before 2
    ("==1.10", "1.10.0", True),
    ("!=1.10", "1.10.0", False),
    (">1.10", "1.10.0", False),
    ("<=1.10", "1.10.0", True),
    ("==3.1.*", "3.1.4", True),
    ("==3.1.*", "3.1", True),
    ("==3.1.*", "3.10", False),
    ("!=3.1.*", "3.2.0", True),
    ("~=2.2", "2.9", True),
    ("~=2.2", "3.0", False),
    ("~=2.2", "2.1", False),
    ("~=1.4.5", "1.4.9", True),
    ("~=1.4.5", "1.5.0", False),
    ("<1.24", "1.24.0rc1", True),
    (">1.24.0b1", "1.24.0rc1", True),
    ("<1.24.0", "1.24.0.dev1", True),
    (">1.0", "1.0.post1", True),
    (">1.0", "1.0+cpu", True),
    ("==1.2", "v1.2.0", True),
    # Debian: the epoch is ignored; a revision sorts after the upstream version, ~ before it.
    (">=3.0", "3.0.2-0ubuntu1", True),
    (">=3.0.2", "3.0.2-0ubuntu1", True),
    ("<3.0.2-0ubuntu1.1", "3.0.2-0ubuntu1", True),
    (">=3.0", "1:3.0.2-0ubuntu1.10", True),
    ("<1.0", "1.0~rc1", True),
    (">=3.0.19", "3.0.19-1~deb12u2", True),
    # kernels and OpenSSL's letters
    (">=5.10", "5.15.0-91-generic", True),
    ("<5.15.0-100", "5.15.0-91-generic", True),
    (">=6.1", "5.15.0-91-generic", False),
    (">1.1.1", "1.1.1f", True),
    ("<1.1.1g", "1.1.1f", True),
    (">1.0.2", "1.0.2c", True),
])
def test_constraints_compare_versions_from_every_ecosystem(constraint, version, allowed):
    assert parse_constraint(constraint).allows(version) is allowed


@pytest.mark.parametrize("text, says", [
    ("", "empty version constraint"),
    (">=1.0,", "bad clause ''"),
    ("1.0", "bad clause '1.0'"),
    (">=1.0,=>2", "bad clause '=>2'"),
    (">=x", "bad clause '>=x'"),
    ("<1.*", "bad clause '<1.*'"),
    ("~=2", "bad clause '~=2'"),
    ("==1.a.*", "bad clause '==1.a.*'"),
])
def test_a_bad_constraint_is_refused_naming_the_clause(text, says):
    with pytest.raises(ValueError) as caught:
        parse_constraint(text)
    assert says in str(caught.value)


@pytest.mark.parametrize("output, regex, version", [
    ("samtools 1.10\nUsing htslib 1.10.2\n", None, "1.10"),
    ("GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)", None, "5.2.15"),
    ("OpenSSL 3.0.2 15 Mar 2022", None, "3.0.2"),
    ('openjdk version "17.0.2" 2022-01-18', None, "17.0.2"),
    ("tool v2.1.0rc1", None, "2.1.0rc1"),
    ("Linux 5.15.0-91-generic", None, "5.15.0-91-generic"),
    ("built with gcc 12.2.0\nsamtools 1.17", r"samtools (\S+)", "1.17"),
    ("release-42", r"release-\d+", "release-42"),
    ("no version here", None, None),
    ("samtools 1.17", r"bcftools (\S+)", None),
])
def test_find_version_picks_the_version_out_of_a_tools_output(output, regex, version):
    assert find_version(output, regex) == version


# --- files ----------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "data" / "deep" / "er").mkdir(parents=True)
    (tmp_path / "data" / "ref.fa").write_bytes(b">chr1\nACGT\n")
    (tmp_path / "data" / "other.fa").write_bytes(b">chr2\nTTTT\n")
    (tmp_path / "data" / "deep" / "er" / "x.bin").write_bytes(b"\0" * 100)
    (tmp_path / "data" / ".hidden.fa").write_bytes(b"")
    return tmp_path


def test_a_file_is_found_by_path_glob_or_search_under_roots(tree):
    ref = tree / "data" / "ref.fa"
    assert present({"kind": "file", "path": str(ref)}) == {
        "path": str(ref), "size": "11", "mtime": str(ref.stat().st_mtime)}
    assert present({"kind": "file", "path": f"{tree}/data/r*.fa"})["path"] == str(ref)
    assert present({"kind": "file", "path": "ref.fa", "roots": [str(tree / "nowhere"), str(tree / "data")]})["path"] == str(ref)
    assert present({"kind": "file", "path": "**/x.bin", "roots": [str(tree)]})["size"] == "100"
    assert present({"kind": "file", "path": f"{tree}/**/er/*.bin"})["size"] == "100"


def test_a_missing_file_is_absent_saying_what_was_looked_for(tree):
    assert "no file matches" in absent({"kind": "file", "path": f"{tree}/data/nothing.fa"})
    assert "no file matches" in absent({"kind": "file", "path": "**/nothing", "roots": [str(tree)]})
    assert "no file matches" in absent({"kind": "file", "path": f"{tree}/data/*.missing"})
    # wildcards skip dot-files, as in a shell; a directory is not a file
    assert "no file matches" in absent({"kind": "file", "path": f"{tree}/data/*hidden.fa"})
    assert "no file matches" in absent({"kind": "file", "path": f"{tree}/data/deep"})


def test_size_sha256_and_mtime_must_all_hold(tree):
    ref = tree / "data" / "ref.fa"
    digest = hashlib.sha256(ref.read_bytes()).hexdigest()
    found = present({"kind": "file", "path": f"{tree}/data/*.fa", "size": 11, "sha256": digest.upper(),
                     "min_mtime": ref.stat().st_mtime - 1})
    assert found["path"] == str(ref) and found["sha256"] == digest
    assert "size is 11 bytes, not 12" in absent({"kind": "file", "path": str(ref), "size": 12})
    assert "sha256 differs" in absent({"kind": "file", "path": str(ref), "sha256": "0" * 64})
    assert "before min_mtime" in absent({"kind": "file", "path": str(ref), "min_mtime": time.time() + 3600})
    assert "2 files match, none acceptable" in absent({"kind": "file", "path": f"{tree}/data/*.fa", "size": 3})


def test_a_file_larger_than_the_hash_limit_is_not_hashed(tree):
    big = tree / "data" / "deep" / "er" / "x.bin"
    limits = ScanLimits(max_hash_bytes=99)
    reason = absent({"kind": "file", "path": str(big), "sha256": hashlib.sha256(big.read_bytes()).hexdigest()}, limits)
    assert "not hashed: larger than the limit" in reason and "100 > 99 bytes" in reason
    present({"kind": "file", "path": str(big), "sha256": hashlib.sha256(big.read_bytes()).hexdigest()},
            ScanLimits(max_hash_bytes=100))


def test_a_search_over_a_tree_larger_than_the_budget_stops_and_says_so(tmp_path):
    for d in range(20):
        (tmp_path / f"d{d}").mkdir()
        for f in range(20):
            (tmp_path / f"d{d}" / f"f{f}").write_bytes(b"")
    (tmp_path / "d19" / "target").write_bytes(b"")
    signature = {"kind": "file", "path": "**/target", "roots": [str(tmp_path)]}
    reason = absent(signature, ScanLimits(max_files_visited=100))
    assert "file budget" in reason and "100 entries" in reason
    present(signature, ScanLimits(max_files_visited=1000))


def test_a_relative_path_without_roots_is_a_bad_signature():
    assert absent({"kind": "file", "path": "ref.fa"}).startswith("bad signature: 'path' 'ref.fa' is relative")


# --- executables ----------------------------------------------------------------------------

def test_an_executable_is_found_in_dirs_or_on_path_and_its_version_checked(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    samtools = tool(bin_dir, "samtools", 'echo "samtools 1.12.3"; echo "Using htslib 1.9"')
    signature = {"kind": "executable", "name": "samtools", "dirs": [str(bin_dir)],
                 "version_args": ["--version"], "version": ">=1.10,<2"}
    assert present(signature) == {"path": str(samtools), "version": "1.12.3"}
    reason = absent({**signature, "version": ">=2"})
    assert "samtools 1.12.3 does not satisfy >=2" in reason
    assert present({**signature, "version_regex": r"htslib (\S+)", "version": "<1.10"})["version"] == "1.9"
    assert "no version in the output" in absent({**signature, "version_regex": r"bcftools (\S+)"})
    monkeypatch.setenv("PATH", f"{tmp_path / 'empty'}{os.pathsep}{bin_dir}")
    assert present({"kind": "executable", "name": "samtools"}) == {"path": str(samtools)}
    assert present({"kind": "executable", "name": str(samtools)}) == {"path": str(samtools)}


def test_a_missing_executable_is_absent(tmp_path):
    assert "not found in" in absent({"kind": "executable", "name": "samtools", "dirs": [str(tmp_path)]})
    tool(tmp_path, "plain", "exit 0").chmod(0o644)  # not executable
    assert "not found in" in absent({"kind": "executable", "name": "plain", "dirs": [str(tmp_path)]})


def test_an_executable_runs_only_with_the_given_arguments_and_no_shell(tmp_path):
    echo = tool(tmp_path, "echoargs", 'echo "echoargs 1.0 args:$*"')
    pwned = tmp_path / "pwned"
    present({"kind": "executable", "name": "echoargs", "dirs": [str(tmp_path)],
             "version_args": [f"--version; touch {pwned}", "$(touch {pwned})"]})
    assert not pwned.exists()
    # without version_args nothing is run at all
    marker = tool(tmp_path, "marker", f"touch {tmp_path / 'ran'}")
    assert present({"kind": "executable", "name": "marker", "dirs": [str(tmp_path)]}) == {"path": str(marker)}
    assert not (tmp_path / "ran").exists()
    assert echo.exists()


def test_a_version_constraint_without_version_args_is_a_bad_signature(tmp_path):
    tool(tmp_path, "t", "echo t 1.0")
    reason = absent({"kind": "executable", "name": "t", "dirs": [str(tmp_path)], "version": ">=1"})
    assert reason.startswith("bad signature:") and "version_args" in reason


def test_a_hanging_version_command_is_killed_with_its_children_and_reported(tmp_path):
    pids = tmp_path / "pids"
    tool(tmp_path, "hang", f"sleep 30 & echo $! > {pids}; wait")
    started = time.monotonic()
    reason = absent({"kind": "executable", "name": "hang", "dirs": [str(tmp_path)],
                     "version_args": ["--version"]}, HANG)
    assert time.monotonic() - started < 10
    assert "hung: killed after 0.3 s" in reason
    sleeper = int(pids.read_text())
    wait_until(lambda: not pid_alive(sleeper), 10, "the version command's child to be killed")


def test_endless_version_output_is_cut_at_the_limit(tmp_path):
    tool(tmp_path, "chatty", "while :; do echo chatty 4.5.6; done")
    limits = ScanLimits(timeout=10.0, version_timeout=5.0, max_version_output=4096)
    started = time.monotonic()
    assert present({"kind": "executable", "name": "chatty", "dirs": [str(tmp_path)],
                    "version_args": [], "version": "==4.5.6"}, limits)["version"] == "4.5.6"
    assert time.monotonic() - started < 4  # it did not run to the version timeout


# --- packages -------------------------------------------------------------------------------

def test_python_packages_of_the_agents_interpreter():
    import pytest as installed

    found = present({"kind": "python_package", "name": "pytest", "version": ">=7"})
    assert found == {"version": installed.__version__, "interpreter": sys.executable}
    assert "not installed" in absent({"kind": "python_package", "name": "no-such-dist"})
    assert "does not satisfy >=999" in absent({"kind": "python_package", "name": "pytest", "version": ">=999"})


def test_python_packages_of_another_interpreter_are_listed_without_running_site(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    interpreter = str(venv / "bin" / "python")
    site = Path(subprocess.run([interpreter, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "fakepkg-1.2.3.dist-info").mkdir(parents=True)
    (site / "fakepkg-1.2.3.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.2.3\n")
    (site / "evil.pth").write_text(f"import pathlib; pathlib.Path({str(tmp_path / 'ran')!r}).touch()\n")
    assert present({"kind": "python_package", "name": "fakepkg", "version": "~=1.2",
                    "interpreter": interpreter}) == {"version": "1.2.3", "interpreter": interpreter}
    assert "not installed" in absent({"kind": "python_package", "name": "pytest", "interpreter": interpreter})
    assert not (tmp_path / "ran").exists()
    assert "cannot run" in absent({"kind": "python_package", "name": "x", "interpreter": str(tmp_path / "nope")})


DPKG_STATUS = """\
Package: libssl3
Status: install ok installed
Architecture: amd64
Version: 3.0.2-0ubuntu1.10
Description: Secure Sockets Layer toolkit
 continuation line: Version: 9.9

Package: oldlib
Status: deinstall ok config-files
Version: 1.0

Package: held
Status: hold ok installed
Version: 2:4.1-3
"""


def test_debian_packages_come_from_the_dpkg_status_file(tmp_path):
    status = tmp_path / "status"
    status.write_text(DPKG_STATUS)
    limits = ScanLimits(dpkg_status=str(status))
    assert present({"kind": "debian_package", "name": "libssl3", "version": ">=3.0"}, limits) == {
        "version": "3.0.2-0ubuntu1.10"}
    assert present({"kind": "debian_package", "name": "libssl3:amd64"}, limits)
    assert present({"kind": "debian_package", "name": "held", "version": "==4.1-3"}, limits)
    assert "does not satisfy <3" in absent({"kind": "debian_package", "name": "libssl3", "version": "<3"}, limits)
    assert "not installed" in absent({"kind": "debian_package", "name": "oldlib"}, limits)
    assert "not installed" in absent({"kind": "debian_package", "name": "nope"}, limits)
    reason = absent({"kind": "debian_package", "name": "libssl3"}, ScanLimits(dpkg_status=str(tmp_path / "none")))
    assert "cannot read the dpkg database" in reason


# --- the machine ----------------------------------------------------------------------------

def test_env_is_the_agents_environment_and_its_value_is_not_reported(monkeypatch):
    monkeypatch.setenv("CUDA_HOME", "/opt/cuda-12.2")
    monkeypatch.delenv("NO_SUCH_VAR_HERE", raising=False)
    assert present({"kind": "env", "name": "CUDA_HOME"}) == {"name": "CUDA_HOME"}
    assert present({"kind": "env", "name": "CUDA_HOME", "pattern": "/opt/cuda-12*"})
    assert "does not match" in absent({"kind": "env", "name": "CUDA_HOME", "pattern": "/opt/cuda-11*"})
    assert "not set" in absent({"kind": "env", "name": "NO_SUCH_VAR_HERE"})


def test_a_port_is_present_when_something_accepts_connections():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert present({"kind": "port", "port": port}) == {"host": "127.0.0.1", "port": str(port)}
    with socket.socket() as bound_only:  # bound, so nobody else takes the port, but not listening
        bound_only.bind(("127.0.0.1", 0))
        port = bound_only.getsockname()[1]
        assert "nothing accepts connections" in absent({"kind": "port", "port": port, "host": "127.0.0.1"})
    assert absent({"kind": "port", "port": 70000}).startswith("bad signature")


def test_disk_free_bytes(tmp_path):
    free = int(present({"kind": "disk", "path": str(tmp_path), "free_bytes": 1})["free_bytes"])
    assert "bytes free" in absent({"kind": "disk", "path": str(tmp_path), "free_bytes": free * 1000 + 2**50})
    assert "cannot read the filesystem" in absent({"kind": "disk", "path": str(tmp_path / "no"), "free_bytes": 1})


def test_memory_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:  1000 kB\nMemAvailable:    8000000 kB\n")
    limits = ScanLimits(meminfo=str(meminfo))
    assert present({"kind": "memory", "free_bytes": 8_000_000 * 1024, "total_bytes": 16_000_000 * 1024}, limits) == {
        "free_bytes": str(8_000_000 * 1024), "total_bytes": str(16_000_000 * 1024)}
    assert "available" in absent({"kind": "memory", "free_bytes": 8_000_001 * 1024}, limits)
    assert "in all" in absent({"kind": "memory", "total_bytes": 16_000_001 * 1024}, limits)
    assert "cannot read" in absent({"kind": "memory", "free_bytes": 1}, ScanLimits(meminfo=str(tmp_path / "no")))


def test_os_arch_and_kernel():
    system, machine = platform.system().lower(), platform.machine()
    assert present({"kind": "os", "value": system.upper()}) == {"os": system}
    assert "not plan9" in absent({"kind": "os", "value": "plan9"})
    assert present({"kind": "arch", "value": machine}) == {"arch": machine}
    assert "not sparc64" in absent({"kind": "arch", "value": "sparc64"})
    assert present({"kind": "kernel", "version": ">=1"}) == {"version": platform.release()}
    assert "does not satisfy <1" in absent({"kind": "kernel", "version": "<1"})


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the alias under test is x86_64's")
def test_arch_aliases():
    assert present({"kind": "arch", "value": "amd64"}) == {"arch": "x86_64"}


@pytest.mark.parametrize("signature, says", [
    (["file"], "expected a mapping"),
    ({}, "'kind' is required"),
    ({"kind": "tape"}, "unknown kind 'tape'"),
    ({"kind": "executable"}, "'name' is required"),
    ({"kind": "executable", "name": 3}, "'name' must be str"),
    ({"kind": "executable", "name": "bin/sh"}, "'name' 'bin/sh' must be a command name or an absolute path"),
    ({"kind": "executable", "name": "sh", "dirs": "/bin"}, "'dirs' must be list"),
    ({"kind": "executable", "name": "sh", "version_args": [1]}, "'version_args' must be a list of strings"),
    ({"kind": "python_package", "name": "pytest", "version": ">=seven"}, "bad clause '>=seven'"),
    ({"kind": "file", "path": "/x", "size": True}, "'size' must be int"),
    ({"kind": "file", "path": "/x", "size": -1}, "'size' must not be negative"),
    ({"kind": "file", "path": "/x", "sha256": "abc"}, "'sha256' must be 64 hexadecimal digits"),
    ({"kind": "disk", "path": "/"}, "'free_bytes' is required"),
    ({"kind": "kernel"}, "'version' is required"),
])
def test_a_bad_signature_is_reported_absent_never_raised(signature, says):
    reason = absent(signature)
    assert reason.startswith("bad signature:") and says in reason


# --- many at once ---------------------------------------------------------------------------

def test_two_hundred_mixed_signatures_scan_concurrently_in_order(tree, monkeypatch):
    counter = tree / "runs"
    tool(tree / "bin", "ver", f'echo x >> {counter}; echo "ver 2.5"')
    tool(tree / "bin", "hang", "exec sleep 30")
    monkeypatch.setenv("SCAN_TEST_VAR", "yes")
    kinds = [
        ({"kind": "file", "path": "**/x.bin", "roots": [str(tree)]}, True),
        ({"kind": "file", "path": f"{tree}/data/nope"}, False),
        ({"kind": "executable", "name": "ver", "dirs": [str(tree / "bin")], "version_args": ["-V"], "version": ">=2"}, True),
        ({"kind": "executable", "name": "ver", "dirs": [str(tree / "bin")], "version_args": ["-V"], "version": "<2"}, False),
        ({"kind": "executable", "name": "hang", "dirs": [str(tree / "bin")], "version_args": ["-V"]}, False),
        ({"kind": "python_package", "name": "pytest"}, True),
        ({"kind": "env", "name": "SCAN_TEST_VAR"}, True),
        ({"kind": "env", "name": "SCAN_TEST_VAR_NOT"}, False),
        ({"kind": "disk", "path": str(tree), "free_bytes": 1}, True),
        ({"kind": "os", "value": "plan9"}, False),
    ]
    signatures = [kinds[i % len(kinds)] for i in range(200)]
    limits = ScanLimits(timeout=10.0, version_timeout=1.0)  # the hanging command runs once, for 1 s
    results = asyncio.run(scan([sig for sig, _ in signatures], limits=limits))
    assert [r["present"] for r in results] == [want for _, want in signatures]
    assert all("hung" in r["reason"] for r in results[4::len(kinds)])
    # the 40 signatures naming `ver -V` ran it once
    assert counter.read_text() == "x\n"


def test_a_check_stuck_in_the_kernel_is_abandoned_and_the_scan_goes_on(monkeypatch, tmp_path):
    release = threading.Event()
    real_statvfs = os.statvfs

    def stuck_statvfs(path):  # a dead network mount, which cannot be had here
        if str(path).endswith("stuck"):
            release.wait(30)
        return real_statvfs(path)

    monkeypatch.setattr(os, "statvfs", stuck_statvfs)
    signatures = [{"kind": "disk", "path": str(tmp_path / "stuck"), "free_bytes": 1},
                  {"kind": "disk", "path": str(tmp_path), "free_bytes": 1}]
    try:
        results = asyncio.run(scan(signatures, limits=ScanLimits(timeout=0.5, concurrency=1)))
    finally:
        release.set()
    assert not results[0]["present"] and "abandoned" in results[0]["reason"]
    assert results[1]["present"]


def test_roots_name_the_agents_own_directories_through_its_environment(tmp_path, monkeypatch):
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "ref.fa").write_text(">x\n")
    signature = {"kind": "file", "path": "ref.fa", "roots": ["${JP_TEST_DATA}/refs"]}
    monkeypatch.setenv("JP_TEST_DATA", str(tmp_path))
    assert scan_one(signature)["present"]
    monkeypatch.delenv("JP_TEST_DATA")
    result = scan_one(signature)
    assert not result["present"] and "JP_TEST_DATA" in result["reason"]
