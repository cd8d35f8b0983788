"""The read API: every query that answers a caller, each returning frozen views (records.py).
It reads the database alone, never the engine's memory, so any server that can open the
database (a replica, say) answers the same."""

from __future__ import annotations

import time

from peewee import Database, fn

from ..domain.limits import PAGE_BYTES
from ..domain.model import JobState
from ..domain.query import Page
from ..domain.status import job_raw
from .models import AttemptRow, AuditRow, ContinuationRow, ContinuedTaskRow, EventRow, JobRow, JobSpecRow, TaskRow
from .paging import CHUNK, Measure, Source, page
from .queries import audit_query, continuation_query, job_query, ordering, task_query
from .records import (
    JOBPLANE, AttemptView, AuditView, ContinuationView, ContinuedTaskView, Event, JobFacts, JobView, StatusOf,
    TaskView, event_from_row)

IN_CHUNK = 400  # ids per IN (...) list


def whole_specs(job_ids: list[int]) -> dict[int, bytes]:
    """The whole specs (tasks included) of these jobs, by id; a job stored by an older version
    has none here: its row's spec is whole."""
    out: dict[int, bytes] = {}
    for i in range(0, len(job_ids), IN_CHUNK):
        out.update(JobSpecRow.select(JobSpecRow.job, JobSpecRow.spec)
                   .where(JobSpecRow.job.in_(job_ids[i:i + IN_CHUNK])).tuples())
    return out


