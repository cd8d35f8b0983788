"""The SDK's schedule calls (recurring jobs), defined once as every call in calls.py is (kept
apart only for that file's length) and bound by both clients."""

from __future__ import annotations

from operator import attrgetter

from jobplane.v1 import schedule_pb2, schedule_pb2_grpc

from jobplane.client.calls import Paged, Unary

SCHEDULES = schedule_pb2_grpc.ScheduleServiceStub


def create_schedule(schedule: schedule_pb2.Schedule) -> Unary[schedule_pb2.Schedule]:
    """A new schedule: `cron` (five fields), `job` (the JobSpec each run submits), and optionally
    `time_zone`, `overlap` and `catch_up`. Raises InvalidArgument naming the field at fault."""
    return Unary(SCHEDULES, "CreateSchedule", schedule_pb2.CreateScheduleRequest(schedule=schedule),
                 attrgetter("schedule"))


def get_schedule(schedule_id: str) -> Unary[schedule_pb2.Schedule]:
    """One schedule: its cron expression, zone, overlap, job spec, status and next run time."""
    request = schedule_pb2.GetScheduleRequest(schedule_id=str(schedule_id))
    return Unary(SCHEDULES, "GetSchedule", request, attrgetter("schedule"), idempotent=True)


def list_schedules(*, page_size: int = 100) -> Paged[schedule_pb2.Schedule]:
    """Every schedule (a submitter's own), by id."""
    return Paged(SCHEDULES, "ListSchedules", schedule_pb2.ListSchedulesRequest(page_size=page_size), "schedules")


def pause_schedule(schedule_id: str) -> Unary[schedule_pb2.Schedule]:
    """No new runs until resumed (INACTIVE); runs going on carry on."""
    request = schedule_pb2.PauseScheduleRequest(schedule_id=str(schedule_id))
    return Unary(SCHEDULES, "PauseSchedule", request, attrgetter("schedule"), idempotent=True)


def resume_schedule(schedule_id: str) -> Unary[schedule_pb2.Schedule]:
    """Runs again from the next due time after now."""
    request = schedule_pb2.ResumeScheduleRequest(schedule_id=str(schedule_id))
    return Unary(SCHEDULES, "ResumeSchedule", request, attrgetter("schedule"), idempotent=True)


def run_schedule_now(schedule_id: str) -> Unary[schedule_pb2.RunScheduleNowResponse]:
    """A run at once; the response's `job` is empty when the run was queued behind one going on."""
    request = schedule_pb2.RunScheduleNowRequest(schedule_id=str(schedule_id))
    return Unary(SCHEDULES, "RunScheduleNow", request, lambda response: response)


def delete_schedule(schedule_id: str) -> Unary[None]:
    """No more runs; the jobs it made are kept."""
    request = schedule_pb2.DeleteScheduleRequest(schedule_id=str(schedule_id))
    return Unary(SCHEDULES, "DeleteSchedule", request, lambda response: None)
