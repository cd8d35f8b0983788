"""A history of what clients did and saw while replicas failed, and its checker.

Recorded: every submit with its answer (a Submitter thread that, as a user would, retries on
another replica with the same request id), every event each watcher received (raw
EventService.WatchEvents streams that resume on the next replica from the last id they saw,
written here so the tests depend on no SDK failover), and every attempt's start and end as the
task itself wrote them to a file (the side effects). At the end, `History.check` says what a
user would call broken: an acknowledged submit missing, a task whose result was accepted more
or less than once, two attempts of one task running at the same moment, a task run twice, a
watcher that saw a gap, a repeat or an event out of order."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from support import wait_until

# The task every load runs: a Python callable (cheap: thousands run in seconds on two cores)
# that appends its start and its end to a log, with its task id, attempt and worker pid.
MARKS = '''
import os, time

def mark(log, seconds):
    who = f"{os.environ['JOBPLANE_TASK_ID']} {os.environ['JOBPLANE_ATTEMPT']} {os.getpid()}"
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"start {who} {time.time()}\\n".encode())
        time.sleep(seconds)
        os.write(fd, f"end {who} {time.time()}\\n".encode())
    finally:
        os.close(fd)
'''
MARKS_MODULE = "replica_marks"
TASK_SUCCEEDED, TASK_FAILED = 5, 6
JOB_SUCCEEDED = 3
FINAL_TASK_RAW = {"SUCCEEDED", "FAILED", "CANCELLED"}
EVENT_KIND_TASK = 2
DIGEST_MASK = (1 << 64) - 1


def install_marks(work: Path) -> Path:
    """Write the marking module into `work` (give agents --work-dir `work`); the log's path."""
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{MARKS_MODULE}.py").write_text(MARKS)
    return work / "runs.log"


def marked_job(name: str, tasks: int, log: Path, seconds: float = 0.02) -> dict:
    return {"name": name, "tasks": [{"name": f"t{i}", "python": f"{MARKS_MODULE}:mark",
                                     "args": {"log": str(log), "seconds": seconds}} for i in range(tasks)]}


class Runs:
    """What the tasks did, from the log they append to: per task id, its (attempt, pid) runs."""

    def __init__(self, log: Path) -> None:
        self.starts: dict[str, list[tuple[int, int, float]]] = {}
        self.ends: dict[str, list[tuple[int, int, float]]] = {}
        for line in log.read_text().splitlines() if log.exists() else ():
            what, task, attempt, pid, when = line.split()
            (self.starts if what == "start" else self.ends).setdefault(task, []).append(
                (int(attempt), int(pid), float(when)))

    def started(self) -> int:
        return sum(map(len, self.starts.values()))

    def ended(self) -> int:
        return sum(map(len, self.ends.values()))

    def overlaps(self) -> list[str]:
        """Tasks two of whose runs were under way at one moment (a run with no end runs on)."""
        found = []
        for task, starts in self.starts.items():
            ends = {(a, p): t for a, p, t in self.ends.get(task, [])}
            spans = sorted((t, ends.get((a, p), float("inf"))) for a, p, t in starts)
            if any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])):
                found.append(task)
        return found


# ----- submits ---------------------------------------------------------------------------


@dataclass
class Submit:
    name: str
    tasks: int
    request_id: str
    job_id: str = ""
    error: str = ""
    tries: list[tuple[str, str]] = field(default_factory=list)  # (address, what went wrong)