class Reads:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ----- jobs ----------------------------------------------------------------------

    def get_job(self, job_id: int, owner: str | None = None, tasks: bool = True) -> JobView | None:
        """The job; None if there is none (or, with `owner`, it is not that identity's).
        `tasks`: False leaves the spec's tasks out (neither read nor decoded)."""
        cond = JobRow.id == job_id
        row = JobRow.get_or_none(cond if owner is None else cond & (JobRow.owner == owner))
        if row is None:
            return None
        return JobView.from_row(row, tasks, whole_specs([row.id]).get(row.id) if tasks else None)

    @staticmethod
    def has_job(job_id: int, owner: str | None = None) -> bool:
        """Whether the job exists (and, with `owner`, is that identity's)."""
        cond = JobRow.id == job_id
        return JobRow.select(JobRow.id).where(cond if owner is None else cond & (JobRow.owner == owner)).exists()

    def list_jobs(self, filter_text: str, order_by: str, token: str, size: int, *, owner: str | None = None,
                  status_of: StatusOf | None = None, measure: Measure | None = None,
                  max_bytes: int = PAGE_BYTES, tasks: bool = True) -> Page[JobView]:
        """A page of the jobs the filter selects, newest first unless `order_by` says otherwise.
        `owner`: only that identity's jobs; `status_of`: the caller's own normalization, which
        `status` terms and order then mean; `measure`: a view's size as sent, to stop the page
        at `max_bytes`; `tasks`: False leaves the specs' tasks out of the views."""
        query = job_query(filter_text, order_by, time.time(), status_of is not None, owner)
        needs_tasks = tasks or any(t.key == "environment" for t in query.rest) or \
            any(k == "environment" for k, _ in query.order)
        return page(self._job_source(status_of, needs_tasks), query, token, size, measure, max_bytes)

    def job_counts(self, filter_text: str, *, owner: str | None = None,
                   status_of: StatusOf | None = None) -> list[tuple[int, int]]:
        """(normalized status as this caller sees it, number of jobs) for the jobs the filter
        selects, the most common first."""
        query = job_query(filter_text, "", time.time(), status_of is not None, owner)
        counts: dict[int, int] = {}
        if query.rest:  # counted on the views
            source, token = self._job_source(status_of), ""
            while True:
                found = page(source, query, token, CHUNK)
                for view in found.items:
                    status = int(source.value(view, "status"))
                    counts[status] = counts.get(status, 0) + 1
                token = found.next_page_token
                if not token:
                    return _most_first(counts)
        q = JobRow.select(JobRow.state, JobRow.status, fn.COUNT(JobRow.id).alias("n"))
        if query.sql is not None:
            q = q.where(query.sql)
        for r in q.group_by(JobRow.state, JobRow.status):
            status = r.status if status_of is None else int(status_of(JOBPLANE, job_raw(JobState(r.state)), r.status))
            counts[status] = counts.get(status, 0) + r.n
        return _most_first(counts)

    def job_facts(self, job_ids: list[int]) -> dict[int, JobFacts]:
        """What filters read from these jobs (owner, name, priority, labels), by id."""
        out: dict[int, JobFacts] = {}
        for i in range(0, len(job_ids), IN_CHUNK):
            out.update((r.id, JobFacts.from_row(r)) for r in JobRow.select().where(JobRow.id.in_(job_ids[i:i + IN_CHUNK])))
        return out

    def recent_requests(self, since: float) -> list[tuple[str, str, str, int, float, str]]:
        """(owner, request id, spec digest, job id, submit time, call id) of the jobs submitted
        with a request id after `since`, oldest first: what Requests.load takes."""
        query = (JobRow.select(JobRow.owner, JobRow.request_id, JobRow.request_digest, JobRow.id, JobRow.submit_time,
                               JobRow.request_call)
                 .where(JobRow.request_id.is_null(False) & (JobRow.submit_time > since)).order_by(JobRow.id))
        return list(query.tuples())

    def _job_source(self, status_of: StatusOf | None, tasks: bool = True) -> Source[JobView]:
        def fetch(cond, before_id, offset, limit, order):
            rows = list(job_select(cond, before_id, offset, limit, order))
            whole = whole_specs([r.id for r in rows]) if tasks else {}
            return [JobView.from_row(r, tasks, whole.get(r.id)) for r in rows]

        return Source(fetch, lambda view, key: job_value(view, key, status_of), (JobRow.id, True))

    # ----- tasks ---------------------------------------------------------------------

    def get_task(self, task_id: int, owner: str | None = None) -> TaskView | None:
        """The task with its attempts; None if there is none (or, with `owner`, its job is not
        that identity's)."""
        row = TaskRow.get_or_none(TaskRow.id == task_id)
        if row is None or not self.has_job(row.job, owner):
            return None
        return TaskView.from_row(row, tuple(self.attempts_of([task_id])[task_id]))

    def list_tasks(self, filter_text: str, order_by: str, token: str, size: int, *, job_id: int | None = None,
                   owner: str | None = None, status_of: StatusOf | None = None, measure: Measure | None = None,
                   max_bytes: int = PAGE_BYTES) -> Page[TaskView]:
        """A page of the tasks the filter selects (of one job, with `job_id`), by id unless
        `order_by` says otherwise; the rest as list_jobs."""
        query = task_query(filter_text, order_by, time.time(), status_of is not None, owner, job_id)
        jobs: dict[int, JobFacts | None] = {}
        wants_jobs = any(k in ("owner", "submitted") or k.startswith("label.") for k in [t.key for t in query.rest] +
                         [k for k, _ in query.order])

        def fetch(cond, after_id, offset, limit, order):
            rows = list(task_select(cond, after_id, offset, limit, order, query.by_job).namedtuples())
            attempts = self.attempts_of([r.id for r in rows])
            if wants_jobs:
                jobs.update(self.job_facts(sorted({r.job for r in rows} - set(jobs))))
            return [TaskView.from_row(r, tuple(attempts[r.id])) for r in rows]

        source = Source(fetch, lambda view, key: task_value(view, key, jobs.get(view.job_id), status_of),
                        (TaskRow.id, False))
        return page(source, query, token, size, measure, max_bytes)

    def attempts_of(self, task_ids: list[int]) -> dict[int, list[AttemptView]]:
        """Each task's attempts, first to last."""
        out: dict[int, list[AttemptView]] = {t: [] for t in task_ids}
        for i in range(0, len(task_ids), IN_CHUNK):
            rows = (AttemptRow.select().where(AttemptRow.task.in_(task_ids[i:i + IN_CHUNK]))
                    .order_by(AttemptRow.task, AttemptRow.number).namedtuples())
            for row in rows:
                out[row.task].append(AttemptView.from_row(row))
        return out

    # ----- events --------------------------------------------------------------------

    def events_after(self, after_id: int, job_id: int | None, limit: int, kind: int | None = None) -> list[Event]:
        """The stored events after `after_id` (of one job, or one kind), oldest first."""
        q = EventRow.select().where(EventRow.id > after_id)
        if job_id is not None:
            q = q.where(EventRow.job == job_id)
        if kind is not None:
            q = q.where(EventRow.kind == int(kind))
        return [event_from_row(r) for r in q.order_by(EventRow.id).limit(limit)]

    # ----- continuations -------------------------------------------------------------

    def get_continuation(self, cid: int) -> ContinuationView | None:
        row = ContinuationRow.get_or_none(ContinuationRow.id == cid)
        return None if row is None else ContinuationView.from_row(row, self._continued(row.id))

    def list_continuations(self, filter_text: str, token: str, size: int) -> Page[ContinuationView]:
        """A page of the continuations the filter selects (`provider=NAME`), newest first."""
        query = continuation_query(filter_text)

        def fetch(cond, before_id, offset, limit, order):
            q = ContinuationRow.select()
            if cond is not None:
                q = q.where(cond)
            if before_id is not None:
                q = q.where(ContinuationRow.id < before_id)
            rows = q.order_by(ContinuationRow.id.desc()).limit(limit)
            return [ContinuationView.from_row(row, self._continued(row.id)) for row in rows]

        return page(Source(fetch, lambda view, key: getattr(view, key)), query, token, size)

    def _continued(self, cid: int) -> tuple[ContinuedTaskView, ...]:
        """The continuation's tasks in order, each with when the attempt it continued as started."""
        out = []
        for ct in (ContinuedTaskRow.select().where(ContinuedTaskRow.continuation == cid)
                   .order_by(ContinuedTaskRow.position, ContinuedTaskRow.id)):
            nxt = AttemptRow.get_or_none((AttemptRow.task == ct.task) & (AttemptRow.number == ct.to_attempt))
            out.append(ContinuedTaskView.from_row(ct, nxt.start_time if nxt is not None else None))
        return tuple(out)

    # ----- audit ---------------------------------------------------------------------

    def list_audit(self, filter_text: str, token: str, size: int) -> Page[AuditView]:
        """A page of the audit records the filter selects (identity, method, code, target), newest first."""
        query = audit_query(filter_text)

        def fetch(cond, before_id, offset, limit, order):
            self.db.connect(reuse_if_open=True)
            q = AuditRow.select()
            if cond is not None:
                q = q.where(cond)
            if before_id is not None:
                q = q.where(AuditRow.id < before_id)
            return [AuditView.from_row(r) for r in q.order_by(AuditRow.id.desc()).limit(limit)]

        return page(Source(fetch, lambda view, key: getattr(view, key)), query, token, size)


