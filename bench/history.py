"""Listings on a big history: builds a database of finished jobs (10,000 jobs x 100 tasks = 1M
tasks by default, one attempt each, spread over 30 days, 1% failed with exit code 1) straight
through the store's models in bulk, starts a real server on it and times, at the client (SDK),
what an operator asks of such a history. Then the throughput of jobs of no-op tasks on that
database against the same jobs on an empty one, alternating, and the ratio of the medians (the
issue asks to keep it >= 0.9). Prints figures and ratios; asserts nothing.

    python bench/history.py [--tasks 1000000] [--jobs 10000] [--db postgresql://USER@HOST/DB]
                            [--rounds 5] [--batch 3000] [--jobs-timed 5]

With --db postgresql://..., a database is created next to the one named (and dropped after).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path
from urllib.parse import urlparse, urlunparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import AgentProc, ServerProc, wait_until  # noqa: E402

from jobplane.client import Client  # noqa: E402
from jobplane.client.jobfile import job_spec_from_mapping  # noqa: E402
from jobplane.server.domain.extract import extract_tasks  # noqa: E402
from jobplane.server.domain.model import JobSpec, JobState, Status, TaskState  # noqa: E402
from jobplane.server.services.convert import job_spec_from_proto  # noqa: E402
from jobplane.server.store.codec import dump_job_spec, dump_task_spec  # noqa: E402
from peewee import AutoField, PostgresqlDatabase  # noqa: E402

from jobplane.server.store.db import open_database  # noqa: E402
from jobplane.server.store.indexes import job_tags  # noqa: E402
from jobplane.server.store.models import AttemptRow, JobRow, JobTagRow, TaskRow  # noqa: E402
from jobplane.server.store.repo import Store  # noqa: E402

TEAMS = ("etl", "web", "ml", "ops")
DAYS = 30
FAILED_ONE_IN = 100
BATCH = 2000  # rows per INSERT


def templates(per_job: int) -> dict[str, tuple[JobSpec, bytes, list[tuple[str, str, bytes]]]]:
    """Per team: the job spec, as stored too, and each task's (name, group, spec as stored)."""
    out = {}
    for team in TEAMS:
        document = {"name": "history", "labels": {"team": team},
                    "tasks": [{"name": f"t{i}", "command": ["/bin/true"]} for i in range(per_job)]}
        spec = job_spec_from_proto(job_spec_from_mapping(document))
        drafts = extract_tasks(spec, max_tasks=per_job, default_max_attempts=1)
        out[team] = (spec, dump_job_spec(spec), [(d.name, d.group, dump_task_spec(d.spec)) for d in drafts])
    return out


def build(url: str, jobs: int, per_job: int) -> None:
    """`jobs` finished jobs of `per_job` tasks each, newest last, through the store's models."""
    store = Store(open_database(url))
    store.create_schema()
    specs = templates(per_job)
    rng = random.Random(17)
    now = time.time()
    span = DAYS * 86400.0
    job_rows, tag_rows, task_rows, attempt_rows = [], [], [], []
    task_id = 0
    db = store.db
    db.connect(reuse_if_open=True)

    def flush() -> None:
        with db.atomic():
            for model, rows in ((JobRow, job_rows), (JobTagRow, tag_rows), (TaskRow, task_rows),
                                (AttemptRow, attempt_rows)):
                insert_rows(db, model, rows)
                rows.clear()

    for j in range(1, jobs + 1):
        team = TEAMS[j % len(TEAMS)]
        spec, job_spec, tasks = specs[team]
        submit = now - span + span * j / (jobs + 1)
        failed = 0
        for idx, (name, group, task_spec) in enumerate(tasks):
            task_id += 1
            bad = rng.randrange(FAILED_ONE_IN) == 0
            failed += bad
            start = submit + 0.5 + idx * 0.01
            raw = json.dumps({"state": "exited", "exit_code": "1" if bad else "0"})
            state, status = (TaskState.FAILED, Status.FAILURE) if bad else (TaskState.SUCCEEDED, Status.SUCCESS)
            provider = f"agent-{task_id % 50}"
            task_rows.append({"id": task_id, "job": j, "idx": idx, "name": name, "group": group, "spec": task_spec,
                              "state": int(state), "status": int(status), "attempt": 1, "provider": provider,
                              "exit_code": 1 if bad else 0, "environment": "process", "raw": raw})
            attempt_rows.append({"id": task_id, "task": task_id, "number": 1, "provider": provider,
                                 "assign_time": start - 0.1, "start_time": start, "end_time": start + 0.05,
                                 "outcome": 2 if bad else 1, "exit_code": 1 if bad else 0,
                                 "environment": "process", "raw": raw})
        state, status = (JobState.FAILED, Status.FAILURE) if failed else (JobState.SUCCEEDED, Status.SUCCESS)
        counts = {"success": per_job - failed, "failure": failed, "not_ok": failed}
        job_rows.append({"id": j, "name": f"nightly-{team}-{j:05d}", "priority": j % 7, "spec": job_spec,
                         "state": int(state), "status": int(status), "counts": json.dumps(counts),
                         "submit_time": submit, "start_time": submit + 0.5,
                         "end_time": submit + 0.5 + per_job * 0.01 + 0.05, "owner": "admin"})
        tag_rows += job_tags(j, spec)
        if len(task_rows) >= 20 * BATCH:
            flush()
    flush()
    if isinstance(db, PostgresqlDatabase):  # as autovacuum would have, on a database this old
        db.execute_sql("ANALYZE")
    store.close()


