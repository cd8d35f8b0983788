"""The web console's routes: sign-in with an API token kept in an HTTP-only cookie, the
dashboard, the job list with the filter grammar, a job's page, and the live event stream
(server-sent events, resumed from Last-Event-ID). Every read is a call of the gRPC API with
the signed-in user's token (gateway.py), so what a user sees is what the CLI shows them."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from importlib import resources
from urllib.parse import urlencode

import grpc
from google.protobuf import json_format

from jobplane.v1 import event_pb2, job_pb2, security_pb2, task_pb2

from . import output, pages
from .gateway import Gateway
from .server import Request, Response, Stream

log = logging.getLogger(__name__)

COOKIE = "jobplane_token"
SEES_ALL = (security_pb2.ROLE_ADMIN, security_pb2.ROLE_OPERATOR, security_pb2.ROLE_VIEWER)
TEXT = "text/plain; charset=utf-8"
POLL_SECONDS = "5"  # a submitter may not watch every job's events: its lists refresh this often
KEEPALIVE = 15.0  # seconds between comments on an idle event stream, so dead clients are noticed
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
JOB_PATH = re.compile(r"/jobs/([^/]+)")
ACTION_PATH = re.compile(r"/jobs/([^/]+)/(cancel|hold|release)")
OUTPUT_PAGE = re.compile(r"/tasks/([^/]+)/output")
OUTPUT_STREAM = re.compile(r"/tasks/([^/]+)/logs")
MAY_ACT = (security_pb2.ROLE_ADMIN, security_pb2.ROLE_OPERATOR, security_pb2.ROLE_SUBMITTER)  # their own jobs
TOKEN_FORM = re.compile(r"[\x21-\x7e]{1,512}")  # what may go into a header: printable ASCII
HTTP_OF = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.PERMISSION_DENIED: 403,
           grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
           grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
           grpc.StatusCode.UNAVAILABLE: 503}
SECURITY_HEADERS = [("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
                    ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store")]


class Console:
    def __init__(self, gateway: Gateway, last_event_id: Callable[[], int]) -> None:
        self._api = gateway
        self._last_event_id = last_event_id

    async def handle(self, request: Request) -> Response | Stream | None:
        """The console's answer, or None for a path that is not the console's."""
        path, method = request.path, request.method
        if path.startswith("/static/"):
            return static(path.removeprefix("/static/"))
        if path == "/login":
            return await self._login(request) if method == "POST" else page(200, pages.login(
                next_path=_local(request.query.get("next", "/"))))
        if path == "/logout" and method == "POST":
            return _redirect("/login", clear=True)
        if method == "POST":
            if match := ACTION_PATH.fullmatch(path):
                return await self._signed_in(request, lambda r, t, me: self._act(r, t, *match.groups()))
            return None
        if path == "/":
            return await self._signed_in(request, self._dashboard)
        if path == "/jobs":
            return await self._signed_in(request, self._jobs)
        if match := JOB_PATH.fullmatch(path):
            return await self._signed_in(request, lambda r, t, me: self._job(r, t, me, match.group(1)))
        if path == "/events":
            return await self._events(request)
        if match := OUTPUT_PAGE.fullmatch(path):
            return await self._signed_in(request, lambda r, t, me: self._output(r, t, me, match.group(1)))
        if match := OUTPUT_STREAM.fullmatch(path):
            return await self._output_stream(request, match.group(1))
        return None

    # ----- signing in ----------------------------------------------------------------

    async def _login(self, request: Request) -> Response:
        form = request.form()
        token, next_path = form.get("token", "").strip(), _local(form.get("next", "/"))
        if not TOKEN_FORM.fullmatch(token):
            return page(400, pages.login("Paste an API token (printable characters, no spaces).", next_path))
        try:
            me = await self._api.call(self._api.security.WhoAmI, security_pb2.WhoAmIRequest(), token)
        except grpc.aio.AioRpcError as exc:
            status = 401 if exc.code() == grpc.StatusCode.UNAUTHENTICATED else HTTP_OF.get(exc.code(), 502)
            return page(status, pages.login(f"Not signed in: {exc.details()}", next_path))
        log.info("console: %s signed in", me.identity)
        return _redirect(next_path, token=token)

    async def _signed_in(self, request: Request, show) -> Response:
        """`show(request, token, whoami)` for a signed-in user; else to the sign-in page."""
        token = request.cookies.get(COOKIE, "")
        if not TOKEN_FORM.fullmatch(token):
            return _redirect("/login?" + urlencode({"next": _here(request)}))
        try:
            me = await self._api.call(self._api.security.WhoAmI, security_pb2.WhoAmIRequest(), token)
            return await show(request, token, me)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                return _redirect("/login?" + urlencode({"next": _here(request)}), clear=True)
            status = HTTP_OF.get(exc.code(), 502)
            return page(status, pages.error_page(status, exc.details() or exc.code().name))

    # ----- pages ---------------------------------------------------------------------

    async def _dashboard(self, request: Request, token: str, me) -> Response:
        live = self._live(me)  # before the reads: no change between them and the stream is missed
        summary = await self._api.call(self._api.jobs.SummarizeJobs, job_pb2.SummarizeJobsRequest(), token)
        attention = await self._api.call(self._api.jobs.ListJobs, job_pb2.ListJobsRequest(
            filter="status=" + ",".join(pages.ATTENTION), page_size=100), token)
        body = pages.dashboard(summary, list(attention.jobs), more=bool(attention.next_page_token))
        return page(200, pages.layout("Dashboard", body, who=_who(me), live=live))

    async def _jobs(self, request: Request, token: str, me) -> Response:
        live = self._live(me)
        q = request.query
        asked = job_pb2.ListJobsRequest(filter=q.get("filter", ""), order_by=q.get("order_by", ""),
                                        view=q.get("view", ""), page_token=q.get("page_token", ""), page_size=50)
        form = lambda error: pages.filter_form(asked.filter, asked.order_by, asked.view, error)  # noqa: E731
        try:
            answer = await self._api.call(self._api.jobs.ListJobs, asked, token)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                  grpc.StatusCode.FAILED_PRECONDITION):
                raise
            return page(HTTP_OF[exc.code()], pages.layout("Jobs", "", who=_who(me), extra=form(exc.details())))
        next_link = ""
        if answer.next_page_token:
            next_link = "/jobs?" + urlencode({**q, "page_token": answer.next_page_token})
        body = pages.job_list(list(answer.jobs), next_link)
        return page(200, pages.layout("Jobs", body, who=_who(me), live=live, extra=form("")))

    async def _job(self, request: Request, token: str, me, job_id: str) -> Response:
        live = {"events": "/events?" + urlencode({"job": job_id, "after": self._last_event_id()})}
        job = (await self._api.call(self._api.jobs.GetJob, job_pb2.GetJobRequest(job_id=job_id), token)).job
        listed = await self._api.call(self._api.tasks.ListTasks, task_pb2.ListTasksRequest(
            job_id=job.id, page_size=500, page_token=request.query.get("page_token", "")), token)
        next_link = f"/jobs/{job.id}?" + urlencode({"page_token": listed.next_page_token}) \
            if listed.next_page_token else ""
        body = pages.job_detail(job, list(listed.tasks), next_link, actions=me.role in MAY_ACT)
        events = '<section class="events"><h2>Live events</h2><ol id="events"></ol></section>'
        return page(200, pages.layout(f"Job {job.id} · {job.spec.name}", body, who=_who(me), live=live,
                                      after=events))

    async def _output(self, request: Request, token: str, me, task_id: str) -> Response:
        """A task's output, live while its attempt runs (console.js reads /tasks/ID/logs)."""
        task = (await self._api.call(self._api.tasks.GetTask, task_pb2.GetTaskRequest(task_id=task_id), token)).task
        stream = "stderr" if request.query.get("stream") == "stderr" else "stdout"
        body, live = output.page_body(task, stream)
        return page(200, pages.layout(f"Output of task {task.id}", body, who=_who(me), live=live,
                                      after=output.AFTER))

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

    async def _act(self, request: Request, token: str, job_id: str, action: str) -> Response:
        """Cancel, hold or release a job: the API decides who may (a viewer may not, a submitter
        only on their own jobs) and records it in the audit log."""
        if not _same_origin(request):
            return page(403, pages.error_page(403, "a form from another site cannot act here"))
        reason = request.form().get("reason", "")
        calls = {"cancel": (self._api.jobs.CancelJob, job_pb2.CancelJobRequest(job_id=job_id, reason=reason)),
                 "hold": (self._api.jobs.HoldJob, job_pb2.HoldJobRequest(job_id=job_id, reason=reason)),
                 "release": (self._api.jobs.ReleaseJob, job_pb2.ReleaseJobRequest(job_id=job_id))}
        method, asked = calls[action]
        await self._api.call(method, asked, token)
        return _redirect(f"/jobs/{job_id}")

    def _live(self, me) -> dict[str, str]:
        """How a list page stays current: the event stream, or polling for a caller who may not
        watch every job (a submitter)."""
        if me.role in SEES_ALL:
            return {"events": "/events?" + urlencode({"after": self._last_event_id()})}
        return {"poll": POLL_SECONDS}

    # ----- the event stream ------------------------------------------------------------

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
        return Stream(_sse(self._api.stream(self._api.events.WatchEvents, asked, token)))