def job_select(cond: object | None, before_id: int | None, offset: int, limit: int, order: list | None):
    """The rows of a page of jobs: newest first from `before_id`, or in `order` ((column,
    descending) keys) from `offset`."""
    q = JobRow.select()
    if cond is not None:
        q = q.where(cond)
    if order:
        return q.order_by(*ordering(order), JobRow.id.desc()).offset(offset).limit(limit)
    if before_id is not None:
        q = q.where(JobRow.id < before_id)
    if cond is None:
        return q.order_by(JobRow.id.desc()).limit(limit)
    # The page's ids first, from the indexes alone, then those rows: sorting whole rows (each with
    # its spec) that matched, to keep a page of them, costs more than the rest of the listing.
    ids = q.select(JobRow.id).order_by(JobRow.id.desc()).limit(limit)
    return JobRow.select().where(JobRow.id.in_(ids)).order_by(JobRow.id.desc())


def task_select(cond: object | None, after_id: int | None, offset: int, limit: int, order: list | None,
                by_job: bool = False):
    """The rows of a page of tasks: by id from `after_id`, or in `order` from `offset`.
    `by_job`: `cond` chooses tasks by their job (label, owner, submitted), so the database reads
    them job by job from (job, idx), which is id order: a job's tasks get consecutive ids, in
    idx order, when it is submitted."""
    q = TaskRow.select()
    if cond is not None:
        q = q.where(cond)
    if order:
        return q.order_by(*ordering(order), TaskRow.id).offset(offset).limit(limit)
    if after_id is not None:
        q = q.where(TaskRow.id > after_id)
        if by_job:  # from the job of the last task seen on
            q = q.where(TaskRow.job >= TaskRow.select(TaskRow.job).where(TaskRow.id == after_id))
    return q.order_by(*((TaskRow.job, TaskRow.idx) if by_job else (TaskRow.id,))).limit(limit)


def check_query(resource: str, text: str, order_text: str) -> None:
    """Raise InvalidArgument (naming filter or order_by) unless `text` and `order_text` are a
    filter and an order of `resource` ("jobs" or "tasks"), as a saved view must be."""
    (job_query if resource == "jobs" else task_query)(text, order_text, time.time())


# ----- what a filter key reads from a view -------------------------------------------

def job_value(view: JobView, key: str, status_of: StatusOf | None = None) -> object:
    """The value of filter/sort key `key` for a job as one caller sees it (tuples: any element
    may match)."""
    if key.startswith("label."):
        return view.labels.get(key[6:])
    if key.startswith("raw."):
        return view.raw.get(key[4:])
    if key == "status":
        return view.status if status_of is None else status_of(JOBPLANE, view.raw, view.status)
    if key == "environment":
        return view.environments
    times = {"submitted": view.submit_time, "started": view.start_time, "ended": view.end_time}
    return times[key] if key in times else getattr(view, key)


def task_value(view: TaskView, key: str, job: JobFacts | None, status_of: StatusOf | None = None) -> object:
    """The value of filter/sort key `key` for a task as one caller sees it; `job`: its job's
    facts, when the key needs them (owner, submitted, label.*)."""
    if key.startswith("raw."):
        return view.raw.get(key[4:])
    if key.startswith("label.") or key in ("owner", "submitted"):
        if job is None:
            return None
        return getattr(job, key) if key in ("owner", "submitted") else job.labels.get(key[6:])
    if key == "status":
        return view.status if status_of is None else status_of(view.environment, view.raw, view.status)
    last = view.attempts[-1] if view.attempts else None
    if key in ("started", "ended"):
        return None if last is None else last.start_time if key == "started" else last.end_time
    return view.job_id if key == "job" else getattr(view, key)


def _most_first(counts: dict[int, int]) -> list[tuple[int, int]]:
    return sorted(counts.items(), key=lambda sn: (-sn[1], sn[0]))