def insert_rows(db, model, rows: list[dict]) -> None:
    """Bulk INSERT of `rows` (dicts of column values; the rest take the model's defaults)."""
    if not rows:
        return
    fields = [f for f in model._meta.sorted_fields if f.name in rows[0] or not isinstance(f, AutoField)]
    names = ", ".join(f'"{f.column_name}"' for f in fields)
    values = [tuple(row.get(f.name, _default(f)) for f in fields) for row in rows]
    table = model._meta.table_name
    cursor = db.cursor()
    if isinstance(db, PostgresqlDatabase):
        from psycopg2.extras import execute_values

        execute_values(cursor, f'INSERT INTO "{table}" ({names}) VALUES %s', values, page_size=BATCH)
    else:
        cursor.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(fields))})', values)


def _default(field):
    return field.default() if callable(field.default) else field.default


def timed(call, rounds: int) -> tuple[float, float, object]:
    """(median, worst) seconds of `rounds` calls after one warm-up, and the last answer."""
    answer = call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        answer = call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), max(samples), answer


def listings(client: Client, rounds: int) -> None:
    """The first page (50, as `jobplane jobs list` and `tasks list` show) of each listing, and
    every failed task (what the CLI's --all walks)."""
    def first(make):
        return lambda: list(islice(make(), 50))

    calls = {
        "jobs list (first 50)": first(lambda: client.list_jobs(page_size=50)),
        "tasks list raw.exit_code>0 (first 50)": first(lambda: client.list_tasks(filter="raw.exit_code>0", page_size=50)),
        "tasks list raw.exit_code>0 (--all)": lambda: list(client.list_tasks(filter="raw.exit_code>0", page_size=1000)),
        "tasks list status=FAILURE (first 50)": first(lambda: client.list_tasks(filter="status=FAILURE", page_size=50)),
        "jobs list label.team=ml (first 50)": first(lambda: client.list_jobs(filter="label.team=ml", page_size=50)),
        "tasks list label.team=ml (first 50)": first(lambda: client.list_tasks(filter="label.team=ml", page_size=50)),
        "tasks list started>=-1h (first 50)": first(lambda: client.list_tasks(filter="started>=-1h", page_size=50)),
        "jobs list status=FAILURE started>=-1d": first(lambda: client.list_jobs(filter="status=FAILURE started>=-1d",
                                                                                page_size=50)),
    }
    for name, call in calls.items():
        start = time.perf_counter()
        try:
            median, worst, answer = timed(call, rounds)
        except Exception as exc:  # refused, or too slow for the SDK's deadline: say so, go on
            print(f"{name:40s} failed after {time.perf_counter() - start:.1f} s: {exc}")
            continue
        print(f"{name:40s} median {median:7.3f} s   worst {worst:7.3f} s   {len(answer):5d} rows")


