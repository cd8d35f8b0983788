"""The optional scale-out hook: a shell command run (rate-limited, off the event loop's
critical path) when queued work exceeds every provider's free slots."""

from __future__ import annotations

import asyncio
import logging
import os
import time

log = logging.getLogger(__name__)


class ScaleOutHook:
    def __init__(self, command: str, interval: float) -> None:
        self.command = command
        self.interval = interval
        self._last = 0.0
        self._running: asyncio.Task | None = None

    def maybe_run(self, unmet_tasks: int) -> None:
        if not self.command or unmet_tasks <= 0 or time.monotonic() - self._last < self.interval:
            return
        if self._running is not None and not self._running.done():
            return
        self._last = time.monotonic()
        self._running = asyncio.get_running_loop().create_task(self._run(unmet_tasks))

    async def _run(self, unmet_tasks: int) -> None:
        env = {**os.environ, "JOBPLANE_UNMET_TASKS": str(unmet_tasks)}
        log.info("queued work exceeds capacity (%d tasks waiting); running scale-out hook", unmet_tasks)
        proc = await asyncio.create_subprocess_shell(self.command, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                     stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode:
            log.warning("scale-out hook exited with %s: %s", proc.returncode, err.decode(errors="replace")[-500:])
