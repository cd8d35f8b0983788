"""How an agent stops: it tells the server, which hands its attempts on as a drain does
(within a bound), kills and drops what is still held (reporting nothing: the server continues
it once it loses the agent), delivers its last reports and closes its stream. A part of Agent
(agent.py), on its state."""

from __future__ import annotations

import asyncio
import logging

from jobplane.v1 import provider_pb2

from .results import StopRequest, request_stop

log = logging.getLogger("jobplane.agent.agent")

# On shutdown, how long to wait for the server to acknowledge the last reports.
SHUTDOWN_FLUSH_SECONDS = 2.0
# On a graceful stop, how long past the stop wait and the kill grace the agent waits for the
# server to hand its attempts on (cancel them, acknowledge their reports) before it kills and
# drops what is left itself.
HAND_ON_MARGIN = 3.0
# On shutdown, how long the server has to end the stream after our goodbye.
SHUTDOWN_CLOSE_SECONDS = 1.0


class Shutdown:
    """Agent's stopping (a mixin: the attributes are Agent's)."""

    async def _shutdown(self, link: asyncio.Task[None]) -> None:
        self._stopping = True
        if not link.done() and self._link.connected:
            await self._hand_on()
        await self._drop_attempts()
        if not link.done():
            await self._say_goodbye(link)
        if self._pool is not None:
            await self._pool.close()
        await self._keeper.close()

    async def _hand_on(self) -> None:
        """Tell the server we are stopping: it hands our attempts on as a drain does (cancels
        them, or lets them finish within `stop_wait`). Stay until it has, within a bound."""
        wait = self.config.stop_wait
        await self._link.say_goodbye(provider_pb2.Goodbye(wait=wait > 0, deadline_seconds=wait))
        if self._attempts:
            how = f"letting them finish for up to {wait:g}s" if wait else "handing them on"
            log.info("stopping with %d attempts: %s", len(self._attempts), how)
        bound = wait + self.config.kill_grace + HAND_ON_MARGIN
        try:
            await asyncio.wait_for(self._handed_on(), bound)
        except TimeoutError:
            log.warning("the server did not hand on %d attempts within %gs",
                        len(self._attempts), bound)

    async def _handed_on(self) -> None:
        """Until no attempt is held and every report is acknowledged."""
        while True:
            await self._none_held.wait()
            await self._outbox.wait_settled()
            if not self._attempts:
                return

    async def _drop_attempts(self) -> None:
        """Kill the attempts still held and drop them, reporting nothing: the server hands them
        on once it loses this provider. Never a FAILED report for a task that did not fail.
        An outside job (external, slurm) is not cancelled but left running with its record:
        the attempt that continues the task adopts it, from the id the server was told or
        from the record when this agent starts again."""
        self._dropped = True
        for attempt in self._attempts.values():
            attempt.dropped = True
            request_stop(attempt.stop, StopRequest.shutdown())
        tasks = [attempt.task for attempt in self._attempts.values()]
        if tasks:
            log.info("stopping %d attempts; the server hands them on when it loses this agent",
                     len(tasks))
            await asyncio.wait(tasks)

    async def _say_goodbye(self, link: asyncio.Task[None]) -> None:
        """Deliver the last reports if the stream is up (best effort), then close it."""
        if not await self._link.flush(SHUTDOWN_FLUSH_SECONDS) and self._outbox.unacknowledged():
            log.warning("%d reports were not acknowledged before shutdown",
                        self._outbox.unacknowledged())
        try:
            await asyncio.wait_for(self._link.close(), SHUTDOWN_CLOSE_SECONDS)
            await asyncio.wait({link}, timeout=SHUTDOWN_CLOSE_SECONDS)
        except TimeoutError:
            pass  # a server that does not read; cancelling the stream below is goodbye enough
        link.cancel()
        await asyncio.gather(link, return_exceptions=True)

