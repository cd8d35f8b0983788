"""ScheduleService: recurring jobs (create, get, list, pause, resume, run now, delete). Changes
go through the engine (domain/schedules.py); reads come from the database, so followers answer
them too. Submitters create and manage their own schedules; operators and admins any."""

from __future__ import annotations

import asyncio

from jobplane.v1 import schedule_pb2, schedule_pb2_grpc

from ..domain.query import page_of
from ..domain.schedules import Schedule, check_schedule
from ..errors import InvalidArgument, NotFound
from ..security.policy import current_caller
from ..store.schedules import ScheduleStore, ScheduleView
from . import convert
from .base import Deps, page_size, rpc, visible_owner
from .jobs import prepare

OVERLAP_NAMES = {schedule_pb2.OVERLAP_SKIP: "skip", schedule_pb2.OVERLAP_QUEUE: "queue",
                 schedule_pb2.OVERLAP_ALLOW: "allow"}
OVERLAP_ENUMS = {name: value for value, name in OVERLAP_NAMES.items()}


def schedule_from_proto(m: schedule_pb2.Schedule, cfg, owner: str) -> Schedule:
    """A new schedule from a request, every field checked (run it off the event loop: the job
    spec's tasks are extracted to check them)."""
    if not m.HasField("job"):
        raise InvalidArgument("schedule.job", "missing; send the job spec each run submits")
    if m.overlap and m.overlap not in OVERLAP_NAMES:
        raise InvalidArgument("schedule.overlap", f"{m.overlap} is not an Overlap; use SKIP, QUEUE or ALLOW")
    try:
        spec, _ = prepare(m.job, cfg)
    except InvalidArgument as exc:  # the job's fields are under schedule.job here, not spec
        field = exc.field.replace("spec", "schedule.job", 1) if exc.field.startswith("spec") else exc.field
        raise InvalidArgument(field, exc.problem) from None
    return check_schedule(Schedule(0, m.name.strip() or spec.name, m.cron.strip(), m.time_zone or cfg.timezone,
                                   OVERLAP_NAMES.get(m.overlap, "skip"), m.catch_up, spec, owner=owner))


def schedule_to_proto(view: ScheduleView) -> schedule_pb2.Schedule:
    s = view.schedule
    return schedule_pb2.Schedule(
        id=str(s.id), name=s.name, cron=s.cron, time_zone=s.time_zone, overlap=OVERLAP_ENUMS[s.overlap],
        catch_up=s.catch_up, job=convert.job_spec_to_proto(s.spec, True), paused=s.paused, status=view.status,
        next_run_time=None if s.paused else convert.ts(view.next_due), last_run_time=convert.ts(s.last_due or None),
        last_job_id=str(s.last_job_id) if s.last_job_id else "", queued=s.queued, owner=s.owner,
        create_time=convert.ts(s.create_time))


class ScheduleService(schedule_pb2_grpc.ScheduleServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self.store = ScheduleStore(deps.reads.db)

    @rpc
    async def CreateSchedule(self, request, context):
        if not request.HasField("schedule"):
            raise InvalidArgument("schedule", "missing; send the schedule (cron, job, and optionally time_zone, "
                                  "overlap, catch_up)")
        caller = current_caller.get()
        owner = "" if caller.method == "insecure" else caller.identity
        schedule = await asyncio.to_thread(schedule_from_proto, request.schedule, self.d.config, owner)
        made = await self.d.core.call(lambda engine: engine.create_schedule(schedule))
        return schedule_pb2.CreateScheduleResponse(schedule=await self._get(made.id))

    @rpc
    async def GetSchedule(self, request, context):
        return schedule_pb2.GetScheduleResponse(schedule=await self._get(self._id(request)))

    @rpc
    async def ListSchedules(self, request, context):
        views = await self.d.read(self.store.list, visible_owner())
        page = page_of(views, request.page_token, page_size(request.page_size))
        return schedule_pb2.ListSchedulesResponse(schedules=[schedule_to_proto(v) for v in page.items],
                                                  next_page_token=page.next_page_token)

    @rpc
    async def PauseSchedule(self, request, context):
        schedule_id, by, owner = self._id(request), current_caller.get().identity, visible_owner()
        await self.d.core.call(lambda engine: engine.pause_schedule(schedule_id, by, owner))
        return schedule_pb2.PauseScheduleResponse(schedule=await self._get(schedule_id))

    @rpc
    async def ResumeSchedule(self, request, context):
        schedule_id, by, owner = self._id(request), current_caller.get().identity, visible_owner()
        await self.d.core.call(lambda engine: engine.resume_schedule(schedule_id, by, owner))
        return schedule_pb2.ResumeScheduleResponse(schedule=await self._get(schedule_id))

    @rpc
    async def RunScheduleNow(self, request, context):
        schedule_id, by, owner = self._id(request), current_caller.get().identity, visible_owner()
        job = await self.d.core.call(lambda engine: engine.run_schedule_now(schedule_id, by, owner))
        response = schedule_pb2.RunScheduleNowResponse(schedule=await self._get(schedule_id))
        if job is not None:
            view = await self.d.read(self.d.reads.get_job, job.id, None)
            response.job.CopyFrom(convert.job_to_proto(view, self.d.status_of()))
        return response

    @rpc
    async def DeleteSchedule(self, request, context):
        schedule_id, by, owner = self._id(request), current_caller.get().identity, visible_owner()
        await self.d.core.call(lambda engine: engine.delete_schedule(schedule_id, by, owner))
        return schedule_pb2.DeleteScheduleResponse()

    @staticmethod
    def _id(request) -> int:
        return convert.parse_id("schedule_id", request.schedule_id, "schedule")

    async def _get(self, schedule_id: int) -> schedule_pb2.Schedule:
        view = await self.d.read(self.store.get, schedule_id, visible_owner())
        if view is None:
            raise NotFound(f"schedule {schedule_id} not found; `jobplane schedules list` shows the schedules there are")
        return schedule_to_proto(view)


__all__ = ["ScheduleService", "schedule_from_proto", "schedule_to_proto"]
