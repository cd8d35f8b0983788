"""Lateness on time: how long after its deadline a job is marked LATE_TO_START (not started within
`max_wait`) or RUNNING_LATE (still running past `max_runtime`). Both deadlines are 1 s here.

N jobs of each: first with no agent at all (so none can start), then with one agent running
`sleep` for them. For each job it takes the JOB event with that status and prints, over the N
jobs, the delay from the deadline to the event's time (both stamped by the server: the submit
time or the RUNNING event's time, plus 1 s), p50 and max. A negative delay would be a job
marked late before its deadline (tests/integration/test_status.py checks that it never is).

    python bench/lateness.py [--jobs 20]

Target: every job is marked late within 1 s of its deadline (lateness runs on timers, not on a
coarse poll). Here (2 cores, shared, 20 jobs each): LATE_TO_START p50 2.3 ms, max 4.8 ms;
RUNNING_LATE p50 2.7 ms, max 6.6 ms after the deadline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import AgentProc, ServerProc, wait_until  # noqa: E402

from jobplane.client import Client  # noqa: E402
from jobplane.v1 import event_pb2, status_pb2  # noqa: E402

DEADLINE = 1  # seconds: max_wait and max_runtime of every job


def seconds(stamp) -> float:
    return stamp.ToNanoseconds() / 1e9


def job_event(client: Client, job_id: str, status: int) -> event_pb2.Event:
    """The job's first JOB event with this normalized status."""
    with closing(client.watch(job_id, timeout=60)) as events:
        for event in events:
            if event.kind == event_pb2.EVENT_KIND_JOB and event.status == status:
                return event
    raise RuntimeError(f"job {job_id}: no JOB event with status {status} within 60 s")


def late_to_start(client: Client, jobs: int) -> list[float]:
    """Delays (s) from each job's start deadline to its LATE_TO_START event; no agent runs them."""
    submitted = [client.submit_job({"name": f"late-{i}", "wait_for_providers": True, "max_wait": DEADLINE,
                                    "tasks": [{"name": "t", "command": ["true"]}]}) for i in range(jobs)]
    delays = [seconds(job_event(client, job.id, status_pb2.NORMALIZED_STATUS_LATE_TO_START).time)
              - (seconds(job.submit_time) + DEADLINE) for job in submitted]
    for job in submitted:
        client.cancel_job(job.id)
    return delays


def running_late(client: Client, jobs: int) -> list[float]:
    """Delays (s) from each job's runtime deadline (its RUNNING event + 1 s) to its RUNNING_LATE event."""
    submitted = [client.submit_job({"name": f"slow-{i}", "max_runtime": DEADLINE,
                                    "tasks": [{"name": "t", "command": ["sleep", "60"]}]}) for i in range(jobs)]
    delays = []
    for job in submitted:
        started = job_event(client, job.id, status_pb2.NORMALIZED_STATUS_RUNNING)
        late = job_event(client, job.id, status_pb2.NORMALIZED_STATUS_RUNNING_LATE)
        delays.append(seconds(late.time) - (seconds(started.time) + DEADLINE))
    for job in submitted:
        client.cancel_job(job.id)
    return delays


def show(what: str, delays: list[float]) -> None:
    print(f"{what:14}: {len(delays)} jobs, marked late after the deadline by p50 "
          f"{statistics.median(delays) * 1000:6.1f} ms, max {max(delays) * 1000:6.1f} ms, "
          f"min {min(delays) * 1000:6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = ServerProc(work, f"sqlite:///{work / 'bench.db'}", extra=["--submit-rate", str(max(50, 2 * a.jobs))])
        agent = None
        client = server.client()
        try:
            show("LATE_TO_START", late_to_start(client, a.jobs))
            agent = AgentProc(work, server, "a1", slots=a.jobs)
            wait_until(lambda: [p.state for p in client.list_providers()] == [1], 30, "the agent")
            show("RUNNING_LATE", running_late(client, a.jobs))
        finally:
            client.close()
            if agent is not None:
                agent.stop()
            server.stop()


if __name__ == "__main__":
    main()
