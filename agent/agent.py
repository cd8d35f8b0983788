"""The Agent: runs what the server assigns, within its slots, and reports how each attempt ends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobplane.logs import attempt_ids
from jobplane.v1 import provider_pb2

from . import assignments
from .checkpoint import CHECKPOINT_FILE_ENV
from .checkpoint_files import CheckpointFiles, checkpoint_file
from .commands import CommandSpec, Leftover, resume_command, run_command
from .config import AgentConfig
from .credentials import open_credentials
from .environment import agent_env, own_env
from .keeper_client import Keeper
from .link import Link
from .metrics import AgentGauges, AgentMetrics, served
from .outbox import Outbox
from .pause import Pause, Pauses
from .procstat import cpu_ticks_by_group
from .results import (NOT_STARTED, SHUTDOWN_STATE, AttemptLost, AttemptResult, Outcome, Started, StopRequest,
                      request_stop)
from .shutdown import Shutdown
from .slots import Slots
from .statedir import StateDir, state_root

if TYPE_CHECKING:
    from .external_record import ExternalRecord
    from .outside_jobs import OutsideJobs
    from .pyworkers import WorkerPool

log = logging.getLogger(__name__)

# A task the server queued ahead for which no slot frees within this long (it waits behind one
# that turned out long, or a paused one) is given back unstarted, for the server to queue again
# (Assignment.queued_ahead): the server promises such tasks start within about a quarter second.
GIVE_BACK_AFTER = 1.0

AttemptKey = tuple[str, int]


@dataclass
class _Attempt:
    """An attempt the agent holds: its stop handle, the task running it, and once it runs, where."""

    stop: asyncio.Future[StopRequest]
    task: asyncio.Task[None]
    started: Started | None = None
    started_at: float = 0.0
    received: float = 0.0  # when its assignment arrived (monotonic; 0: adopted), for spawn latency
    # Killed by the agent as it stopped without handing it on: not reported, its directory
    # removed (the server continues it elsewhere once the provider is lost).
    dropped: bool = False
    # A command the keeper runs (only those can be suspended), and its pause.
    command: bool = False
    pause: Pause = field(default_factory=Pause)
    # Suspended by the server before it started (on_suspend): paused as soon as it starts.
    held: bool = False
    # Given a slot (or adopted): it starts, or has, so a give-back (on_give_back) leaves it be.
    slotted: bool = False


class Agent(Shutdown):
    """Connects to the server, runs the attempts it assigns and reports how they end."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._state = StateDir(state_root(config))
        # The agent's environment as its tasks inherit it, read once (environment.agent_env).
        self._agent_env = agent_env()
        self._keeper = Keeper(self._state.root, containment=config.containment,
                              heartbeat=config.heartbeat_interval, log_format=config.log_format,
                              provider=config.name, env=self._agent_env)
        self._outbox = Outbox(on_acked=self._state.discard)
        if config.queue_ahead:  # gather reports while a wave of tasks waits for a slot
            self._outbox.gather_while(lambda: self._slots.waiting, min(config.slots, config.queue_ahead))
        # Made at the first Python task (_python_pool): an agent that runs none never loads it.
        self._pool: WorkerPool | None = None
        self.metrics = AgentMetrics()
        self._link = Link(config, self._outbox, self, open_credentials(config), metrics=self.metrics)
        self._checkpoints = CheckpointFiles(lambda key, text: self._outbox.checkpoint(*key, text))
        # Made at the first external or Slurm attempt (_outside_jobs), as the pool is.
        self._outside: OutsideJobs | None = None
        self._slots = Slots(config.slots, on_left=self._outbox.slot_taken)
        self._attempts: dict[AttemptKey, _Attempt] = {}
        self._pauses = Pauses(self._keeper)
        self._none_held = asyncio.Event()
        self._none_held.set()
        self._running = 0
        # Commands adopted from an earlier process, paused until the server's welcome (on_welcome).
        self._adopted_paused: dict[AttemptKey, Path] = {}
        self._stop_requested = asyncio.Event()
        self._stopped = asyncio.Event()
        self._started = False
        self._stopping = False
        # Past the hand-on: what is still held is killed, and nothing new is taken.
        self._dropped = False

    async def run(self) -> None:
        """Run until `stop()` is called; raises AgentError (NameInUse, HelloRejected, NotEnrolled,
        EnrollmentRefused, KeeperUnavailable) if the server refuses us, we cannot prove who we
        are, or we cannot run commands."""
        if self._started:
            raise RuntimeError("an Agent can run only once")
        self._started = True
        try:
            async with served(self.config.metrics, self._render_metrics):
                await self._run()
        finally:
            self._stopped.set()

    async def _run(self) -> None:
        self._state.lock()
        try:
            # The keeper first: holding the lease again is what keeps an earlier process's
            # attempts alive for us to adopt.
            await self._keeper.open()
            await self._adopt_leftovers()
        except BaseException:
            await self._keeper.close()
            self._state.unlock()
            raise
        link = asyncio.create_task(self._link.run(), name="jobplane-agent-link")
        watcher = asyncio.create_task(self._checkpoints.run(), name="jobplane-agent-checkpoints")
        sweeper = asyncio.create_task(self._sweep_logs(), name="jobplane-agent-log-retention")
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({link, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            await self._shutdown(link)
            watcher.cancel()
            sweeper.cancel()
            await asyncio.gather(watcher, sweeper, return_exceptions=True)
            self._state.unlock()
        if not link.cancelled():
            link.result()

    async def stop(self) -> None:
        """Stop gracefully: take no new work, hand every attempt on through the server (or let
        them finish, with `stop_wait`), disconnect, and wait until `run()` is done."""
        self._stop_requested.set()
        if self._started:
            await self._stopped.wait()

    async def _render_metrics(self) -> str:
        log_bytes = await asyncio.to_thread(self._state.log_bytes)
        return self.metrics.render(AgentGauges(self.config.slots, self._running, self._link.connected, log_bytes))

    async def _sweep_logs(self) -> None:
        """Remove kept output older than --log-retention, now and then, off the event loop."""
        retention = self.config.log_retention
        while True:
            try:
                removed = await asyncio.to_thread(self._state.sweep_logs, retention, list(self._attempts))
                if removed:
                    log.info("removed the output of %d attempts older than --log-retention %gs", len(removed),
                             retention)
            except OSError as exc:
                log.warning("cannot remove old output: %s", exc)
            await asyncio.sleep(min(max(retention / 4, 0.2), 60.0))

    # The LinkHandler side: called by the link for the server.

    def held_attempts(self) -> list[AttemptKey]:
        """Attempts running or queued here, or finished with the report not yet acknowledged."""
        # Finished ones count as held so that a reconnect keeps them with us until their
        # re-sent FINISHED report lands, instead of the server handing them on and rerunning them.
        return list(self._attempts) + self._outbox.finishing()

    def free_slots(self) -> int:
        """Slots not taken by a running or queued attempt; none once stopping."""
        if self._stopping:
            return 0
        return max(0, self.config.slots - len(self._attempts))

    def running_count(self) -> int:
        """Attempts running right now."""
        return self._running

    def on_assign(self, assignments: list[provider_pb2.Assignment]) -> None:
        """Start each assignment, or queue it until a slot is free."""
        loop = asyncio.get_running_loop()
        for assignment in assignments:
            key = (assignment.task_id, assignment.attempt)
            if key in self._attempts:
                log.warning("ignoring a second assignment of task %s attempt %d", *key, extra=attempt_ids(key))
            elif self._dropped:
                log.info("not taking task %s attempt %d: this agent is leaving", *key, extra=attempt_ids(key))
            else:  # once stopping, it does not start: it waits to be handed on (_in_slot)
                stop: asyncio.Future[StopRequest] = loop.create_future()
                task = asyncio.create_task(self._run_attempt(assignment, stop))
                self._hold(key, _Attempt(stop, task, received=time.monotonic()))

    def on_cancel(self, attempts: list[provider_pb2.AttemptRef], reason: str) -> None:
        """Stop each attempt that is running or queued here; others are not ours to stop."""
        for ref in attempts:
            attempt = self._attempts.get((ref.task_id, ref.attempt))
            if attempt is None:
                continue
            # An outside job handed on to another attempt is left running.
            request = StopRequest.cancel(reason, ref.handed_on_external_job_id)
            if attempt.pause.paused and attempt.started is not None:  # continued first, so that it
                self._pauses.change((ref.task_id, ref.attempt), attempt.started.pgid, attempt.pause, False,
                                    then=lambda a=attempt, r=request: request_stop(a.stop, r))  # gets its SIGTERM
            else:
                request_stop(attempt.stop, request)

    def on_give_back(self, attempts: list[provider_pb2.AttemptRef], reason: str) -> None:
        """Give back each of these attempts that has not been given a slot: it ends unstarted
        (raw state not_started) and the server queues its task again. One given a slot has
        started, or is starting: it runs on."""
        for ref in attempts:
            key = (ref.task_id, ref.attempt)
            attempt = self._attempts.get(key)
            if attempt is not None and not attempt.slotted:
                log.info("giving back task %s attempt %d unstarted: %s", *key, reason, extra=attempt_ids(key))
                request_stop(attempt.stop, StopRequest.give_back(reason))

    def on_suspend(self, attempts: list[provider_pb2.AttemptRef], resume: bool, reason: str) -> None:
        """Pause each of these command attempts in place (or continue it, with `resume`)."""
        for ref in attempts:
            key = (ref.task_id, ref.attempt)
            attempt = self._attempts.get(key)
            if attempt is None:
                continue
            if attempt.started is None:  # not started yet (the server saw it assigned): held until it starts
                attempt.held = not resume
                log.info("%s task %s attempt %d before it starts: %s", "resuming" if resume else "suspending",
                         *key, reason, extra=attempt_ids(key))
            elif not attempt.command:
                log.warning("cannot %s task %s attempt %d: only a running command can be",
                            "resume" if resume else "suspend", *key)
            else:
                log.info("%s task %s attempt %d: %s", "resuming" if resume else "suspending", *key, reason)
                self._pauses.change(key, attempt.started.pgid, attempt.pause, not resume)

    def _pause_held(self, key: AttemptKey, attempt: _Attempt) -> None:
        """An attempt suspended before it started has just started: paused at once (the server
        keeps it held on its start report, and the release continues it)."""
        attempt.held = False
        if attempt.command:
            log.info("suspending task %s attempt %d as it starts", *key, extra=attempt_ids(key))
            self._pauses.change(key, attempt.started.pgid, attempt.pause, True)  # type: ignore[union-attr]
        else:
            log.warning("cannot suspend task %s attempt %d: only a running command can be", *key)

    def containment(self) -> tuple[str, float]:
        """How attempts are contained (cgroup or subreaper), and the keeper's kill deadline."""
        return self._keeper.containment, self._keeper.kill_deadline

    def on_welcome(self, welcome: provider_pb2.Welcome) -> None:
        """The server's reconnect grace is how long the keeper keeps our attempts for a new
        agent process if this one dies. The commands adopted from an earlier process run on if
        the server kept them with us (a server that does not say: all of them); the others stay
        paused until the stop the server sends for them."""
        if welcome.reconnect_grace_seconds > 0:
            self._keeper.set_grace(welcome.reconnect_grace_seconds)
        if self._adopted_paused:
            kept = {(ref.task_id, ref.attempt) for ref in welcome.kept}
            run_on = []
            for key, directory in self._adopted_paused.items():
                if key in kept or not welcome.lists_kept:
                    run_on.append(directory)
                else:
                    log.info("task %s attempt %d stays paused: the server gave it up while no agent process "
                             "held it", *key, extra=attempt_ids(key))
            self._adopted_paused = {}
            if run_on:
                self._keeper.run_on(run_on)

    def attempt_logs(self, task_id: str, attempt: int) -> tuple[Path, Callable[[], bool]]:
        key = (task_id, attempt)
        return self._state.log_dir(key), lambda: key in self._attempts and not self._attempts[key].task.done()

    async def running_status(self) -> list[provider_pb2.AttemptStatus]:
        """How far each running attempt has got: its output bytes plus its CPU ticks."""
        running = [(key, a) for key, a in self._attempts.items() if a.started is not None]
        groups = {a.started.pgid for _, a in running if a.started.pgid > 0}  # type: ignore[union-attr]
        ticks = await asyncio.to_thread(cpu_ticks_by_group, groups) if groups else {}
        now = time.monotonic()
        return [
            provider_pb2.AttemptStatus(
                task_id=task_id,
                attempt=number,
                progress=a.started.output_bytes() + ticks.get(a.started.pgid, 0),  # type: ignore[union-attr]
                running_seconds=now - a.started_at,
            )
            for (task_id, number), a in running
        ]

    # Running attempts.

    async def _adopt_leftovers(self) -> None:
        """Take over the attempts an earlier process of this agent started and did not report:
        commands it left running or finished, and jobs it submitted to an outside scheduler.

        They go into the hello's `running` list, so the server keeps them with us. The keeper
        hands over the running commands and kills any it runs that we do not claim (one that
        crashed as it started, before its pid was written): the server hands those on.
        """
        loop = asyncio.get_running_loop()
        leftovers = self._state.leftovers()
        alive = {key: leftover.attempt_dir for key, leftover in leftovers.items()
                 if isinstance(leftover, Leftover) and leftover.alive()}
        # Paused until the server's welcome says it kept them with us (on_welcome): past its
        # reconnect grace it gave them up and may run them elsewhere, so they must not run on.
        paused = self._keeper.adopts_paused
        await self._keeper.adopt(alive.values(), only=True, paused=paused)
        self._adopted_paused = dict(alive) if paused else {}
        for key, leftover in leftovers.items():
            log.info("adopting task %s attempt %d from an earlier run of this agent", *key, extra=attempt_ids(key))
            stop: asyncio.Future[StopRequest] = loop.create_future()
            if isinstance(leftover, Leftover):
                self._checkpoints.watch(key, checkpoint_file(leftover.attempt_dir))
                running = self._resume(key, leftover, stop)
            else:
                running = self._resume_outside(key, leftover, stop)
            self._hold(key, _Attempt(stop, asyncio.create_task(self._report(key, running)), slotted=True))

    async def _resume(self, key: AttemptKey, leftover: Leftover,
                      stop: asyncio.Future[StopRequest]) -> AttemptResult:
        self._running += 1
        attempt = self._attempts[key]
        attempt.command = True
        self._slots.hold()  # it runs in one of our slots, as it did in the earlier process
        try:
            return await resume_command(leftover, kill_grace=self.config.kill_grace, stop=stop,
                                        on_start=self._on_start(key),  # reported again: the first may be lost
                                        keeper=self._keeper, pause=attempt.pause)
        finally:
            self._running -= 1
            self._slots.release()

    async def _resume_outside(self, key: AttemptKey, record: ExternalRecord,
                              stop: asyncio.Future[StopRequest]) -> AttemptResult:
        self._running += 1
        self._slots.hold()
        try:
            # STARTED again (with the job id): the first may have been lost with the old process
            # (a repeat is ignored by the server).
            return await self._outside_jobs().resume(key, record, stop=stop, on_start=self._on_start(key),
                                              on_status=self._on_status(key))
        finally:
            self._running -= 1
            self._slots.release()

    async def _run_attempt(
        self, assignment: provider_pb2.Assignment, stop: asyncio.Future[StopRequest]
    ) -> None:
        key = (assignment.task_id, assignment.attempt)
        await self._report(key, self._in_slot(assignment, stop))

    async def _in_slot(self, assignment: provider_pb2.Assignment,
                       stop: asyncio.Future[StopRequest]) -> AttemptResult:
        # More assignments than slots (queued ahead) wait here; one cancelled meanwhile ends at once,
        # and one the server queued ahead is given back unstarted if no slot frees for it in time.
        if not await self._slots.take(stop, GIVE_BACK_AFTER if assignment.queued_ahead else None):
            # Stopping with a stop-wait, one no slot freed for is given back as ever, to run elsewhere.
            if stop.done() or self._handing_on:
                return (await stop).result()
            log.info("giving back task %s attempt %d unstarted: no slot freed for it within %gs",
                     assignment.task_id, assignment.attempt, GIVE_BACK_AFTER)
            return AttemptResult(Outcome.CANCELLED, raw={"state": NOT_STARTED},
                                 error=f"given back unstarted: no slot freed for it within {GIVE_BACK_AFTER:g}s")
        self._attempts[(assignment.task_id, assignment.attempt)].slotted = True
        try:
            if self._handing_on:  # not started as the agent stops: it waits to be handed on, or dropped
                return (await stop).result()
            return await self._execute(assignment, stop)
        finally:
            self._slots.release()

    @property
    def _handing_on(self) -> bool:
        """Stopping without a stop-wait: what has not started waits for the server to hand it on.
        With one, the server lets this agent's attempts finish, those queued ahead included."""
        return self._stopping and not self.config.stop_wait

    async def _report(self, key: AttemptKey, running: Coroutine[Any, Any, AttemptResult]) -> None:
        """Await the attempt and queue its last checkpoint and FINISHED report, whatever happens."""
        try:
            result = await running
        except AttemptLost as exc:  # the server has continued it elsewhere: not ours to report
            log.warning("task %s attempt %d: %s", *key, exc, extra=attempt_ids(key))
            await self._forget(key)
            return
        except Exception as exc:  # a bug here must not leave the attempt unreported
            log.exception("task %s attempt %d failed inside the agent", *key, extra=attempt_ids(key))
            result = AttemptResult(Outcome.FAILED, error=f"agent error: {exc!r}",
                                   raw={"state": "agent_error"})
        try:
            await self._checkpoints.finish(key)  # the last checkpoint goes before the result
        except Exception:
            log.exception("cannot read the last checkpoint of task %s attempt %d", *key, extra=attempt_ids(key))
        if self._attempts[key].dropped and result.raw.get("state") == SHUTDOWN_STATE:
            if self._outside_job(key):  # it runs on: its record stays, for a new process
                log.info("task %s attempt %d: the agent stopped following its outside job, which runs "
                         "on; the server hands it on", *key, extra=attempt_ids(key))
                self._release(key)
                return
            log.info("task %s attempt %d: stopped with the agent, left for the server to hand on",
                     *key, extra=attempt_ids(key))
            await self._forget(key)
            return
        outcome = result.outcome.name.lower()
        if log.isEnabledFor(logging.DEBUG):  # not even its fields made per attempt otherwise
            log.debug("task %s attempt %d: %s %s", *key, outcome, result.error, extra=attempt_ids(key))
        self._outbox.finished(*key, result)
        # One given back unstarted (queue-ahead) was not cancelled: counted apart.
        self.metrics.finished.inc("given_back" if result.raw.get("state") == NOT_STARTED else outcome)
        self._release(key)

    def _hold(self, key: AttemptKey, attempt: _Attempt) -> None:
        self._attempts[key] = attempt
        self._none_held.clear()

    def _release(self, key: AttemptKey) -> None:
        del self._attempts[key]
        if self._outside is not None:
            self._outside.forget(key)
        if not self._attempts:
            self._none_held.set()

    async def _forget(self, key: AttemptKey) -> None:
        """Let go of an attempt without a report, and of its directory, so that no later agent
        process adopts or reports it."""
        self._release(key)
        await asyncio.to_thread(self._state.drop, [key])
        self._checkpoints.forget(key)

    async def _execute(
        self, assignment: provider_pb2.Assignment, stop: asyncio.Future[StopRequest]
    ) -> AttemptResult:
        refusal = await assignments.refusal(assignment, stop, self.config)
        if refusal is not None:
            return refusal
        self._running += 1
        try:
            return await self._adapt(assignment, stop)
        finally:
            self._running -= 1

    async def _adapt(self, assignment: provider_pb2.Assignment,
                     stop: asyncio.Future[StopRequest]) -> AttemptResult:
        """Run the attempt through its environment's adapter: python, external or process."""
        spec = assignment.spec
        key = (assignment.task_id, assignment.attempt)
        on_start = self._on_start(key)
        if spec.python:
            return await self._python_pool().run(
                assignments.py_call(assignment, self.config, self._state.log_dir_of(key)), stop=stop,
                on_start=on_start,
                on_checkpoint=lambda text: self._outbox.checkpoint(*key, text))
        if spec.HasField("external") or spec.HasField("slurm"):  # outside_jobs.py
            cwd = assignments.working_dir(self.config, spec.cwd)
            return await self._outside_jobs().run(assignment, env=self._env(assignment), cwd=cwd,
                                                  stop=stop, on_start=on_start, on_status=self._on_status(key))
        command = self._command(assignment)
        self._checkpoints.watch(key, checkpoint_file(command.attempt_dir))
        attempt = self._attempts[key]
        attempt.command = True
        return await run_command(command, kill_grace=self.config.kill_grace, stop=stop,
                                 on_start=on_start, keeper=self._keeper, pause=attempt.pause)

    def _on_start(self, key: AttemptKey) -> Callable[[Started], None]:
        """Record an attempt's start and report it (an adopted one's again: the first may have
        been lost with the stream); an attempt suspended before it started is paused at once."""
        def on_start(started: Started) -> None:
            attempt = self._attempts[key]
            attempt.started, attempt.started_at = started, time.monotonic()
            if attempt.received:  # assigned to this process, not adopted from an earlier one
                self.metrics.started.inc()
                self.metrics.spawn_seconds.observe(attempt.started_at - attempt.received)
            self._outbox.started(*key, external_job_id=self._outside_job(key, told=True))
            if attempt.held:
                self._pause_held(key, attempt)

        return on_start

    def _on_status(self, key: AttemptKey) -> Callable[[dict[str, str]], None]:
        """Report an outside job's new raw properties, and which job it is."""
        return lambda raw: self._outbox.status(*key, raw, external_job_id=self._outside_job(key, told=True))

    def _command(self, assignment: provider_pb2.Assignment) -> CommandSpec:
        spec = assignment.spec
        attempt_dir = self._state.attempt_dir((assignment.task_id, assignment.attempt))
        env = self._env(assignment)
        env[CHECKPOINT_FILE_ENV] = checkpoint_file(attempt_dir)
        cwd = assignments.working_dir(self.config, spec.cwd)
        return CommandSpec(list(spec.command), env, cwd, spec.timeout_seconds,
                           attempt_dir, self.config.log_max_bytes,
                           self._state.spare() if self._keeper.takes_spares else "")

    def _env(self, assignment: provider_pb2.Assignment) -> dict[str, str]:
        """The environment of a task's processes: the agent's, the spec's, the task's own."""
        return self._agent_env | own_env(assignment)

    def _outside_jobs(self) -> OutsideJobs:
        """What runs external and Slurm attempts, made (its modules loaded) at the first one."""
        if self._outside is None:
            from .outside_jobs import OutsideJobs
            from .slurm import SlurmQueue

            slurm = SlurmQueue(interval=self.config.slurm_poll_interval, kill_grace=self.config.kill_grace)
            self._outside = OutsideJobs(self._state, slurm, kill_grace=self.config.kill_grace)
        return self._outside

    def _outside_job(self, key: AttemptKey, *, told: bool = False) -> str:
        """The outside job the attempt follows (with `told`, as its reports tell it); "" if none."""
        if self._outside is None:
            return ""
        return self._outside.told(key) if told else self._outside.job(key)

    def _python_pool(self) -> WorkerPool:
        """The pool of Python workers, made (and its module loaded) at the first Python task."""
        if self._pool is None:
            from .pyworkers import WorkerPool

            self._pool = WorkerPool(self.config.slots, work_dir=self.config.work_dir,
                                    on_spawn=self._keeper.add_worker)
            self._pool.start()
        return self._pool
