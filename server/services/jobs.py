"""JobService: submit, get, list, cancel, and the event stream."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import re
import time


from jobplane.v1 import job_pb2, job_pb2_grpc
from jobplane.v1.view_pb2 import VIEW_RESOURCE_JOBS as VIEW_JOBS

from ..domain.extract import extract_tasks
from ..domain.lateness import clock
from ..domain.limits import MAX_SPEC_BYTES, check_text
from ..domain.model import EventKind, JobSpec
from ..domain.query import Term, parse_filter
from ..domain.requests import PriorJob, RequestKey
from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..security.policy import current_caller
from . import convert
from .base import Converted, Deps, page_size, rpc, status_code, visible_owner
from .event_filters import EVENT_FIELDS, EventFilter
from .spec_fields import hold_mode
from .watch import stream_events

UUID_FORM = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
UUID_EXAMPLE = "3c1d0a4e-8f7b-4d2a-9e61-0b5f2a7c9d13"
CALL_ID_MAX = 64  # SubmitJobRequest.call_id, at most (job.request_call's width)
CLOCK_SKEW = 60.0  # seconds a client's "now" may run ahead of the server's


class JobService(job_pb2_grpc.JobServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self._requests_loaded: asyncio.Future | None = None
        self._requests_core = None  # the core (one per leadership term) whose engine has them

    @rpc
    async def SubmitJob(self, request, context):
        if not request.HasField("spec"):
            raise InvalidArgument("spec", "missing; send the job spec to run")
        request_id = parse_request_id(request.request_id)
        call_id = parse_call_id(request.call_id)
        spec, drafts, key = await asyncio.to_thread(prepare_submit, request.spec, request_id, self.d.config, call_id)
        caller = current_caller.get()
        owner = "" if caller.method == "insecure" else caller.identity
        if key is not None:
            await self._load_requests()
        job = await self.d.core.call(lambda engine: engine.submit(spec, drafts, owner, key))
        # A repeated request: the job it made, whose spec is this one (the same bytes). The tasks
        # come from the spec at hand, not read back and decoded again.
        return job_pb2.SubmitJobResponse(job=await self._job(job.id, spec=spec),
                                         already_submitted=isinstance(job, PriorJob) and not job.made_by(key))

    async def _load_requests(self) -> None:
        """Before the first submit with a request id, the engine learns the ids of the jobs
        submitted within the TTL (before a restart too). Once; concurrent submits wait for it."""
        if self._requests_core is not self.d.core:  # a new term's engine knows none yet
            self._requests_core, self._requests_loaded = self.d.core, None
        if self._requests_loaded is None:
            self._requests_loaded = asyncio.ensure_future(self._read_requests())
        try:
            await asyncio.shield(self._requests_loaded)
        except Exception:
            self._requests_loaded = None  # the next submit tries again
            raise

    async def _read_requests(self) -> None:
        ttl = self.d.config.request_id_ttl
        rows = await self.d.read(self.d.reads.recent_requests, time.time() - ttl)
        await self.d.core.call(lambda engine: engine.requests.load(rows, ttl, engine.now))

    @rpc
    async def GetJob(self, request, context):
        job_id = convert.parse_id("job_id", request.job_id, "job")
        return job_pb2.GetJobResponse(job=await self._job(job_id, tasks=not request.summary))

    @rpc
    async def ListJobs(self, request, context):
        size = page_size(request.page_size)
        filter_text, order_text = await self.d.views.resolve(request.view, VIEW_JOBS, request.filter, request.order_by)
        status_of = self.d.status_of()
        jobs = Converted(lambda view: convert.job_to_proto(view, status_of, tasks=request.full))
        page = await self.d.read(functools.partial(
            self.d.reads.list_jobs, filter_text, order_text, request.page_token, size, owner=visible_owner(),
            status_of=status_of, measure=jobs.size, max_bytes=self.d.page_bytes, tasks=request.full))
        return job_pb2.ListJobsResponse(jobs=jobs.messages(page.items), next_page_token=page.next_page_token)

    @rpc
    async def SummarizeJobs(self, request, context):
        filter_text, _ = await self.d.views.resolve(request.view, VIEW_JOBS, request.filter, "")
        counts = await self.d.read(functools.partial(self.d.reads.job_counts, filter_text, owner=visible_owner(),
                                                     status_of=self.d.status_of()))
        return job_pb2.SummarizeJobsResponse(counts=[job_pb2.StatusCount(status=s, count=n) for s, n in counts],
                                             total=sum(n for _, n in counts))


    @rpc
    async def CancelJob(self, request, context):
        job_id = convert.parse_id("job_id", request.job_id, "job")
        check_text("reason", request.reason)
        await self._job(job_id)
        await self.d.core.call(lambda engine: engine.cancel_job(job_id, request.reason))
        return job_pb2.CancelJobResponse(job=await self._job(job_id))

    @rpc
    async def HoldJob(self, request, context):
        job_id = convert.parse_id("job_id", request.job_id, "job")
        check_text("reason", request.reason)
        mode = hold_mode("mode", request.mode)
        await self._job(job_id)
        by = current_caller.get().identity
        await self.d.core.call(lambda engine: engine.hold_job(job_id, request.reason.strip(), by, mode))
        return job_pb2.HoldJobResponse(job=await self._job(job_id))

    @rpc
    async def ReleaseJob(self, request, context):
        job_id = convert.parse_id("job_id", request.job_id, "job")
        await self._job(job_id)
        await self.d.core.call(lambda engine: engine.release_job(job_id))
        return job_pb2.ReleaseJobResponse(job=await self._job(job_id))

    @rpc
    async def RerunJob(self, request, context):
        job_id = convert.parse_id("job_id", request.job_id, "job")
        by = current_caller.get().identity
        rerun = await self.d.finished.rerun(self.d.core, job_id, visible_owner(), request.failed_only, by)
        return job_pb2.RerunJobResponse(job=await self._job(job_id), task_ids=[str(t) for t in rerun])

    @rpc
    async def PurgeJobs(self, request, context):
        before = purge_before(request)
        purged = await self.d.finished.purge(lambda: self.d.core, before)
        return job_pb2.PurgeJobsResponse(purged_count=purged)

    async def _job(self, job_id: int, *, tasks: bool = True, spec: JobSpec | None = None) -> job_pb2.Job:
        """The job as the caller may see it; `tasks`: False leaves the spec's tasks out; `spec`:
        its whole spec, known already (the tasks are then not read)."""
        view = await self.d.read(self.d.reads.get_job, job_id, visible_owner(), tasks and spec is None)
        if view is None:
            raise NotFound.job(job_id)
        if spec is not None:
            view = dataclasses.replace(view, spec=spec)
        return convert.job_to_proto(view, self.d.status_of(), tasks=tasks)

    async def WatchEvents(self, request, context):
        job_id = None
        try:
            if request.job_id:
                job_id = convert.parse_id("job_id", request.job_id, "job")
                if not await self.d.read(self.d.reads.has_job, job_id, visible_owner()):  # no spec to decode
                    raise NotFound.job(job_id)
            elif not current_caller.get().sees_all_jobs():
                raise PermissionDenied("watching every job's events needs the role viewer or above; "
                                       "pass the id of one of your jobs")
            if request.after_event_id < 0:
                raise InvalidArgument("after_event_id", "must be >= 0 (0 = from the beginning)")
            wanted = await self._event_filter(request)
        except (InvalidArgument, NotFound, PermissionDenied) as exc:
            await context.abort(status_code(exc), str(exc))
        keep = None if wanted is None else functools.partial(self._keep, wanted)
        kind = None if wanted is None else wanted.kind()
        # Closed with this handler (the interceptor acloses it), not a loop turn later by the
        # event loop's finalizer hook, or by the collector if it is ever caught in a cycle.
        async with contextlib.aclosing(stream_events(self.d, context, request.after_event_id, job_id=job_id,
                                                     kind=kind, keep=keep)) as frames:
            async for frame in frames:
                yield frame  # a serialized WatchEventsResponse

    async def _keep(self, wanted: EventFilter, events: list) -> list:
        """The events a filtered watcher sees, its jobs' facts read once each."""
        asked = wanted.missing_jobs(events)
        if asked:
            wanted.learn(await self.d.read(self.d.reads.job_facts, asked), asked)
        return wanted.keep(events)

    async def _event_filter(self, request) -> EventFilter | None:
        """The watcher's filter (its own terms and its view's), or None to pass every event."""
        names_tasks = False
        text = request.filter
        if request.view:
            row = await self.d.views.get(request.view)
            names_tasks = row.resource != VIEW_JOBS
            try:
                view_terms = parse_filter(row.filter, EVENT_FIELDS, time.time())
            except InvalidArgument as exc:
                raise InvalidArgument("view", f"{request.view!r} cannot filter events: {exc.problem}") from None
            kind = EventKind.TASK if names_tasks else EventKind.JOB  # a view of jobs watches their job events
            view_terms.append(Term("type", "=", (int(kind),), 0))
        else:
            view_terms = []
        terms = view_terms + parse_filter(text, EVENT_FIELDS, time.time())
        return EventFilter(terms, names_tasks) if terms else None


