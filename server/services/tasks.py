"""TaskService: a job's tasks and their attempts."""

from __future__ import annotations

import contextlib
import functools

from jobplane.v1 import task_pb2, task_pb2_grpc
from jobplane.v1.view_pb2 import VIEW_RESOURCE_TASKS as VIEW_TASKS

from ..errors import JobplaneError, NotFound, details
from . import convert
from .base import Converted, Deps, check_no_nul, page_size, rpc, status_code, visible_owner
from .logs import stream_logs


class TaskService(task_pb2_grpc.TaskServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    @rpc
    async def ListTasks(self, request, context):
        size = page_size(request.page_size)
        filter_text, order_text = await self.d.views.resolve(request.view, VIEW_TASKS, request.filter, request.order_by)
        job_id = await self._job_scope(request.job_id)
        status_of = self.d.status_of()
        default = self.d.default_policy
        class_of = self.d.class_of()
        tasks = Converted(lambda view: convert.task_to_proto(view, status_of, default, class_of))
        page = await self.d.read(functools.partial(
            self.d.reads.list_tasks, filter_text, order_text, request.page_token, size, job_id=job_id,
            owner=visible_owner(), status_of=status_of, measure=tasks.size, max_bytes=self.d.page_bytes))
        return task_pb2.ListTasksResponse(tasks=tasks.messages(page.items), next_page_token=page.next_page_token)

    async def _job_scope(self, job_id_text: str) -> int | None:
        """The one job whose tasks are listed (it must be one the caller may see), or None: all."""
        if not job_id_text:
            return None
        job_id = convert.parse_id("job_id", job_id_text, "job")
        if not await self.d.read(self.d.reads.has_job, job_id, visible_owner()):
            raise NotFound.job(job_id)
        return job_id

    @rpc
    async def GetTask(self, request, context):
        task_id = convert.parse_id("task_id", request.task_id, "task")
        view = await self.d.read(self.d.reads.get_task, task_id, visible_owner())
        if view is None:
            raise NotFound(f"task {task_id} not found; `jobplane tasks list JOB` shows a job's tasks")
        return task_pb2.GetTaskResponse(task=convert.task_to_proto(view, self.d.status_of(), self.d.default_policy,
                                                                   self.d.class_of()))

    async def StreamLogs(self, request, context):
        providers = self.d.agent_links
        try:
            check_no_nul(request)
            # Closed with this handler: the agent is told to stop sending at once (see JobService.WatchEvents).
            async with contextlib.aclosing(stream_logs(self.d, providers.logs, providers.link, request)) as chunks:
                async for response in chunks:
                    yield response
        except JobplaneError as exc:
            await context.abort(status_code(exc), details(exc))
