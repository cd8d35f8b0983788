"""The server's own per-task work without gRPC or the event loop: the engine, staging and the
SQLite commit (synchronous=FULL, the real schema), driven in one thread as the core drives them.
A job of N Python no-ops is submitted (parsed from its message as SubmitJob parses it), then
each round takes what K simulated agents of S slots reported (a STARTED and a FINISHED per task,
converted from their messages as the server converts them), dispatches, stages and commits,
and builds the assignment messages. Prints thread CPU per task by phase: a steadier figure than
a whole server's under a shared machine's load, for comparing trees (run it with each tree's
.venv Python, alternating).

    python bench/engine_store.py [--tasks 10000] [--agents 2] [--slots 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.model import Hello
from jobplane.server.services import convert
from jobplane.server.services.jobs import prepare
from jobplane.server.store.db import open_database
from jobplane.server.store.repo import Store
from jobplane.v1 import job_pb2
from jobplane.v1 import provider_pb2 as pb

PHASES = ("submit", "engine", "stage", "commit", "messages")


class _Limits:
    max_tasks_per_job = 1_000_000
    default_max_attempts = 1


def one(tasks: int, agents: int, slots: int) -> dict[str, float]:
    """Thread CPU ms per task by phase, for one job of `tasks` no-ops."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(open_database(f"sqlite:///{tmp}/bench.db"))
        store.create_schema()
        engine = Engine(EngineConfig(reconnect_grace=1.0))
        engine.begin(time.time())
        for i in range(agents):
            engine.connect(Hello(f"a{i}", {}, {}, slots, 1.0, ()), conn_id=i + 1)
            engine.ready_signal(f"a{i}", i + 1)
        store.apply(engine.take_changes())
        gc.collect()
        gc.freeze()  # as the server does after start-up
        spent = dict.fromkeys(PHASES, 0.0)
        message = job_pb2.JobSpec(name="bench", tasks=[job_pb2.TaskSpec(name=f"t{i}", python="jobplane.examples.funcs:noop")
                                                       for i in range(tasks)])
        t0 = time.thread_time()
        spec, drafts = prepare(message, _Limits)
        engine.begin(time.time())
        job = engine.submit(spec, drafts)
        spent["submit"] += time.thread_time() - t0
        finished = pb.AttemptFinished(outcome=pb.ATTEMPT_OUTCOME_SUCCEEDED, result_json="null", raw={"state": "returned"})
        inbox: list[tuple[str, bytes]] = []
        while job.id in engine.jobs:
            t0 = time.thread_time()
            engine.begin(time.time())
            for provider, data in inbox:
                got = pb.TaskReports.FromString(data)
                reports = [r for r in map(convert.report_from_proto, got.reports) if r is not None]
                engine.report(provider, int(provider[1:]) + 1, reports)
            inbox = []
            cs = engine.take_changes()
            t1 = time.thread_time()
            staged = store.stage(cs)
            t2 = time.thread_time()
            store.write(staged)
            t3 = time.thread_time()
            for provider, items in cs.assignments.items():
                out = pb.Assignments()
                for a in items:
                    convert.add_assignment(out, a.task, a.attempt)
                out.SerializeToString()
                inbox.append((provider, _agent_reply(out, finished)))
            t4 = time.thread_time()
            for phase, seconds in zip(PHASES[1:], (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                spent[phase] += seconds
        store.close()
        gc.unfreeze()
    return {phase: 1000 * seconds / tasks for phase, seconds in spent.items()}


def _agent_reply(assignments: pb.Assignments, finished: pb.AttemptFinished) -> bytes:
    """What an agent sends for these no-ops: each one's start and end, in one message."""
    reports = []
    for a in assignments.assignments:
        reports.append(pb.TaskReport(task_id=a.task_id, attempt=a.attempt, started=pb.AttemptStarted()))
        reports.append(pb.TaskReport(task_id=a.task_id, attempt=a.attempt, finished=finished))
    return pb.TaskReports(reports=reports).SerializeToString()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    runs = []
    for _ in range(a.rounds):
        runs.append(one(a.tasks, a.agents, a.slots))
        print(_line(runs[-1]), flush=True)
    print("median:", _line({phase: statistics.median(r[phase] for r in runs) for phase in PHASES}))


def _line(r: dict[str, float]) -> str:
    return f"{sum(r.values()):.4f} ms/task: " + "  ".join(f"{phase} {r[phase]:.4f}" for phase in PHASES)


if __name__ == "__main__":
    main()