def purge_before(request: job_pb2.PurgeJobsRequest) -> float:
    """PurgeJobsRequest.finished_before as Unix seconds: required, and at most now (a minute's
    skew between clocks allowed), so a mistyped year cannot purge every job."""
    if not request.HasField("finished_before"):
        raise InvalidArgument("finished_before", "missing; pass the time before which finished jobs are purged, "
                              "e.g. 2026-01-31T00:00:00Z (`jobplane jobs purge --before 2026-01-31`)")
    before = convert.when("finished_before", request.finished_before)
    now = time.time()
    if before > now + CLOCK_SKEW:
        raise InvalidArgument("finished_before", f"{clock(before)} is in the future; pass a time up to now "
                              "(now purges every finished job)")
    return min(before, now)


def prepare(spec_message: job_pb2.JobSpec, cfg) -> tuple:
    """The spec and its extracted tasks, validated (both O(tasks): run it off the event loop)."""
    size = spec_message.ByteSize()
    if size > MAX_SPEC_BYTES:
        raise InvalidArgument("spec", f"is {size} bytes; a job spec may have at most {MAX_SPEC_BYTES}: "
                                      "split the work over several jobs, or pass large inputs in files")
    spec = convert.job_spec_from_proto(spec_message)
    return spec, extract_tasks(spec, max_tasks=cfg.max_tasks_per_job, default_max_attempts=cfg.default_max_attempts)


