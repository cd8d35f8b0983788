"""jobplane against Celery 5 + Redis in the same run, on the same machine: N Python no-op
tasks with results, end to end, rounds alternating between the two; prints tasks/s of each,
the ratio (goal: jobplane >= 5x Celery) and jobplane's server CPU time per task.

    pip install celery redis && apt-get install -y redis-server   # bench-only, not jobplane's deps
    python bench/vs_celery.py [--tasks 3000] [--rounds 2] [--agents 2] [--slots 8]

What makes it fair:
- Same N, same machine, same run: the rounds alternate (Celery, jobplane, Celery, ...), so
  both see the same load; the medians are compared.
- Celery as its users run it here: a prefork worker with concurrency 2 (Celery's default, the
  machine's core count), a Redis broker and a Redis result backend (results on), acks as
  Celery's defaults (acks_late off: a task is acknowledged when a worker takes it), the
  Redis server with its stock persistence (RDB snapshots, no AOF: a crash loses recent tasks).
  jobplane commits every state change of every task to SQLite with synchronous=FULL before
  anyone hears of it: it does more per task, not less.
- Both measured from the first send to the last result stored: Celery's clock starts before
  the group of N tasks is sent (one producer, as `group(...).apply_async()`) and stops when
  every result is back at the client; jobplane's is its job's submit and end time.
- Both warmed up first (Celery's worker answers a ping and runs a group of 32; jobplane runs
  a job of 2 x agents x slots no-ops, which starts the agents' Python pools).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import PY_NOOP, local_cluster, run_job  # noqa: E402

INSTALL = ("bench/vs_celery.py needs Celery, redis-py and a redis-server binary (bench-only, not "
           "jobplane's dependencies): pip install celery redis && apt-get install -y redis-server")

TASKS_MODULE = '''
import os
from celery import Celery

app = Celery("jpbench", broker=os.environ["BENCH_REDIS"], backend=os.environ["BENCH_REDIS"])


@app.task
def noop():
    return None
'''


def missing() -> str:
    """What is missing to run Celery here, or ""."""
    try:
        import celery  # noqa: F401
        import kombu.transport.redis  # noqa: F401  (Celery's Redis broker, with what it imports)
        import redis  # noqa: F401
    except ImportError as e:
        return f"missing {e.name}"
    if not shutil.which("redis-server"):
        return "missing redis-server"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def celery_worker(work: Path, concurrency: int) -> Iterator[object]:
    """A redis-server on a free port and a Celery prefork worker on it: yields the `noop` task."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_log = open(work / "redis.log", "wb")
    redis_server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                     "--dir", str(work)], stdout=redis_log, stderr=subprocess.STDOUT)
    (work / "jpbench.py").write_text(TASKS_MODULE)
    env = {**os.environ, "BENCH_REDIS": url, "PYTHONPATH": str(work)}
    worker_log = open(work / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "jpbench", "worker", "--pool", "prefork",
                               "--concurrency", str(concurrency), "--loglevel", "WARNING",
                               "--without-gossip", "--without-mingle", "--without-heartbeat"],
                              cwd=work, env=env, stdout=worker_log, stderr=subprocess.STDOUT)
    os.environ["BENCH_REDIS"] = url
    sys.path.insert(0, str(work))
    try:
        import jpbench

        wait_for(lambda: jpbench.app.control.ping(timeout=0.5), 60, "the Celery worker")
        celery_round(jpbench.noop, 32)
        yield jpbench.noop
    finally:
        for proc in (worker, redis_server):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        worker_log.close()
        redis_log.close()


def celery_round(noop, n: int) -> float:
    """Tasks/s of `n` no-ops with results, from the first send to the last result."""
    from celery import group

    start = time.perf_counter()
    result = group(noop.s() for _ in range(n)).apply_async()
    values = result.get(timeout=3600)
    elapsed = time.perf_counter() - start
    assert len(values) == n
    result.forget()
    return n / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=2, help="rounds of each, alternating")
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=2, help="Celery's prefork processes")
    a = p.parse_args()
    if why := missing():
        print(f"{why}: {INSTALL}", file=sys.stderr)
        return 2
    celery_rates, jp_rates, jp_cpu = [], [], []
    with tempfile.TemporaryDirectory() as tmp, celery_worker(Path(tmp), a.concurrency) as noop, \
            local_cluster(a.agents, a.slots) as (client, server_pid):
        print(f"{a.tasks} Python no-op tasks with results per round; Celery prefork x {a.concurrency} + Redis; "
              f"jobplane server + {a.agents} agents x {a.slots} slots, SQLite synchronous=FULL")
        for i in range(a.rounds):
            celery_rates.append(celery_round(noop, a.tasks))
            run = run_job(client, f"py-noop-{i}", PY_NOOP, a.tasks, server_pid)
            jp_rates.append(run.rate)
            jp_cpu.append(run.cpu_ms_per_task)
            print(f"round {i + 1}: Celery {celery_rates[-1]:7.0f} tasks/s   jobplane {run.rate:7.0f} tasks/s "
                  f"(server CPU {run.cpu_ms_per_task:.2f} ms/task)   ratio {run.rate / celery_rates[-1]:.2f}x")
    celery_rate, jp_rate = statistics.median(celery_rates), statistics.median(jp_rates)
    print(f"median: Celery {celery_rate:.0f} tasks/s, jobplane {jp_rate:.0f} tasks/s "
          f"(server CPU {statistics.median(jp_cpu):.2f} ms/task) -> jobplane = {jp_rate / celery_rate:.2f}x Celery "
          f"(goal >= 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
