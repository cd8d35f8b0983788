"""Finished jobs, the leader's to bring back or let go: a rerun loads one from the database into
the engine (domain/reopen.py); a purge deletes those that ended before a time, by request
(PurgeJobs) or every so often past --job-retention. One at a time, under one lock: a rerun reads
the job's rows and reopens it before anything else may read or delete them, so it never brings
back a job that is being purged, nor one whose rows a rerun just before it changed."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Coroutine
from concurrent.futures import Executor
from typing import Any, Callable, TypeVar

from ..core import Core
from ..errors import Deposed, NotFound, StoreFailure
from ..store.failures import reading
from ..store.finished import FinishedJobStore

log = logging.getLogger(__name__)

JOBS_PER_ROUND = 100  # jobs one round of a purge takes on; the lock is let go between rounds
T = TypeVar("T")


class FinishedJobs:
    def __init__(self, store: FinishedJobStore, writer: Executor, reader: Executor) -> None:
        self._store = store
        self._writer = writer  # purges run on the writer thread, between the core's commits
        self._reader = reader
        self._lock = asyncio.Lock()

    async def rerun(self, core: Core, job_id: int, owner: str | None, failed_only: bool, by: str) -> list[int]:
        """Rerun the job (`owner`: only if it is theirs); the ids of the tasks that run again."""
        return await _to_the_end(self._rerun(core, job_id, owner, failed_only, by))

    async def purge(self, core_of: Callable[[], Core], before: float) -> int:
        """Purge the jobs that finished before `before`, a round of them at a time; how many.
        `core_of`: the leader's core now (it raises Deposed once this replica stops leading)."""
        purged = 0
        while (gone := await _to_the_end(self._purge_round(core_of, before))) is not None:
            purged += gone
        return purged

    async def _rerun(self, core: Core, job_id: int, owner: str | None, failed_only: bool, by: str) -> list[int]:
        async with self._lock:
            stored = await self._run(self._reader, functools.partial(reading, self._store.db, self._store.load),
                                     job_id, owner)
            if stored is None:
                raise NotFound.job(job_id)
            return await core.call(lambda engine: engine.rerun_job(stored.job, stored.tasks, failed_only, by,
                                                                   stored.unended))

    async def _purge_round(self, core_of: Callable[[], Core], before: float) -> int | None:
        """Up to JOBS_PER_ROUND jobs purged; how many (None: there were none left to purge)."""
        async with self._lock:
            core = core_of()
            ids = await self._run(self._writer, self._store.purgeable, before, JOBS_PER_ROUND, core.term)
            if not ids:
                return None
            await core.call(lambda engine: engine.forget_requests(ids))
            done, gone = False, 0
            while not done:
                done, gone = await self._run(self._writer, self._store.purge_step, ids, core.term)
            return gone

    async def purge_every(self, retention: float, core_of: Callable[[], Core]) -> None:
        """Purge the jobs that finished more than `retention` seconds ago, every so often, while
        this replica leads (run it per leadership term)."""
        while True:
            await asyncio.sleep(min(60.0, max(0.5, retention / 4)))
            try:
                purged = await self.purge(core_of, time.time() - retention)
            except Deposed:
                return
            except StoreFailure as exc:
                log.warning("purging finished jobs past the retention: %s", exc)
                continue
            if purged:
                log.info("purged %d jobs that finished more than %gs ago", purged, retention)

    @staticmethod
    async def _run(executor: Executor, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, *args))


async def _to_the_end(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end even if the caller stops waiting (a deadline, a cancelled call):
    it holds the lock until what it started on the writer or in the core is done."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # its error is the caller's, or nobody's
    return await asyncio.shield(task)


__all__ = ["FinishedJobs"]