def parse_request_id(value: str) -> str:
    """SubmitJobRequest.request_id in its canonical (lower-case) form; "" when there is none."""
    if len(value) > len(UUID_EXAMPLE):
        raise InvalidArgument("request_id", f"{len(value)} characters long; a request id is a UUID of 36 "
                              f"characters like {UUID_EXAMPLE} (e.g. str(uuid.uuid4()))")
    if value and not UUID_FORM.fullmatch(value):
        raise InvalidArgument("request_id", f"{value!r} is not a UUID; send one like {UUID_EXAMPLE} "
                              "(e.g. str(uuid.uuid4())), the same one on every retry of the submit")
    return value.lower()


def parse_call_id(value: str) -> str:
    """SubmitJobRequest.call_id, checked: any text of at most CALL_ID_MAX characters."""
    if len(value) > CALL_ID_MAX:
        raise InvalidArgument("call_id", f"{len(value)} characters long; at most {CALL_ID_MAX} (a fresh UUID "
                              "per call, e.g. str(uuid.uuid4()), the same on each of its retries)")
    return value


def prepare_submit(spec_message: job_pb2.JobSpec, request_id: str, cfg, call_id: str = "") -> tuple:
    """`prepare`, and the submit's RequestKey (None without a request id): two submits are the
    same request when their specs serialize to the same bytes (add any future field of
    SubmitJobRequest that changes what is made to the digest; not `call_id`, which tells the
    retries of one call from other submits of the request)."""
    spec, drafts = prepare(spec_message, cfg)
    if not request_id:
        return spec, drafts, None
    digest = hashlib.sha256(spec_message.SerializeToString(deterministic=True)).hexdigest()
    return spec, drafts, RequestKey(request_id, digest, call_id)
