"""JobService: submit, get, list, cancel, and the event stream."""

from __future__ import annotations

import asyncio


from jobplane.v1 import job_pb2, job_pb2_grpc

from ..domain.extract import extract_tasks
from ..domain.filters import parse_filter
from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..security.policy import current_caller
from ..store.models import JobRow
from ..store.queries import JOB_COLUMNS, JOB_FILTER_KEYS, where
from . import convert
from .base import Deps, decode_token, encode_token, may_see, page_size, rpc, status_code
from .watch import stream_events


class JobService(job_pb2_grpc.JobServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    @rpc
    async def SubmitJob(self, request, context):
        if not request.HasField("spec"):
            raise InvalidArgument("spec", "missing; send the job spec to run")
        spec, drafts = await asyncio.to_thread(self._prepare, request.spec)
        caller = current_caller.get()
        owner = "" if caller.method == "insecure" else caller.identity
        job = await self.d.core.call(lambda engine: engine.submit(spec, drafts, owner))
        return job_pb2.SubmitJobResponse(job=await self._job(job.id))

    @rpc
    async def GetJob(self, request, context):
        return job_pb2.GetJobResponse(job=await self._job(convert.parse_id("job_id", request.job_id, "job")))

    @rpc
    async def ListJobs(self, request, context):
        size = page_size(request.page_size)
        before = decode_token(request.page_token)
        cond = self._visible(where(parse_filter(request.filter, JOB_FILTER_KEYS), JOB_COLUMNS))

        def page():  # on a reader thread: decoding specs is O(tasks)
            rows = self.d.store.list_jobs(cond, before, size + 1)
            token = encode_token(rows[size - 1].id) if len(rows) > size else ""
            return job_pb2.ListJobsResponse(jobs=[convert.job_to_proto(r) for r in rows[:size]], next_page_token=token)

        return await self.d.read(page)

    @rpc
    async def SummarizeJobs(self, request, context):
        cond = self._visible(where(parse_filter(request.filter, JOB_FILTER_KEYS), JOB_COLUMNS))
        counts = await self.d.read(self.d.store.job_status_counts, cond)
        return job_pb2.SummarizeJobsResponse(counts=[job_pb2.StatusCount(status=s, count=n) for s, n in counts],
                                             total=sum(n for _, n in counts))

    @staticmethod
    def _visible(cond):
        """Tenancy: a submitter's queries see only its own jobs."""
        caller = current_caller.get()
        if caller.sees_all_jobs():
            return cond
        mine = JobRow.owner == caller.identity
        return mine if cond is None else cond & mine

    @rpc
    async def CancelJob(self, request, context):
        job_id = convert.parse_id("job_id", request.job_id, "job")
        await self._job(job_id)
        await self.d.core.call(lambda engine: engine.cancel_job(job_id, request.reason))
        return job_pb2.CancelJobResponse(job=await self._job(job_id))

    def _prepare(self, spec_message: job_pb2.JobSpec):
        """Off the event loop: the spec and its extracted tasks (both O(tasks))."""
        spec = convert.job_spec_from_proto(spec_message)
        cfg = self.d.config
        return spec, extract_tasks(spec, max_tasks=cfg.max_tasks_per_job, default_max_attempts=cfg.default_max_attempts)

    async def _job(self, job_id: int) -> job_pb2.Job:
        def get():
            row = self.d.store.get_job(job_id)
            return None if row is None else convert.job_to_proto(row)

        job = await self.d.read(get)
        if job is None or not may_see(job.owner):
            raise NotFound(f"job {job_id} not found; `jobplane jobs list` shows the jobs there are")
        return job

    async def WatchEvents(self, request, context):
        job_id = None
        try:
            if request.job_id:
                job_id = convert.parse_id("job_id", request.job_id, "job")
                await self._job(job_id)
            elif not current_caller.get().sees_all_jobs():
                raise PermissionDenied("watching every job's events needs the role viewer or above; "
                                       "pass the id of one of your jobs")
            if request.after_event_id < 0:
                raise InvalidArgument("after_event_id", "must be >= 0 (0 = from the beginning)")
        except (InvalidArgument, NotFound, PermissionDenied) as exc:
            await context.abort(status_code(exc), str(exc))
        async for frame in stream_events(self.d, context, request.after_event_id, job_id=job_id):
            yield frame  # a serialized WatchEventsResponse
