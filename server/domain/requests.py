"""Idempotent submit (Google AIP-155): a submit that carries a request id makes at most one
job per owner and id. The engine asks `prior` before it makes a job and `remember`s the job
it made; an id is remembered `ttl` seconds from its submit. The job table keeps each job's
request id and spec digest (unique per owner), and the server loads the ids younger than
the TTL before its first submit, so a retry after a restart finds its job too."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import AlreadyExists

DEFAULT_TTL = 86400.0  # seconds: AIP-155 asks for at least a day


@dataclass(frozen=True, slots=True)
class RequestKey:
    """What makes two submits the same request: the caller's id and a digest of its spec."""

    id: str  # a UUID in its canonical, lower-case form
    digest: str  # sha256 (hex) of the spec's deterministic serialization
    call: str = ""  # the submitting call's own id, the same on its retries; "" if not sent


@dataclass(frozen=True, slots=True)
class PriorJob:
    """The job an earlier submit with the same request id made."""

    id: int
    digest: str
    time: float  # when it was submitted
    call: str = ""  # the call_id of the submit that made it ("" if none)

    def made_by(self, key: RequestKey) -> bool:
        """Whether the submit that made it was an earlier try of `key`'s own call (whose answer
        was lost), not another submit of the same request id."""
        return bool(key.call) and key.call == self.call


class Requests:
    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self._jobs: dict[tuple[str, str], PriorJob] = {}  # (owner, request id) -> its job
        self._order: deque[tuple[str, str]] = deque()  # keys in submit order, for expiry

    def load(self, rows: Iterable[tuple[str, str, str, int, float, str]], ttl: float, now: float) -> None:
        """Replace what is remembered with stored (owner, request id, digest, job id, submit
        time, call id) rows, oldest first, and remember ids for `ttl` seconds from now on."""
        self.ttl = ttl
        self._jobs.clear()
        self._order.clear()
        for owner, request_id, digest, job_id, time, call in rows:
            self._add((owner, request_id), PriorJob(job_id, digest, time, call))
        self._expire(now)

    def prior(self, owner: str, key: RequestKey, now: float) -> PriorJob | None:
        """The job this owner's request already made, if any; AlreadyExists when the id was
        used for another spec."""
        self._expire(now)
        prior = self._jobs.get((owner, key.id))
        if prior is not None and prior.digest != key.digest:
            raise AlreadyExists(f"request_id: {key.id} was already used for job {prior.id} with another spec; "
                                "send a new request id to submit a new job (or the same spec to get job "
                                f"{prior.id} back)")
        return prior

    def remember(self, owner: str, key: RequestKey, job_id: int, now: float) -> None:
        self._add((owner, key.id), PriorJob(job_id, key.digest, now, key.call))

    def forget(self, job_ids: Iterable[int]) -> None:
        """These jobs are being purged: a retry of their submit makes a new job, not a job that is gone."""
        gone = set(job_ids)
        for key in [k for k, prior in self._jobs.items() if prior.id in gone]:
            del self._jobs[key]  # its key in _order is skipped when it expires

    def __len__(self) -> int:
        return len(self._jobs)

    def _add(self, key: tuple[str, str], prior: PriorJob) -> None:
        self._jobs[key] = prior
        self._order.append(key)

    def _expire(self, now: float) -> None:
        cutoff = now - self.ttl
        while self._order:
            key = self._order[0]
            prior = self._jobs.get(key)
            if prior is not None and prior.time > cutoff:
                return
            self._order.popleft()
            if prior is not None:
                del self._jobs[key]
