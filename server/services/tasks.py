"""TaskService: a job's tasks and their attempts."""

from __future__ import annotations

import time

from jobplane.v1 import task_pb2, task_pb2_grpc
from jobplane.v1.view_pb2 import VIEW_RESOURCE_TASKS as VIEW_TASKS

from ..errors import NotFound
from ..security.policy import current_caller
from ..store.models import TaskRow
from ..store.queries import conjunction, visible_tasks
from . import convert, listing
from .base import Deps, may_see, page_size, rpc


class TaskService(task_pb2_grpc.TaskServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    @rpc
    async def ListTasks(self, request, context):
        size = page_size(request.page_size)
        filter_text, order_text = await self.d.views.resolve(request.view, VIEW_TASKS, request.filter, request.order_by)
        status_of = self.d.policies.status_of(current_caller.get()) if self.d.policies is not None else None
        query = listing.task_query(filter_text, order_text, time.time(), status_of is not None)
        query.sql = conjunction([query.sql, await self._scope(request.job_id)])
        jobs: dict[int, object] = {}
        wants_jobs = any(k == "owner" or k.startswith("label.") for k in [t.key for t in query.rest] +
                         [k for k, _ in query.order])

        def fetch(cond, after, offset, limit, order):
            return self.d.store.scan_tasks(cond, after, offset, limit, order)

        def to_messages(rows):
            attempts = self.d.store.attempts_of([r.id for r in rows])
            if wants_jobs:
                jobs.update(self.d.store.jobs_by_id(sorted({r.job for r in rows} - set(jobs))))
            return [convert.task_to_proto(r, attempts[r.id], status_of) for r in rows]

        source = listing.Source(fetch, to_messages, lambda m, key: listing.task_value(m, key, jobs.get(int(m.job_id))))
        tasks, token = await self.d.read(listing.page, source, query, request.page_token, size, self.d.page_bytes)
        return task_pb2.ListTasksResponse(tasks=tasks, next_page_token=token)

    async def _scope(self, job_id_text: str):
        """One visible job's tasks, or the tasks of every job the caller may see."""
        if job_id_text:
            job_id = convert.parse_id("job_id", job_id_text, "job")
            job = await self.d.read(self.d.store.get_job, job_id)
            if job is None or not may_see(job.owner):
                raise NotFound(f"job {job_id} not found; `jobplane jobs list` shows the jobs there are")
            return TaskRow.job == job_id
        caller = current_caller.get()
        if caller.sees_all_jobs():
            return None
        return visible_tasks(caller.identity)

    @rpc
    async def GetTask(self, request, context):
        task_id = convert.parse_id("task_id", request.task_id, "task")

        status_of = self.d.policies.status_of(current_caller.get()) if self.d.policies is not None else None

        def get():  # on a reader thread: the task with its attempts, and its job's owner, in one go
            row = self.d.store.get_task(task_id)
            job = self.d.store.get_job(row.job) if row is not None else None
            if job is None:
                return None, None
            return job.owner, convert.task_to_proto(row, self.d.store.attempts_of([task_id])[task_id], status_of)

        owner, task = await self.d.read(get)
        if task is None or not may_see(owner):
            raise NotFound(f"task {task_id} not found; `jobplane tasks list JOB` shows a job's tasks")
        return task_pb2.GetTaskResponse(task=task)
