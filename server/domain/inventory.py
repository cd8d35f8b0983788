"""Inventory: which provider has which prerequisites, found out by scans that ride along with
assignments (piggy-backed) or, when a ready task's prerequisites are unknown everywhere, by
explicit scan requests; and placement only where a task's prerequisites are present and
fresh. A component of Engine: the signatures of unfinished work are its state; each provider's
inventory is kept on the provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import FailedPrecondition, NotFound
from .dispatch import HasAll
from .model import ProviderState, Status, TaskDraft, TaskState
from .signatures import Signature
from .changes import InventoryChange, ScanAsk
from .state import ProviderRt, TaskRt

if TYPE_CHECKING:
    from .engine import Engine

PIGGYBACK_MAX = 32  # signatures sent along with one assignments message
RESCAN_AFTER = 30.0  # seconds before a scan that got no answer is asked again
SCANNERS = (ProviderState.ACTIVE, ProviderState.STANDBY, ProviderState.DRAINING)


@dataclass
class InvEntry:
    """What one provider's scan found for one signature."""

    present: bool
    scan_time: float
    expires: float
    details: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    source: str = "request"  # what asked for it: piggyback, request or recheck
    description: str = ""

    def fresh(self, now: float) -> bool:
        return self.expires > now


@dataclass(frozen=True)
class ScanResult:
    signature_id: str
    present: bool
    details: dict[str, str]
    reason: str
    scan_time: float