class Submitter(threading.Thread):
    """Submits `specs` one after another, `pause` seconds apart, each with one request id,
    trying the replicas in turn (from a different one each time) until one acknowledges.
    `credentials`: Client.connect's (token and ca, or insecure)."""

    def __init__(self, addresses: list[str], specs: Iterable[dict], credentials: dict, *, pause: float = 0.0,
                 give_up: float = 90.0) -> None:
        super().__init__(daemon=True, name="submitter")
        self.addresses = addresses
        self.credentials = credentials
        self.specs = list(specs)
        self.pause = pause
        self.give_up = give_up
        self.submits: list[Submit] = []
        self.crashed: BaseException | None = None

    def run(self) -> None:
        from jobplane.client import Client, Retry

        clients = {a: Client.connect(a, **self.credentials, timeout=5, retry=Retry(attempts=1))
                   for a in self.addresses}
        try:
            for n, spec in enumerate(self.specs):
                self.submits.append(self._submit(clients, n, spec))
                time.sleep(self.pause)
        except BaseException as exc:  # reported by check()
            self.crashed = exc
        finally:
            for c in clients.values():
                c.close()

    def _submit(self, clients: dict, n: int, spec: dict) -> Submit:
        from jobplane.client import JobplaneError
        from jobplane.client.retry import retryable

        record = Submit(spec["name"], len(spec["tasks"]), str(uuid.uuid4()))
        deadline = time.monotonic() + self.give_up
        turn = n
        while True:
            address = self.addresses[turn % len(self.addresses)]
            try:
                record.job_id = clients[address].submit_job(spec, request_id=record.request_id).id
                return record
            except JobplaneError as error:
                record.tries.append((address, str(error)))
                if not retryable(error) or time.monotonic() > deadline:
                    record.error = str(error)
                    return record
            turn += 1
            time.sleep(0.1)

    @property
    def acknowledged(self) -> list[Submit]:
        return [s for s in self.submits if s.job_id]


# ----- watchers ----------------------------------------------------------------------------


@dataclass
class Seen:
    """What one watcher saw: ids as they came (checked on the fly), the replicas it used."""

    after: int
    last: int = 0
    count: int = 0
    wrong: list[tuple[int, int]] = field(default_factory=list)  # (the last id before, the id that came)
    replicas: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    digest: int = 0  # of what the events said: compared with the database's events at the end
    events: list[tuple] | None = None  # every event's content, for a recording watcher
    times: list[float] = field(default_factory=list)  # and when each was committed (its batch began)
    sources: list[tuple[str, float]] = field(default_factory=list)  # and which replica sent it, when it came

    def __post_init__(self) -> None:
        self.last = self.after

    def see(self, events, source: str = "") -> None:
        for e in events:
            if e.id != self.last + 1:
                self.wrong.append((self.last, e.id))
            self.last = max(self.last, e.id)
            self.count += 1
            content = (e.id, e.kind, e.job_id, e.task_id, e.raw_status, e.attempt)
            self.digest = (self.digest + hash(content)) & DIGEST_MASK
            if self.events is not None:
                self.events.append(content)
                self.times.append(e.time.seconds + e.time.nanos * 1e-9)
                self.sources.append((source, time.time()))


class Watchers:
    """`count` WatchEvents streams on a loop in a thread of their own, started after event
    `after`, the i-th on `first[i % len(first)]` (default: the replicas in turn). On any error
    or end, a stream resumes on the next replica with after_event_id = the last id it saw.
    Watcher 0 records every event it sees. `credentials`: Client.connect's."""

    def __init__(self, addresses: list[str], count: int, credentials: dict, *, after: int = 0,
                 first: list[str] | None = None, channels: int = 4) -> None:
        from jobplane.client.credentials import Credentials

        self.addresses = addresses
        self._credentials = Credentials.from_options(**credentials)
        self.first = first or addresses
        self.seen = [Seen(after) for _ in range(count)]
        self.seen[0].events = []
        self._channels_each = channels
        self._channels: dict[tuple[str, int], grpc.aio.Channel] = {}
        self._loop = asyncio.new_event_loop()
        self._tasks: list[asyncio.Task] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="watchers")
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)

    async def _start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch(i, s)) for i, s in enumerate(self.seen)]

    def _channel(self, address: str, i: int) -> grpc.aio.Channel:
        key = (address, i % self._channels_each)
        if key not in self._channels:  # a connection of its own, not one shared by every channel
            from jobplane.client.channel import CHANNEL_OPTIONS, open_aio_channel

            self._channels[key] = open_aio_channel(address, self._credentials,
                                                   options=CHANNEL_OPTIONS + [("grpc.use_local_subchannel_pool", 1)])
        return self._channels[key]

    async def _watch(self, i: int, seen: Seen) -> None:
        from jobplane.v1 import event_pb2, event_pb2_grpc

        turn = self.addresses.index(self.first[i % len(self.first)])
        while True:
            address = self.addresses[turn % len(self.addresses)]
            seen.replicas.append(address)
            stub = event_pb2_grpc.EventServiceStub(self._channel(address, i))
            call = stub.WatchEvents(event_pb2.WatchEventsRequest(after_event_id=seen.last))
            try:
                async for response in call:
                    seen.see(response.events, address)
                seen.errors.append(f"{address}: the stream ended")
            except grpc.aio.AioRpcError as error:
                seen.errors.append(f"{address}: {error.code().name} {error.details()}")
            turn += 1
            await asyncio.sleep(0.2)

    def resumed(self) -> int:
        """How many watchers moved to another replica at least once."""
        return sum(len(set(s.replicas)) > 1 for s in self.seen)

    def wait_reached(self, last_id: int, timeout: float) -> None:
        """Until every watcher has seen event `last_id`."""
        wait_until(lambda: min(s.last for s in self.seen) >= last_id, timeout,
                   f"every watcher to reach event {last_id} (the slowest is at {min(s.last for s in self.seen)})",
                   interval=0.1)

    def close(self) -> None:
        async def stop() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for channel in self._channels.values():
                await channel.close()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


