"""The web console's routes: sign-in with an API token kept in an HTTP-only cookie, the
dashboard, the job list with the filter grammar and saved views, a job's and a task's page,
the plane's pages (plane.py), the forms that act (actions.py), and the live event stream
(server-sent events, resumed from Last-Event-ID). Every read is a call of the gRPC API with
the signed-in user's token (gateway.py), so what a user sees is what the CLI shows them."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import grpc
from google.protobuf import json_format

from jobplane.v1 import event_pb2, job_pb2, security_pb2, task_pb2, view_pb2

from . import output, pages, task_html
from .actions import Actions
from .gateway import Gateway
from .plane import Plane
from .server import Request, Response, Stream
from .sse import frame, relay
from .web import (COOKIE, HTTP_OF, SEES_ALL, TEXT, TOKEN_FORM, here, local, may_act_on, page, redirect, same_origin,
                  static, who)

log = logging.getLogger(__name__)

POLL_SECONDS = "5"  # a submitter may not watch every job's events: its lists refresh this often
Show = Callable[..., Awaitable[Response]]  # (request, token, whoami, *path groups)


class Console:
    def __init__(self, gateway: Gateway, last_event_id: Callable[[], int]) -> None:
        self._api = gateway
        self._last_event_id = last_event_id
        plane, actions = Plane(gateway, self.live), Actions(gateway)
        self._pages: list[tuple[re.Pattern, Show]] = [
            (re.compile(r"/"), self._dashboard), (re.compile(r"/jobs"), self._jobs),
            (re.compile(r"/jobs/([^/]+)"), self._job), (re.compile(r"/tasks/([^/]+)"), self._task),
            (re.compile(r"/tasks/([^/]+)/output"), self._output), (re.compile(r"/providers"), plane.providers),
            (re.compile(r"/continuations"), plane.continuations), (re.compile(r"/conflicts"), plane.conflicts)]
        self._posts: list[tuple[re.Pattern, Show]] = [
            (re.compile(r"/jobs/([^/]+)/(cancel|hold|release)"), actions.job),
            (re.compile(r"/conflicts/rules"), actions.add_rule),
            (re.compile(r"/conflicts/rules/([^/]+)/delete"), actions.remove_rule),
            (re.compile(r"/views"), actions.save_view), (re.compile(r"/views/([^/]+)/delete"), actions.delete_view)]

    async def handle(self, request: Request) -> Response | Stream | None:
        """The console's answer, or None for a path that is not the console's."""
        path, method = request.path, request.method
        if path.startswith("/static/"):
            return static(path.removeprefix("/static/"))
        if path == "/login":
            return await self._login(request) if method == "POST" else page(200, pages.login(
                next_path=local(request.query.get("next", "/"))))
        if path == "/logout" and method == "POST":
            return redirect("/login", clear=True)
        if method == "POST":
            for pattern, show in self._posts:
                if match := pattern.fullmatch(path):
                    if not same_origin(request):
                        return page(403, pages.error_page(403, "a form from another site cannot act here"))
                    return await self._signed_in(request, show, *match.groups())
            return None
        if path == "/events":
            return await self._events(request)
        if match := re.fullmatch(r"/tasks/([^/]+)/logs", path):
            return await self._output_stream(request, match.group(1))
        for pattern, show in self._pages:
            if match := pattern.fullmatch(path):
                return await self._signed_in(request, show, *match.groups())
        return None

    # ----- signing in ----------------------------------------------------------------

    async def _login(self, request: Request) -> Response:
        form = request.form()
        token, next_path = form.get("token", "").strip(), local(form.get("next", "/"))
        if not TOKEN_FORM.fullmatch(token):
            return page(400, pages.login("Paste an API token (printable characters, no spaces).", next_path))
        try:
            me = await self._api.call(self._api.security.WhoAmI, security_pb2.WhoAmIRequest(), token)
        except grpc.aio.AioRpcError as exc:
            status = 401 if exc.code() == grpc.StatusCode.UNAUTHENTICATED else HTTP_OF.get(exc.code(), 502)
            return page(status, pages.login(f"Not signed in: {exc.details()}", next_path))
        log.info("console: %s signed in", me.identity)
        return redirect(next_path, token=token)

    async def _signed_in(self, request: Request, show: Show, *groups: str) -> Response:
        """`show(request, token, whoami, *groups)` for a signed-in user; else to the sign-in page.
        A refusal of the API (a viewer's cancel, a bad rule) is a page saying why."""
        token = request.cookies.get(COOKIE, "")
        if not TOKEN_FORM.fullmatch(token):
            return redirect("/login?" + urlencode({"next": here(request)}))
        try:
            me = await self._api.call(self._api.security.WhoAmI, security_pb2.WhoAmIRequest(), token)
            return await show(request, token, me, *groups)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                return redirect("/login?" + urlencode({"next": here(request)}), clear=True)
            status = HTTP_OF.get(exc.code(), 502)
            return page(status, pages.error_page(status, exc.details() or exc.code().name))

    # ----- pages ---------------------------------------------------------------------

    async def _dashboard(self, request: Request, token: str, me) -> Response:
        live = self.live(me)  # before the reads: no change between them and the stream is missed
        summary = await self._api.call(self._api.jobs.SummarizeJobs, job_pb2.SummarizeJobsRequest(), token)
        attention = await self._api.call(self._api.jobs.ListJobs, job_pb2.ListJobsRequest(
            filter="status=" + ",".join(pages.ATTENTION), page_size=100), token)
        body = pages.dashboard(summary, list(attention.jobs), more=bool(attention.next_page_token))
        return page(200, pages.layout("Dashboard", body, who=who(me), live=live))

    async def _jobs(self, request: Request, token: str, me) -> Response:
        live = self.live(me)
        q = request.query
        asked = job_pb2.ListJobsRequest(filter=q.get("filter", ""), order_by=q.get("order_by", ""),
                                        view=q.get("view", ""), page_token=q.get("page_token", ""), page_size=50)
        views = await self._api.call(self._api.views.ListViews, view_pb2.ListViewsRequest(page_size=200), token)
        jobs_views = [v for v in views.views if v.resource == view_pb2.VIEW_RESOURCE_JOBS]
        def form(error: str) -> str:
            return pages.filter_form(asked.filter, asked.order_by, asked.view, error, jobs_views)
        try:
            answer = await self._api.call(self._api.jobs.ListJobs, asked, token)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                  grpc.StatusCode.FAILED_PRECONDITION):
                raise
            return page(HTTP_OF[exc.code()], pages.layout("Jobs", "", who=who(me), extra=form(exc.details())))
        next_link = ""
        if answer.next_page_token:
            next_link = "/jobs?" + urlencode({**q, "page_token": answer.next_page_token})
        body = pages.job_list(list(answer.jobs), next_link)
        return page(200, pages.layout("Jobs", body, who=who(me), live=live, extra=form("")))

    async def _job(self, request: Request, token: str, me, job_id: str) -> Response:
        live = {"events": "/events?" + urlencode({"job": job_id, "after": self._last_event_id()})}
        job = (await self._api.call(self._api.jobs.GetJob, job_pb2.GetJobRequest(job_id=job_id), token)).job
        listed = await self._api.call(self._api.tasks.ListTasks, task_pb2.ListTasksRequest(
            job_id=job.id, page_size=500, page_token=request.query.get("page_token", "")), token)
        next_link = f"/jobs/{job.id}?" + urlencode({"page_token": listed.next_page_token}) \
            if listed.next_page_token else ""
        body = pages.job_detail(job, list(listed.tasks), next_link, actions=may_act_on(me, job.owner))
        events = '<section class="events"><h2>Live events</h2><ol id="events"></ol></section>'
        return page(200, pages.layout(f"Job {job.id} · {job.spec.name}", body, who=who(me), live=live,
                                      after=events))

    async def _task(self, request: Request, token: str, me, task_id: str) -> Response:
        """A task: its attempts with raw and normalized statuses, checkpoints, what it asks for."""
        after = self._last_event_id()  # before the read: no change between them and the stream is missed
        task = (await self._api.call(self._api.tasks.GetTask, task_pb2.GetTaskRequest(task_id=task_id), token)).task
        live = {"events": "/events?" + urlencode({"job": task.job_id, "after": after})}
        return page(200, pages.layout(f"Task {task.id} · {task.name}", task_html.task_page(task), who=who(me),
                                      live=live))

    async def _output(self, request: Request, token: str, me, task_id: str) -> Response:
        """A task's output, live while its attempt runs (console.js reads /tasks/ID/logs)."""
        task = (await self._api.call(self._api.tasks.GetTask, task_pb2.GetTaskRequest(task_id=task_id), token)).task
        stream = "stderr" if request.query.get("stream") == "stderr" else "stdout"
        body, live = output.page_body(task, stream, request.query.get("attempt", ""))
        return page(200, pages.layout(f"Output of task {task.id}", body, who=who(me), live=live,
                                      after=output.AFTER))

    def live(self, me) -> dict[str, str]:
        """How a page of the whole plane stays current: the event stream, or polling for a caller
        who may not watch every job (a submitter)."""
        if me.role in SEES_ALL:
            return {"events": "/events?" + urlencode({"after": self._last_event_id()})}
        return {"poll": POLL_SECONDS}

    # ----- the streams -----------------------------------------------------------------

    async def _output_stream(self, request: Request, task_id: str) -> Response | Stream:
        token = request.cookies.get(COOKIE, "")
        if not TOKEN_FORM.fullmatch(token):
            return Response(401, "sign in first\n", TEXT)
        try:  # refusals before the stream starts, as plain answers (tenancy: NOT_FOUND)
            await self._api.call(self._api.tasks.GetTask, task_pb2.GetTaskRequest(task_id=task_id), token)
        except grpc.aio.AioRpcError as exc:
            return Response(HTTP_OF.get(exc.code(), 502), f"{exc.details()}\n", TEXT)
        asked = output.request_for(task_id, request.query, request.headers.get("last-event-id", ""))
        return Stream(output.sse(self._api.stream(self._api.tasks.StreamLogs, asked, token)))

    async def _events(self, request: Request) -> Response | Stream:
        token = request.cookies.get(COOKIE, "")
        if not TOKEN_FORM.fullmatch(token):
            return Response(401, "sign in first\n", TEXT)
        after = request.headers.get("last-event-id") or request.query.get("after", "")
        if not after.isascii() or not after.isdigit():
            after = str(self._last_event_id())  # from now on
        job_id = request.query.get("job", "")
        try:  # refusals before the stream starts: WatchEvents says nothing until an event comes
            me = await self._api.call(self._api.security.WhoAmI, security_pb2.WhoAmIRequest(), token)
            if job_id:
                await self._api.call(self._api.jobs.GetJob, job_pb2.GetJobRequest(job_id=job_id), token)
            elif me.role not in SEES_ALL:
                return Response(403, "watching every job needs the role viewer or above; pass ?job=ID\n", TEXT)
        except grpc.aio.AioRpcError as exc:
            return Response(HTTP_OF.get(exc.code(), 502), f"{exc.details()}\n", TEXT)
        asked = event_pb2.WatchEventsRequest(job_id=job_id, after_event_id=int(after))
        call = self._api.stream(self._api.events.WatchEvents, asked, token)
        return Stream(relay(call, lambda answer: [_sse_event(e) for e in answer.events], "the stream ended"))


def _sse_event(event: event_pb2.Event) -> bytes:
    data = json_format.MessageToDict(event, preserving_proto_field_name=True)
    data["status"] = pages.status_name(event.status)
    data["kind"] = data.get("kind", "").removeprefix("EVENT_KIND_")
    return frame("jobplane", data, event.id)