class Inventory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.signatures: dict[str, Signature] = {}  # id -> every prerequisite of unfinished work
        self._prereq_tasks: set[int] = set()  # unfinished tasks with prerequisites

    # ----- placement -----------------------------------------------------------------

    def has_all(self, provider: ProviderRt) -> HasAll:
        """Whether `provider`'s inventory shows every signature of a set present and fresh."""
        now, inventory = self.engine.now, provider.inventory

        def check(ids: frozenset) -> bool:
            return all((e := inventory.get(i)) is not None and e.present and e.fresh(now) for i in ids)

        return check

    def remember(self, task: TaskRt) -> None:
        for signature in task.spec.prerequisites:
            self.signatures[signature.id] = signature
        if task.spec.prerequisites:
            self._prereq_tasks.add(task.id)

    def someone_has(self, ids: frozenset) -> bool:
        return any(self.has_all(p)(ids) for p in self.engine.providers.values() if p.conn_id)

    def waiting_reason(self, prerequisites: tuple[Signature, ...]) -> str:
        return "scanning for " + ", ".join(s.describe() for s in prerequisites)

    # ----- admission -----------------------------------------------------------------

    def unmet(self, drafts: list[TaskDraft]) -> tuple[int, str] | None:
        """(template index, why) of a task whose prerequisites every connected provider was
        seen (freshly) to lack; unknown ones are not unmet: they get scanned."""
        live = [p for p in self.engine.providers.values() if p.state in SCANNERS and p.conn_id]
        for draft in drafts:
            signatures = draft.spec.prerequisites
            if not signatures or not live:
                continue
            if all(self._known_lacking(p, signatures) for p in live):
                missing = sorted({s.describe() for p in live for s in signatures if self._lacks(p, s)})
                return draft.template_index, f"no connected provider has {', '.join(missing)}"
        return None

    def _lacks(self, provider: ProviderRt, signature: Signature) -> bool:
        entry = provider.inventory.get(signature.id)
        return entry is not None and entry.fresh(self.engine.now) and not entry.present

    def _known_lacking(self, provider: ProviderRt, signatures: tuple[Signature, ...]) -> bool:
        inventory = provider.inventory
        known = all((e := inventory.get(s.id)) is not None and e.fresh(self.engine.now) for s in signatures)
        return known and any(self._lacks(provider, s) for s in signatures)

    # ----- scans ---------------------------------------------------------------------

    def plan_scans(self) -> None:
        """After dispatch: piggy-back unknown signatures on this batch's assignments, and ask
        for scans where a ready task's prerequisites are unknown on every candidate."""
        if not self._prereq_tasks:
            return
        e = self.engine
        wanted = self._wanted_signatures() if e.changes.assignments else set()
        for provider_id in list(e.changes.assignments) if wanted else ():
            provider = self.engine.providers.get(provider_id)
            if provider is not None:
                missing = self._unknown(provider, wanted)[:PIGGYBACK_MAX]
                self._ask(provider, missing, "piggyback", e.changes.piggyback)
        for labels, ids in self.engine.ready.prerequisite_groups():
            candidates = [p for p in self.engine.providers.values() if p.state in SCANNERS and p.conn_id
                          and p.accepting and all(p.labels.get(k) == v for k, v in labels)]
            if any(self.has_all(p)(ids) for p in candidates):
                continue
            for provider in candidates:
                self._ask(provider, self._unknown(provider, ids), "request", e.changes.scans)

    def _wanted_signatures(self) -> set[str]:
        """Prerequisites of work not done yet (queued or waiting for predecessors)."""
        wanted = set()
        for tid in list(self._prereq_tasks):
            task = self.engine.tasks.get(tid)
            if task is None or task.state in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED):
                self._prereq_tasks.discard(tid)
            else:
                wanted |= task.spec.prerequisite_ids
        return wanted

    def _unknown(self, provider: ProviderRt, ids) -> list[str]:
        """Signatures the provider has no fresh entry for and is not scanning already."""
        out = []
        for sid in sorted(ids):
            entry, asked = provider.inventory.get(sid), provider.scanning.get(sid)
            if (entry is None or not entry.fresh(self.engine.now)) and (asked is None or self.engine.now - asked[0] > RESCAN_AFTER):
                out.append(sid)
        return out

    def _ask(self, provider: ProviderRt, ids: list[str], source: str, outbox: dict) -> None:
        if not ids:
            return
        for sid in ids:
            provider.scanning[sid] = (self.engine.now, source)
        outbox.setdefault(provider.id, []).extend(ScanAsk(sid, self.signatures[sid].as_dict()) for sid in ids)

    def request_scan(self, provider_id: str, signatures: tuple[Signature, ...]) -> list[str]:
        """An operator's explicit scan of these signatures on one provider."""
        provider = self.engine.providers.get(provider_id)
        if provider is None:
            raise NotFound(f"provider {provider_id!r} not found; `jobplane providers list` shows them")
        if not provider.conn_id:
            raise FailedPrecondition(f"provider {provider_id!r} is not connected ({provider.state.name}); "
                                     "scan it once it is back")
        for signature in signatures:
            self.signatures[signature.id] = signature
        ids = [s.id for s in signatures]
        self._ask(provider, ids, "request", self.engine.changes.scans)
        return ids

    def scan_report(self, provider_id: str, conn_id: int, results: list[ScanResult]) -> None:
        provider = self.engine.providers.get(provider_id)
        if provider is None or provider.conn_id != conn_id:
            return
        provider.last_seen = self.engine.now
        for result in results:
            signature = self.signatures.get(result.signature_id)
            _, source = provider.scanning.pop(result.signature_id, (0.0, "request"))
            if signature is not None:
                self._record(provider, signature, result, source)
        self.engine.want_dispatch()
        self._explain_waiting()

    def _record(self, provider: ProviderRt, signature: Signature, result: ScanResult, source: str) -> None:
        entry = InvEntry(result.present, result.scan_time, self.engine.now + self.engine.config.inventory_ttl,
                         dict(result.details), result.reason, source, signature.describe())
        provider.inventory[signature.id] = entry
        self.engine.changes.inventory.append(InventoryChange(provider.id, signature.id, entry, signature.as_dict()))

    def _explain_waiting(self) -> None:
        """Queued tasks whose prerequisites every candidate lacks say what is missing where."""
        live = [p for p in self.engine.providers.values() if p.state in SCANNERS and p.conn_id]
        for tid in list(self._prereq_tasks):
            task = self.engine.tasks.get(tid)
            if task is None or task.state != TaskState.QUEUED or not live:
                continue
            signatures = task.spec.prerequisites
            if all(self._known_lacking(p, signatures) for p in live):
                missing = [f"{s.describe()} (absent on {', '.join(p.id for p in live if self._lacks(p, s))})"
                           for s in signatures if any(self._lacks(p, s) for p in live)]
                reason = "waiting: no provider has " + "; ".join(missing)
                if task.reason != reason:  # a runtime condition no provider meets: on hold (issue 8)
                    self.engine.lifecycle.show(task, Status.ON_HOLD, reason)

    # ----- a prerequisite that vanished ----------------------------------------------

    def vanished(self, task: TaskRt, provider_id: str, missing: str, reason: str) -> None:
        """The agent found a prerequisite gone before starting: forget it there, go elsewhere."""
        provider = self.engine.providers.get(provider_id)
        signatures = task.spec.prerequisites
        for index in (int(i) for i in missing.split(",") if i.strip().isdigit()):
            if provider is not None and index < len(signatures):
                gone = ScanResult(signatures[index].id, False, {}, reason, self.engine.now)
                self._record(provider, signatures[index], gone, "recheck")
        self.engine.lose(task, f"prerequisite missing on {provider_id}: {reason}", fence=False)  # it never started


__all__ = ["InvEntry", "Inventory", "ScanResult"]
