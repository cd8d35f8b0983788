"""Read latency: a server holding N queued jobs (2 tasks each, no agent) answers List and Get
calls; prints the median and 95th percentile of each, in milliseconds, measured at the client.

    python bench/reads.py [--jobs 3000] [--rounds 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import ServerProc, admin_channel  # noqa: E402

from jobplane.v1 import job_pb2, job_pb2_grpc, task_pb2, task_pb2_grpc  # noqa: E402


def spec(i: int) -> dict:
    return {"name": f"job-{i:05d}", "priority": i % 7, "wait_for_providers": True,
            "labels": {"team": ("etl", "web", "ml")[i % 3]},
            "tasks": [{"name": "a", "command": ["true"]}, {"name": "b", "command": ["true"], "after": ["a"]}]}


def timed(call, rounds: int) -> tuple[float, float]:
    call()  # warm
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=40)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = ServerProc(work, f"sqlite:///{work / 'bench.db'}", insecure=True,
                            extra=["--submit-rate", "100000"])
        client = server.client()
        try:
            with ThreadPoolExecutor(8) as pool:
                ids = list(pool.map(lambda i: client.submit_job(spec(i)).id, range(a.jobs)))
            channel = admin_channel(server)
            jobs, tasks = job_pb2_grpc.JobServiceStub(channel), task_pb2_grpc.TaskServiceStub(channel)
            some_job = ids[len(ids) // 2]
            some_task = tasks.ListTasks(task_pb2.ListTasksRequest(job_id=some_job)).tasks[0].id
            calls = {
                "ListJobs (100, newest first)": lambda: jobs.ListJobs(job_pb2.ListJobsRequest(page_size=100)),
                "ListJobs status=WAITING name=job-01*": lambda: jobs.ListJobs(job_pb2.ListJobsRequest(
                    filter="status=WAITING name=job-01*")),
                "ListJobs label.team=ml (in memory)": lambda: jobs.ListJobs(job_pb2.ListJobsRequest(
                    filter="label.team=ml")),
                "ListJobs order_by=-priority,name": lambda: jobs.ListJobs(job_pb2.ListJobsRequest(
                    order_by="-priority,name")),
                "SummarizeJobs": lambda: jobs.SummarizeJobs(job_pb2.SummarizeJobsRequest()),
                "GetJob": lambda: jobs.GetJob(job_pb2.GetJobRequest(job_id=some_job)),
                "ListTasks (100, all jobs)": lambda: tasks.ListTasks(task_pb2.ListTasksRequest(page_size=100)),
                "ListTasks name=b label.team=etl": lambda: tasks.ListTasks(task_pb2.ListTasksRequest(
                    filter="name=b label.team=etl")),
                "GetTask": lambda: tasks.GetTask(task_pb2.GetTaskRequest(task_id=some_task)),
            }
            print(f"{a.jobs} queued jobs x 2 tasks, SQLite; {a.rounds} calls each (ms at the client)")
            for name, call in calls.items():
                median, p95 = timed(call, a.rounds)
                print(f"{name:40s} median {median:7.2f}   p95 {p95:7.2f}")
            channel.close()
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