async def _sse(call) -> AsyncIterator[bytes]:
    """Each event as `id:`, `event: jobplane`, `data: JSON`; a comment when idle; the end of the
    call (e.g. a watcher cut off for falling behind) as `event: end` with its reason."""
    reading: asyncio.Future | None = None
    try:
        yield b"retry: 2000\n\n"
        while True:
            reading = asyncio.ensure_future(call.read())
            while not (await asyncio.wait({reading}, timeout=KEEPALIVE))[0]:
                yield b": keepalive\n\n"
            try:
                answer = reading.result()
            except grpc.aio.AioRpcError as exc:
                yield f"event: end\ndata: {json.dumps(exc.details() or exc.code().name)}\n\n".encode()
                return
            reading = None
            if answer is grpc.aio.EOF:
                yield b"event: end\ndata: \"the stream ended\"\n\n"
                return
            for event in answer.events:
                yield _sse_event(event)
    finally:
        call.cancel()
        if reading is not None:
            reading.cancel()


def _sse_event(event) -> bytes:
    data = json_format.MessageToDict(event, preserving_proto_field_name=True)
    data["status"] = pages.status_name(event.status)
    data["kind"] = data.get("kind", "").removeprefix("EVENT_KIND_")
    return f"id: {event.id}\nevent: jobplane\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