class Bench:
    """A server on one database and an agent of 8 slots, warmed up (its Python pool started),
    that times jobs of Python no-op tasks."""

    def __init__(self, url: str, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.server = ServerProc(work, url, insecure=True, extra=["--submit-rate", "100000"])
        self.agent = self.client = None
        try:  # the processes run in sessions of their own: nothing else would stop them
            self.agent = AgentProc(work, self.server, "bench-0", slots=8)
            self.client = self.server.client()
            wait_until(lambda: any(p.state == 1 for p in self.client.list_providers()), 30, "the agent")
            self.rate(64)
        except BaseException:
            self.close()
            raise

    def rate(self, batch: int) -> float:
        """Tasks/s of one job of `batch` no-op tasks, submit to last result (server clock)."""
        job = self.client.submit_job({"name": "noop", "tasks": [
            {"name": f"t{i}", "python": "jobplane.examples.funcs:noop"} for i in range(batch)]})
        done = self.client.wait_job(job.id, timeout=600)
        return batch / (done.end_time.ToNanoseconds() / 1e9 - done.submit_time.ToNanoseconds() / 1e9)

    def close(self) -> None:
        try:
            if self.client is not None:
                self.client.close()
        finally:
            if self.agent is not None:
                self.agent.stop()
            self.server.stop()


def throughput(empty: str, big: str, work: Path, batch: int, rounds: int) -> None:
    """Jobs of `batch` no-ops on the empty and the big database, alternating (both servers
    stay up, the idle one costs next to nothing), and the ratio of the medians: one job's rate
    swings by 10-20% from one to the next on a 2-core machine, either database."""
    benches: dict[str, Bench] = {}
    try:  # the empty database's bench is stopped too when the big one's fails to start
        benches["empty"] = Bench(empty, work / "empty")
        benches["big"] = Bench(big, work / "big")
        rates: dict[str, list[float]] = {"empty": [], "big": []}
        for _ in range(rounds):
            for name, bench in benches.items():
                rates[name].append(bench.rate(batch))
    finally:
        for bench in benches.values():
            bench.close()
    for name, got in rates.items():
        print(f"no-op tasks/s, {name:5s} database: " + ", ".join(f"{r:.0f}" for r in got))
    on_empty, on_big = statistics.median(rates["empty"]), statistics.median(rates["big"])
    print(f"median no-op tasks/s: empty {on_empty:7.0f}   with history {on_big:7.0f}   "
          f"ratio {on_big / on_empty:.2f} x empty (goal >= 0.9)")


def databases(base: str | None, work: Path) -> tuple[str, str, callable]:
    """URLs of the big and the empty database, and a clean-up."""
    if base is None:
        return f"sqlite:///{work / 'history.db'}", f"sqlite:///{work / 'empty.db'}", lambda: None
    import psycopg2

    parsed = urlparse(base)
    names = [f"jp_history_{uuid.uuid4().hex[:8]}", f"jp_empty_{uuid.uuid4().hex[:8]}"]
    admin = psycopg2.connect(base)
    admin.autocommit = True
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()

    big, empty = (urlunparse(parsed._replace(path="/" + n)) for n in names)
    return big, empty, drop


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=1_000_000, help="finished tasks in the big database")
    p.add_argument("--jobs", type=int, default=10_000, help="jobs they belong to")
    p.add_argument("--db", help="postgresql://USER@HOST/DB to run on PostgreSQL (default: SQLite files)")
    p.add_argument("--rounds", type=int, default=5, help="timed calls of each listing")
    p.add_argument("--batch", type=int, default=3000, help="no-op tasks per timed job (0: skip)")
    p.add_argument("--jobs-timed", type=int, default=5, help="timed jobs on each database, alternating")
    a = p.parse_args()
    per_job = max(1, a.tasks // a.jobs)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big, empty, drop = databases(a.db, work)
        try:
            start = time.perf_counter()
            build(big, a.jobs, per_job)
            print(f"built {a.jobs} jobs x {per_job} tasks = {a.jobs * per_job} finished tasks "
                  f"({'PostgreSQL' if a.db else 'SQLite'}) in {time.perf_counter() - start:.1f} s")
            server = ServerProc(work, big, insecure=True)
            client = server.client()
            try:
                listings(client, a.rounds)
            finally:
                client.close()
                server.stop()
            if a.batch:
                Store(open_database(empty)).create_schema()
                throughput(empty, big, work, a.batch, a.jobs_timed)
        finally:
            drop()


if __name__ == "__main__":
    main()
