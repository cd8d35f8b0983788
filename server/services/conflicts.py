"""ConflictService: the conflict matrix (list, create, delete), whether a job would be held
now (check), and pairs of job classes that keep failing together (suggest)."""

from __future__ import annotations

import asyncio
import re
import shlex
import time

from jobplane.v1 import conflict_pb2, conflict_pb2_grpc

from ..domain.conflicts import ConflictRule, Selector, check_rule, covers
from ..domain.limits import MAX_NAME, check_map, check_text
from ..errors import InvalidArgument, NotFound
from ..domain.query import page_of
from ..security.policy import current_caller
from . import convert
from .base import Deps, page_size, rpc, visible_owner
from .jobs import prepare
from .spec_fields import hold_mode

DEFAULT_MIN_FAILURES = 3


def selector_from_proto(m: conflict_pb2.JobSelector, path: str = "rule.jobs") -> Selector:
    check_text(f"{path}.job_class", m.job_class, MAX_NAME)
    check_text(f"{path}.name", m.name, MAX_NAME)
    check_map(f"{path}.labels", m.labels)
    return Selector(m.job_class.strip(), m.name.strip(), dict(m.labels))


def selector_to_proto(s: Selector) -> conflict_pb2.JobSelector:
    return conflict_pb2.JobSelector(job_class=s.job_class, name=s.name, labels=s.labels)


def rule_from_proto(m: conflict_pb2.ConflictRule, by: str, now: float) -> ConflictRule:
    jobs, other = selector_from_proto(m.jobs), selector_from_proto(m.other, "rule.other")
    return check_rule(ConflictRule(m.name, m.kind, jobs, other, m.resource.strip(), m.mode, by, now))


def rule_to_proto(r: ConflictRule) -> conflict_pb2.ConflictRule:
    return conflict_pb2.ConflictRule(name=r.name, kind=r.kind, jobs=selector_to_proto(r.jobs),
                                     other=selector_to_proto(r.other), resource=r.resource, mode=r.mode,
                                     created_by=r.created_by, create_time=convert.ts(r.create_time))


class ConflictService(conflict_pb2_grpc.ConflictServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    @rpc
    async def ListConflictRules(self, request, context):
        page = page_of(self.d.core.conflict_rules(), request.page_token, page_size(request.page_size))
        return conflict_pb2.ListConflictRulesResponse(rules=[rule_to_proto(r) for r in page.items],
                                                      next_page_token=page.next_page_token)

    @rpc
    async def CreateConflictRule(self, request, context):
        if not request.HasField("rule"):
            raise InvalidArgument("rule", "missing; send the rule (name, kind, jobs, and other or resource+mode)")
        rule = rule_from_proto(request.rule, current_caller.get().identity, time.time())
        apply = hold_mode("apply_to_running", request.apply_to_running)
        held = await self.d.core.call(lambda engine: engine.add_conflict_rule(rule, apply))
        return conflict_pb2.CreateConflictRuleResponse(rule=rule_to_proto(rule), held_job_ids=[str(j) for j in held])

    @rpc
    async def DeleteConflictRule(self, request, context):
        name = request.name
        await self.d.core.call(lambda engine: engine.remove_conflict_rule(name))
        return conflict_pb2.DeleteConflictRuleResponse()

    @rpc
    async def CheckConflicts(self, request, context):
        which = request.WhichOneof("job")
        if which == "job_id":
            job_id = convert.parse_id("job_id", request.job_id, "job")
            job = await self.d.read(self.d.reads.get_job, job_id, visible_owner())
            if job is None:
                raise NotFound.job(job_id)
            spec = job.spec
        elif which == "spec":
            job_id, (spec, _) = None, await asyncio.to_thread(prepare, request.spec, self.d.config)
        else:
            raise InvalidArgument("job", "send a job_id, or the spec of a job not submitted yet")
        held, reason, blockers = await self.d.core.call(lambda engine: engine.check_job(spec, job_id))
        return conflict_pb2.CheckConflictsResponse(
            held=held, reason=reason,
            blockers=[conflict_pb2.ConflictBlocker(job_id=j, job_name=n, rule=r, reason=why)
                      for j, n, r, why in blockers])

    @rpc
    async def SuggestConflicts(self, request, context):
        if request.min_failures < 0:
            raise InvalidArgument("min_failures", "must be >= 0 (0 = 3)")
        rows = await self.d.read(self.d.conflicts.overlaps, request.min_failures or DEFAULT_MIN_FAILURES)
        rules = list(self.d.core.conflict_rules())
        return conflict_pb2.SuggestConflictsResponse(suggestions=[
            conflict_pb2.ConflictSuggestion(class_a=r.class_a, class_b=r.class_b, failures=r.failures,
                                            last_time=convert.ts(r.last_time), command=_command(r.class_a, r.class_b))
            for r in rows if not covers(rules, r.class_a, r.class_b)])


def _command(a: str, b: str) -> str:
    """The CLI line that adds an exclusive rule for the pair (`a`, `b`: selector terms)."""
    def word(term: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.\-]", "-", term.partition("=")[2])

    name = f"{word(a)}-vs-{word(b)}" if a != b else f"{word(a)}-alone"
    other = f" --other {shlex.quote(b)}" if a != b else ""
    return f"jobplane conflicts add {name[:64]} --exclusive --jobs {shlex.quote(a)}{other}"
