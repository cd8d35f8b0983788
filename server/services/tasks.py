"""TaskService: a job's tasks and their attempts."""

from __future__ import annotations

from jobplane.v1 import task_pb2, task_pb2_grpc

from ..domain.filters import parse_filter
from ..errors import NotFound
from ..store.queries import TASK_COLUMNS, TASK_FILTER_KEYS, where
from . import convert
from .base import Deps, decode_token, encode_token, may_see, page_size, rpc



class TaskService(task_pb2_grpc.TaskServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    @rpc
    async def ListTasks(self, request, context):
        job_id = convert.parse_id("job_id", request.job_id, "job")
        size = page_size(request.page_size)
        after = decode_token(request.page_token)
        cond = where(parse_filter(request.filter, TASK_FILTER_KEYS), TASK_COLUMNS)
        job = await self.d.read(self.d.store.get_job, job_id)
        if job is None or not may_see(job.owner):
            raise NotFound(f"job {job_id} not found; `jobplane jobs list` shows the jobs there are")

        def page():  # on a reader thread, conversion included
            rows = self.d.store.list_tasks(job_id, cond, after, size + 1)
            token = encode_token(rows[size - 1].id) if len(rows) > size else ""
            rows = rows[:size]
            attempts = self.d.store.attempts_of([r.id for r in rows])
            return task_pb2.ListTasksResponse(
                tasks=[convert.task_to_proto(r, attempts[r.id]) for r in rows], next_page_token=token)

        return await self.d.read(page)

    @rpc
    async def GetTask(self, request, context):
        task_id = convert.parse_id("task_id", request.task_id, "task")

        def get():  # on a reader thread: the task with its attempts, and its job's owner, in one go
            row = self.d.store.get_task(task_id)
            job = self.d.store.get_job(row.job) if row is not None else None
            if job is None:
                return None, None
            return job.owner, convert.task_to_proto(row, self.d.store.attempts_of([task_id])[task_id])

        owner, task = await self.d.read(get)
        if task is None or not may_see(owner):
            raise NotFound(f"task {task_id} not found; `jobplane tasks list JOB` shows a job's tasks")
        return task_pb2.GetTaskResponse(task=task)