# ----- the checker ------------------------------------------------------------------------


def stored_events(db_url: str) -> list[tuple]:
    """Every event in the database, in id order, as a watcher's Seen records it, read straight
    from the database (SQLite or PostgreSQL)."""
    if db_url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    else:
        import psycopg2

        conn = psycopg2.connect(db_url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT id, kind, job, task, raw_status, attempt FROM event ORDER BY id")
        return [(i, k, str(j or ""), str(t or ""), raw, a) for i, k, j, t, raw, a in cur.fetchall()]
    finally:
        conn.close()


def _runs_of(items: list[str]) -> list[str]:
    """`items` without repeats in a row: the replicas a watcher went through, in order."""
    return [x for n, x in enumerate(items) if n == 0 or items[n - 1] != x]


class History:
    """A load's submits, watchers and side-effect log, checked together at the end."""

    def __init__(self, log: Path, submitter: Submitter, watchers: Watchers) -> None:
        self.log = log
        self.submitter = submitter
        self.watchers = watchers

    def wait_done(self, client, timeout: float) -> list:
        """Until every submit is answered and every acknowledged job has ended; the jobs."""
        self.submitter.join(timeout)
        assert not self.submitter.is_alive(), "the submitter is still trying after the timeout"
        wanted = {s.job_id for s in self.submitter.acknowledged}

        def ended():
            jobs = {j.id: j for j in client.list_jobs()}
            if all(j.state >= JOB_SUCCEEDED for i, j in jobs.items() if i in wanted):
                return list(jobs.values())
            return None

        return wait_until(ended, timeout, "every acknowledged job to end", interval=0.5)

    def check(self, client, db_url: str, timeout: float = 60.0) -> list[str]:
        """Everything a user would call broken, as sentences (empty: the history is clean)."""
        jobs = self.wait_done(client, timeout)
        problems = self._submits() + self._jobs(jobs)
        tasks = [t for s in self.submitter.acknowledged for t in client.list_tasks(s.job_id)]
        stored = stored_events(db_url)
        if [e[0] for e in stored] != list(range(1, len(stored) + 1)):
            problems.append(f"the event table's ids are not 1..{len(stored)}: they run {stored[0][0]}..{stored[-1][0]}")
        self.watchers.wait_reached(stored[-1][0], timeout)
        problems += self._watchers(stored)
        problems += self._results(tasks)
        problems += self._runs(tasks)
        return problems

    def _submits(self) -> list[str]:
        out = []
        if self.submitter.crashed:
            out.append(f"the submitter crashed: {self.submitter.crashed!r}")
        out += [f"submit {s.name} was never acknowledged: {s.error} (tries: {s.tries[-3:]})"
                for s in self.submitter.submits if not s.job_id]
        if len(self.submitter.submits) != len(self.submitter.specs):
            out.append(f"only {len(self.submitter.submits)} of {len(self.submitter.specs)} submits were made")
        ids = [s.job_id for s in self.submitter.acknowledged]
        out += [f"job {i} acknowledged for {n} submits" for i, n in Counter(ids).items() if n > 1]
        return out

    def _jobs(self, jobs: list) -> list[str]:
        by_id = {j.id: j for j in jobs}
        out = []
        for s in self.submitter.acknowledged:
            job = by_id.get(s.job_id)
            if job is None:
                out.append(f"acknowledged job {s.job_id} ({s.name}) is missing")
            elif job.spec.name != s.name or job.state != JOB_SUCCEEDED or job.counts.success != s.tasks:
                out.append(f"job {s.job_id} ({s.name}): state {job.state}, {job.counts.success}/{s.tasks} succeeded")
        unasked = set(by_id) - {s.job_id for s in self.submitter.acknowledged}
        if unasked:
            out.append(f"jobs nobody submitted (a submit made twice?): {sorted(unasked)}")
        return out

    def _results(self, tasks: list) -> list[str]:
        """Each task's result accepted exactly once: one final TASK event per task in the log."""
        finals = Counter(e[3] for e in self.watchers.seen[0].events
                         if e[1] == EVENT_KIND_TASK and e[4] in FINAL_TASK_RAW)
        out = [f"task {t.id} ({t.name}) ended {finals[t.id]} times in the event log" for t in tasks
               if finals[t.id] != 1]
        out += [f"task {t.id} is in state {t.state}, not SUCCEEDED" for t in tasks if t.state != TASK_SUCCEEDED]
        return out[:20]

    def _runs(self, tasks: list) -> list[str]:
        runs = Runs(self.log)
        out = [f"attempts of task {t} overlapped: {runs.starts[t]} / {runs.ends.get(t)}" for t in runs.overlaps()]
        for t in tasks:
            started, ended = len(runs.starts.get(t.id, [])), len(runs.ends.get(t.id, []))
            if (started, ended) != (1, 1):
                out.append(f"task {t.id} ({t.name}) started {started} times and ended {ended} times: "
                           f"runs (attempt, pid, time) {runs.starts.get(t.id)} -> {runs.ends.get(t.id)}; "
                           f"its events (id, status, attempt, time) {self._events_of(t.id)}")
        return out[:20]

    @staticmethod
    def _source(seen: Seen, n: int) -> tuple[str, str]:
        """Which replica sent the recording watcher its n-th event, and when it came (to tell a
        leader's announcement from a follower's read of the database, against the faults' times)."""
        if n >= len(seen.sources):
            return "", ""
        address, when = seen.sources[n]
        return address, f"{when:.3f}"

    def _events_of(self, task_id: str) -> list[tuple]:
        seen = self.watchers.seen[0]
        return [(e[0], e[4], e[5], round(when, 3)) for e, when in zip(seen.events, seen.times) if e[3] == task_id]

    def _watchers(self, stored: list[tuple]) -> list[str]:
        """Each watcher saw ids one after another, with no gap or repeat, and each event as the
        database has it (a replica announced nothing it did not commit)."""
        digests = [0]  # digests[n]: of the first n stored events (ids 1..n)
        for content in stored:
            digests.append((digests[-1] + hash(content)) & DIGEST_MASK)
        out = []
        for i, s in enumerate(self.watchers.seen):
            if s.wrong:
                out.append(f"watcher {i} saw ids out of order or missing (last, came): {s.wrong[:5]}; "
                           f"replicas {_runs_of(s.replicas)}, errors {s.errors[-3:]}")
            elif s.last < len(digests) and (digests[s.last] - digests[s.after]) & DIGEST_MASK != s.digest:
                differ = [(e, stored[e[0] - 1], *self._source(s, n)) for n, e in enumerate(s.events or ())
                          if stored[e[0] - 1] != e][:3]
                out.append(f"watcher {i} saw events the database does not hold (seen, stored, sent by, "
                           f"received at): {differ}; replicas {_runs_of(s.replicas)}, errors {s.errors[-3:]}")
        return out[:20]