# ----- helpers --------------------------------------------------------------------------

def page(status: int, html: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, html, "text/html; charset=utf-8", [*SECURITY_HEADERS, *(headers or [])])


def static(name: str) -> Response:
    if name not in STATIC:
        return Response(404, "no such file\n", "text/plain; charset=utf-8")
    data = (resources.files(__package__) / "static" / name).read_bytes()
    return Response(200, data, STATIC[name], [("Cache-Control", "no-cache")])


def _redirect(location: str, *, token: str = "", clear: bool = False) -> Response:
    headers = [("Location", location), *SECURITY_HEADERS]
    if token:
        headers.append(("Set-Cookie", f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"))
    elif clear:
        headers.append(("Set-Cookie", f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"))
    return Response(303, "", "text/plain; charset=utf-8", headers)


def _here(request: Request) -> str:
    return request.path + ("?" + urlencode(request.query) if request.query else "")


def _local(path: str) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def _same_origin(request: Request) -> bool:
    """A form post from this site (browsers send Origin with every POST; the SameSite=Strict
    cookie is the first guard against another site's forms, this the second)."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    return origin is None or origin in (f"http://{host}", f"https://{host}")  # (https: behind a TLS proxy)


def _who(me) -> str:
    role = security_pb2.Role.Name(me.role).removeprefix("ROLE_").lower()
    return f"{me.identity} ({role})"
