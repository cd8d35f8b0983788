"""The console's forms that change something: hold (plain, suspend or requeue), release and
cancel a job; add and remove conflict rules; save and delete views. Each is one API call with
the signed-in user's token: the API decides who may (a viewer may not; a submitter only on their
own jobs; rules need an operator) and records it in the audit log. A refusal is a page saying why."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from jobplane.client.conflicts import rule_from_mapping
from jobplane.v1 import conflict_pb2, job_pb2, view_pb2

from . import pages
from .gateway import Gateway
from .server import Request, Response
from .web import local, page, redirect, who

log = logging.getLogger(__name__)

HOLD_MODES = {"": job_pb2.HOLD_MODE_UNSPECIFIED, "suspend": job_pb2.HOLD_MODE_SUSPEND,
              "requeue": job_pb2.HOLD_MODE_REQUEUE}


class Actions:
    def __init__(self, gateway: Gateway) -> None:
        self._api = gateway

    async def job(self, request: Request, token: str, me, job_id: str, action: str) -> Response:
        """Cancel, hold (`mode`: "", suspend, requeue) or release a job; back to `next` or its page."""
        form = request.form()
        reason, mode = form.get("reason", ""), form.get("mode", "")
        if mode not in HOLD_MODES:
            return _refused(400, f"mode: {mode!r} is not a hold mode; use suspend, requeue or none", me)
        if action == "cancel":
            await self._api.call(self._api.jobs.CancelJob, job_pb2.CancelJobRequest(job_id=job_id, reason=reason),
                                 token)
        elif action == "hold":
            await self._api.call(self._api.jobs.HoldJob, job_pb2.HoldJobRequest(
                job_id=job_id, reason=reason, mode=HOLD_MODES[mode]), token)
        else:
            await self._api.call(self._api.jobs.ReleaseJob, job_pb2.ReleaseJobRequest(job_id=job_id), token)
        return redirect(local(form.get("next", "") or f"/jobs/{job_id}"))

    async def add_rule(self, request: Request, token: str, me) -> Response:
        """A conflict rule from the conflicts page's form (selectors as `jobplane conflicts add`
        takes them: `class=etl name=load-* label.team=etl`)."""
        form = request.form()
        fields = {key: form[key].strip() for key in ("name", "kind", "jobs", "other", "resource", "mode")
                  if form.get(key, "").strip()}
        apply = form.get("apply_to_running", "")
        if apply not in HOLD_MODES:
            return _refused(400, f"apply_to_running: {apply!r} is not suspend or requeue", me)
        try:
            rule = rule_from_mapping(fields)
        except ValueError as exc:
            return _refused(400, f"The rule was not added: {exc}", me)
        await self._api.call(self._api.conflicts.CreateConflictRule, conflict_pb2.CreateConflictRuleRequest(
            rule=rule, apply_to_running=HOLD_MODES[apply]), token)
        return redirect("/conflicts")

    async def remove_rule(self, request: Request, token: str, me, name: str) -> Response:
        await self._api.call(self._api.conflicts.DeleteConflictRule, conflict_pb2.DeleteConflictRuleRequest(
            name=name), token)
        return redirect("/conflicts")

    async def save_view(self, request: Request, token: str, me) -> Response:
        """The job list's current filter and order, saved under a name (replacing one of the same name)."""
        form = request.form()
        view = view_pb2.View(name=form.get("name", "").strip(), resource=view_pb2.VIEW_RESOURCE_JOBS,
                             filter=form.get("filter", ""), order_by=form.get("order_by", ""))
        saved = (await self._api.call(self._api.views.SaveView, view_pb2.SaveViewRequest(view=view), token)).view
        return redirect("/jobs?" + urlencode({"view": saved.name}))

    async def delete_view(self, request: Request, token: str, me, name: str) -> Response:
        await self._api.call(self._api.views.DeleteView, view_pb2.DeleteViewRequest(name=name), token)
        return redirect("/jobs")


def _refused(status: int, message: str, me) -> Response:
    return page(status, pages.error_page(status, message, who=who(me)))
