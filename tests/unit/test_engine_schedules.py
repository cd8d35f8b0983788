"""Schedules, driven through the engine with an injected clock: runs come due and become
ordinary jobs linked to their schedule; overlap skip/queue/allow; missed runs after downtime
(catch-up off and on); pause, resume, run-now and delete; a restart goes on from the stored
last due time without running twice."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from jobplane.server.domain.engine import Engine, EngineConfig
from jobplane.server.domain.model import EventKind, JobSpec, Outcome, Report, ReportKind, Status, TaskState
from jobplane.server.domain.schedules import Schedule, check_schedule
from jobplane.server.errors import FailedPrecondition, InvalidArgument, NotFound

from support_engine import cmd, provider

UTC = ZoneInfo("UTC")
T0 = datetime(2026, 6, 1, 1, 59, 30, tzinfo=UTC).timestamp()  # half a minute before 02:00 UTC


def engine(now=T0):
    e = Engine(EngineConfig())
    e.begin(now)
    return e


def nightly(overlap="skip", catch_up=False, cron="0 2 * * *", zone="UTC"):
    spec = JobSpec("nightly", 0, {}, (cmd("work"),))
    return check_schedule(Schedule(0, "nightly", cron, zone, overlap, catch_up, spec, owner="alice"))


def at(e, seconds_after_t0):
    """Let the clock read T0 + seconds and run what time passing makes due."""
    e.begin(T0 + seconds_after_t0)
    if "a" in e.providers:
        e.report("a", hash("a") & 0xFFFF, [])  # provider a is heard from: it stays connected
    e.supervise()
    return e.take_changes()


def runs(e, schedule_id):
    return sorted(j.id for j in e.jobs.values() if j.schedule_id == schedule_id)


def finish(e, conn, job_id):
    for tid in list(e.jobs[job_id].task_ids):
        t = e.tasks[tid]
        e.report("a", conn, [Report(t.id, t.attempt, ReportKind.STARTED),
                             Report(t.id, t.attempt, ReportKind.FINISHED, Outcome.SUCCEEDED, 0)])


def schedule_events(cs):
    return [(ev.raw_status, ev.message) for ev in cs.events if ev.kind == EventKind.SCHEDULE]


def test_a_due_run_is_an_ordinary_job_linked_to_its_schedule():
    e = engine()
    conn = provider(e, "a")
    s = e.create_schedule(nightly())
    e.take_changes()
    assert s.next_due == T0 + 30
    assert at(e, 29).jobs == {}  # not yet
    cs = at(e, 31)
    [job] = cs.jobs.values()
    assert job.schedule_id == s.id and job.owner == "alice" and job.name == "nightly"
    assert cs.schedules[s.id].last_due == T0 + 30
    assert s.next_due == T0 + 30 + 86400
    assert ("STARTED", f"schedule {s.id} nightly: run due at 2026-06-01 02:00 UTC: job {job.id}") in schedule_events(cs)
    assert [t.state for t in cs.tasks.values()] == [TaskState.ASSIGNED]  # dispatched like any job
    finish(e, conn, job.id)
    assert at(e, 40).jobs[job.id].state.name == "SUCCEEDED"
    assert at(e, 3600).jobs == {}  # once a day


def test_overlap_skip_does_not_start_a_run_while_one_goes_on():
    e = engine()
    provider(e, "a")
    s = e.create_schedule(nightly("skip", cron="* * * * *"))
    at(e, 31)
    [first] = runs(e, s.id)
    cs = at(e, 91)
    assert runs(e, s.id) == [first]
    assert schedule_events(cs) == [("SKIPPED", f"schedule {s.id} nightly: run due at 2026-06-01 02:01 UTC skipped: "
                                               f"job {first} is still running (overlap = skip)")]
    with pytest.raises(FailedPrecondition, match=f"job {first} of it is still running and its overlap is skip"):
        e.run_schedule_now(s.id, "bob")


def test_overlap_queue_runs_once_the_earlier_run_ends_and_folds_extra_due_times():
    e = engine()
    conn = provider(e, "a")
    s = e.create_schedule(nightly("queue", cron="* * * * *"))
    at(e, 31)
    [first] = runs(e, s.id)
    at(e, 91)
    at(e, 151)  # two due times pass while it runs: one run waits
    assert runs(e, s.id) == [first] and s.queued
    e.begin(T0 + 160)
    finish(e, conn, first)
    cs = e.take_changes()
    [second] = runs(e, s.id)
    assert second != first and not s.queued and cs.schedules[s.id].queued is False
    assert any(f"queued behind job {first}, which ended: job {second}" in m for _, m in schedule_events(cs))


def test_overlap_allow_runs_alongside():
    e = engine()
    provider(e, "a", slots=4)
    s = e.create_schedule(nightly("allow", cron="* * * * *"))
    at(e, 31)
    at(e, 91)
    assert len(runs(e, s.id)) == 2


def test_missed_runs_after_downtime_are_not_run_without_catch_up():
    e = engine()
    provider(e, "a")
    s = e.create_schedule(nightly(cron="0 * * * *"))  # hourly
    e.take_changes()
    cs = at(e, 3 * 3600)  # the server was away for three hours
    assert runs(e, s.id) == []
    assert schedule_events(cs) == [("MISSED", f"schedule {s.id} nightly: 3 runs missed (the first due at "
                                              "2026-06-01 02:00 UTC); none runs (catch_up = false); "
                                              "next run 2026-06-01 05:00 UTC")]
    assert s.next_due == datetime(2026, 6, 1, 5, 0, tzinfo=UTC).timestamp()


def test_catch_up_runs_one_missed_run_not_all():
    e = engine()
    provider(e, "a", slots=8)
    s = e.create_schedule(nightly(catch_up=True, cron="0 * * * *", overlap="allow"))
    cs = at(e, 3 * 3600)
    assert len(runs(e, s.id)) == 1
    assert any("catch-up: 3 runs missed" in m for _, m in schedule_events(cs))
    assert at(e, 3 * 3600 + 10).jobs == {}  # and no more until the next due time


def test_a_late_tick_within_the_grace_still_runs():
    e = engine()
    provider(e, "a")
    s = e.create_schedule(nightly())
    at(e, 30 + 50)  # 50 s late: on time still
    assert len(runs(e, s.id)) == 1


def test_pause_makes_no_runs_and_shows_inactive_resume_does_not_catch_up():
    e = engine()
    provider(e, "a")
    s = e.create_schedule(nightly(cron="* * * * *"))
    e.take_changes()
    e.pause_schedule(s.id, "bob")
    cs = e.take_changes()
    assert cs.schedules[s.id].paused
    assert [(ev.raw_status, ev.status) for ev in cs.events] == [("PAUSED", Status.INACTIVE)]
    assert e.schedules.paused_schedule(s.id)
    at(e, 31)
    at(e, 300)
    assert runs(e, s.id) == []
    e.begin(T0 + 310)
    e.resume_schedule(s.id, "bob")
    e.take_changes()
    assert s.next_due == T0 + 330  # the next minute after now: the paused runs are gone
    at(e, 331)
    assert len(runs(e, s.id)) == 1


def test_a_resume_is_no_run_and_a_restart_after_it_does_not_catch_up_the_paused_time():
    """A resume set the last due time to its own time, so the schedule showed it as its last run."""
    e = engine()
    provider(e, "a")
    s = e.create_schedule(nightly(cron="* * * * *", catch_up=True))
    e.pause_schedule(s.id, "bob")
    at(e, 300)
    e.begin(T0 + 310)
    e.resume_schedule(s.id, "bob")
    e.take_changes()
    assert (s.last_due, s.next_due) == (0.0, T0 + 330)  # never ran; the paused minutes are gone
    stored = Schedule(s.id, s.name, s.cron, s.time_zone, s.overlap, s.catch_up, s.spec, s.owner, s.create_time,
                      last_due=s.last_due, resume_time=s.resume_time)
    again = engine(T0 + 320)  # restarted 10 s after the resume
    again.schedules.restore([stored], max_id=s.id)
    assert again.schedules.get(s.id).next_due == T0 + 330
    again.supervise()
    assert again.take_changes().jobs == {}  # no catch-up run for the minutes it was paused


def test_run_now_starts_at_once_even_paused_and_keeps_the_cadence():
    e = engine()
    provider(e, "a")
    s = e.create_schedule(nightly())
    e.pause_schedule(s.id, "bob")
    job = e.run_schedule_now(s.id, "bob")
    cs = e.take_changes()
    assert job.schedule_id == s.id and job.id in cs.new_jobs
    assert s.next_due == T0 + 30 and s.last_due == 0.0  # a run now is no due time: none was handled yet


def test_delete_stops_runs_and_keeps_the_jobs():
    e = engine()
    provider(e, "a")
    s = e.create_schedule(nightly(cron="* * * * *", overlap="allow"))
    at(e, 31)
    [job] = runs(e, s.id)
    e.delete_schedule(s.id, "bob")
    assert e.take_changes().schedules[s.id].deleted
    at(e, 91)
    assert runs(e, s.id) == [job]
    with pytest.raises(NotFound, match=f"schedule {s.id} not found"):
        e.pause_schedule(s.id, "bob")


def test_a_submitter_reaches_only_their_own_schedules():
    e = engine()
    s = e.create_schedule(nightly())
    with pytest.raises(NotFound):
        e.pause_schedule(s.id, "mallory", owner="mallory")
    assert e.pause_schedule(s.id, "alice", owner="alice").paused


def test_a_restart_goes_on_from_the_stored_last_due_time_without_running_twice():
    e = engine()
    provider(e, "a")
    s = e.create_schedule(nightly(cron="* * * * *"))
    at(e, 31)
    stored = Schedule(s.id, s.name, s.cron, s.time_zone, s.overlap, s.catch_up, s.spec, s.owner, s.create_time,
                      last_due=s.last_due, last_job_id=s.last_job_id)
    again = engine(T0 + 40)  # restarted 9 s after the run at 02:00
    again.schedules.restore([stored], max_id=s.id)
    restored = again.schedules.get(s.id)
    assert restored.next_due == T0 + 90
    again.supervise()
    assert again.take_changes().jobs == {}  # 02:00 ran before the restart
    assert again.create_schedule(nightly()).id == s.id + 1


def test_schedule_fields_are_checked_with_their_paths():
    with pytest.raises(InvalidArgument, match=r'schedule.cron: "0 25 \* \* \*": hour 25 is out of range 0-23'):
        nightly(cron="0 25 * * *")
    with pytest.raises(InvalidArgument, match="schedule.time_zone: 'Moon/Base' is not a known IANA time zone"):
        nightly(zone="Moon/Base")
    with pytest.raises(InvalidArgument, match="schedule.overlap: 'sometimes' is not one of skip, queue, allow"):
        nightly(overlap="sometimes")


def test_due_times_follow_the_schedules_zone():
    e = engine(datetime(2026, 6, 1, 0, 0, tzinfo=UTC).timestamp())
    s = e.create_schedule(nightly(zone="America/New_York"))  # 02:00 EDT = 06:00 UTC
    assert s.next_due == datetime(2026, 6, 1, 6, 0, tzinfo=UTC).timestamp()


def test_a_queued_run_of_a_paused_schedule_waits_for_resume():
    e = engine()
    conn = provider(e, "a")
    s = e.create_schedule(nightly("queue", cron="* * * * *"))
    at(e, 31)
    [first] = runs(e, s.id)
    at(e, 91)
    assert s.queued
    e.pause_schedule(s.id, "bob")
    finish(e, conn, first)
    e.take_changes()
    assert runs(e, s.id) == [] and s.queued  # paused: no new job
    e.resume_schedule(s.id, "bob")
    assert len(runs(e, s.id)) == 1 and not s.queued
