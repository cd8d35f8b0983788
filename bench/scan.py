"""Prerequisite scan cost on one agent: 1,000 mixed signatures (files by path and size or sha256,
globs and searches over a temporary tree, environment variables, executables with version
checks, Python and Debian packages, disk, memory, os/arch/kernel) scanned once with the default
limits; prints the wall time and the process's peak RSS.

    python bench/scan.py [--signatures 1000] [--dirs 100] [--files 20]

Targets: <= 1 s and <= 60 MiB peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from jobplane.agent.scan import ScanLimits, scan

TARGET_SECONDS = 1.0
TARGET_RSS_MIB = 60.0


def build_tree(root: Path, dirs: int, files: int) -> None:
    for d in range(dirs):
        (root / f"d{d}").mkdir()
        for f in range(files):
            (root / f"d{d}" / f"f{f}.dat").write_bytes(f"{d}/{f}\n".encode() * (f + 1))
    tools = root / "bin"
    tools.mkdir()
    for t in range(10):
        script = tools / f"tool{t}"
        script.write_text(f'#!/bin/sh\necho "tool{t} version {t}.{t + 1}.0"\n')
        script.chmod(0o755)


def signatures(root: Path, dirs: int, files: int, count: int) -> list[dict]:
    """`count` signatures, cycling through the kinds; about two thirds present."""
    def data(d: int, f: int) -> Path:
        return root / f"d{d % dirs}" / f"f{f % files}.dat"

    makers = [
        lambda i: {"kind": "file", "path": str(data(i, i)), "size": data(i, i).stat().st_size},
        lambda i: {"kind": "file", "path": str(data(i, i + 1)),
                   "sha256": hashlib.sha256(data(i, i + 1).read_bytes()).hexdigest()},
        lambda i: {"kind": "file", "path": f"d{i % dirs}/*.dat", "roots": [str(root)], "min_mtime": 0},
        lambda i: {"kind": "file", "path": f"**/f{i % (files + 5)}.dat", "roots": [str(root)]},
        lambda i: {"kind": "env", "name": "PATH" if i % 2 else "NO_SUCH_VARIABLE"},
        lambda i: {"kind": "env", "name": "HOME", "pattern": "/*"},
        lambda i: {"kind": "executable", "name": f"tool{i % 10}", "dirs": [str(root / "bin")],
                   "version_args": ["--version"], "version": f">={i % 10}.{i % 3},<{i % 10 + 1}"},
        lambda i: {"kind": "executable", "name": "true", "version_args": ["--version"], "version": ">=8"},
        lambda i: {"kind": "executable", "name": "sh" if i % 2 else "no-such-tool"},
        lambda i: {"kind": "python_package", "name": ["pytest", "pip", "no-such-dist"][i % 3], "version": ">=1"},
        lambda i: {"kind": "debian_package", "name": ["libc6", "bash", "no-such-package"][i % 3], "version": ">=1"},
        lambda i: {"kind": "disk", "path": str(root), "free_bytes": 1 << (i % 50)},
        lambda i: {"kind": "memory", "free_bytes": 1 << (i % 40), "total_bytes": 1 << 20},
        lambda i: [{"kind": "os", "value": "linux"}, {"kind": "arch", "value": "x86_64"},
                   {"kind": "kernel", "version": ">=5.10"}][i % 3],
    ]
    return [makers[i % len(makers)](i) for i in range(count)]


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signatures", type=int, default=1000)
    parser.add_argument("--dirs", type=int, default=100)
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_tree(root, args.dirs, args.files)
        sigs = signatures(root, args.dirs, args.files, args.signatures)
        before = peak_rss_mib()
        start = time.perf_counter()
        results = asyncio.run(scan(sigs, limits=ScanLimits()))
        wall = time.perf_counter() - start
    report(sigs, results, wall, before)


def report(sigs: list[dict], results: list[dict], wall: float, rss_before: float) -> None:
    present = collections.Counter(s["kind"] for s, r in zip(sigs, results) if r["present"])
    total = collections.Counter(s["kind"] for s in sigs)
    print(f"{len(sigs)} signatures on {os.cpu_count()} CPUs, "
          f"{sum(present.values())} present: " + ", ".join(f"{k} {present[k]}/{n}" for k, n in total.items()))
    stopped = [r["reason"] for r in results if "timed out" in r["reason"] or "hung" in r["reason"]]
    print(f"stopped at a time limit: {len(stopped)}")
    rss = peak_rss_mib()
    print(f"scan wall time {wall:.3f} s (target <= {TARGET_SECONDS:g} s) "
          f"{'OK' if wall <= TARGET_SECONDS else 'OVER'}")
    print(f"peak RSS {rss:.1f} MiB, {rss_before:.1f} MiB before the scan (target <= {TARGET_RSS_MIB:g} MiB) "
          f"{'OK' if rss <= TARGET_RSS_MIB else 'OVER'}")


if __name__ == "__main__":
    main()
