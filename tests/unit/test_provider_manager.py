"""The provider manager's shell hooks (server/hooks.py): what they are told, and when they run.
Real shell commands write their environment to files; the clock is injected."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from jobplane.resources import Resources
from jobplane.server.domain.dispatch import ReadyQueue
from jobplane.server.domain.facts import parse_conditions
from jobplane.server.domain.model import ProviderState
from jobplane.server.hooks import CommandHooks


@dataclass
class View:
    id: str
    state: ProviderState = ProviderState.ACTIVE
    connected: bool = True
    slots_in_use: int = 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _settle() -> None:
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        await task


def test_the_scale_out_hook_hears_what_each_requirement_set_wants(tmp_path):
    out = tmp_path / "out"
    queue = ReadyQueue()
    for i in range(3):
        queue.push(i, {"gpu": "a100"}, 0, 1, i, resources=Resources(cpus=2, gpus=1))
    queue.push(9, {}, 0, 2, 0, conditions=parse_conditions("c", ["load_average<2"]))
    queue.discard(2)  # cancelled while queued: not wanted any more

    async def run():
        hooks = CommandHooks(scale_out=f'echo "$JOBPLANE_UNMET_TASKS $JOBPLANE_UNMET" > {out}', clock=Clock())
        hooks.scale_out(queue.demand())
        await _settle()

    asyncio.run(run())
    total, wanted = out.read_text().split(" ", 1)
    assert total == "3"
    assert json.loads(wanted) == [
        {"labels": {"gpu": "a100"}, "prerequisites": [], "conditions": [], "resources": {"cpus": 2, "gpus": 1},
         "tasks": 2},
        {"labels": {}, "prerequisites": [], "conditions": ["load_average<2"], "resources": {}, "tasks": 1}]


def test_the_scale_out_hook_waits_its_interval_and_remembers_the_demand_between_dispatches(tmp_path):
    runs = tmp_path / "runs"
    clock = Clock()
    queue = ReadyQueue()
    queue.push(1, {}, 0, 1, 0)

    async def run():
        hooks = CommandHooks(scale_out=f"echo run >> {runs}", interval=30, clock=clock)
        hooks.scale_out(queue.demand())
        await _settle()
        clock.now += 10
        hooks.scale_out(None)  # a batch without dispatch: the demand is as it was, but too soon
        await _settle()
        clock.now += 25
        hooks.scale_out(None)
        await _settle()
        hooks.scale_out([])  # dispatched, and nothing waits
        clock.now += 60
        hooks.scale_out(None)
        await _settle()

    asyncio.run(run())
    assert runs.read_text().splitlines() == ["run", "run"]


def test_the_scale_in_hook_names_providers_idle_long_enough_and_only_while_no_work_waits(tmp_path):
    idle = tmp_path / "idle"
    clock = Clock()
    busy = View("busy", slots_in_use=1)
    providers = [View("a"), View("b"), busy, View("standby", state=ProviderState.STANDBY),
                 View("away", connected=False)]

    async def run():
        hooks = CommandHooks(scale_in=f'echo "$JOBPLANE_IDLE_PROVIDERS" >> {idle}', interval=5,
                             scale_in_after=60, clock=clock)
        hooks.scale_in(lambda: providers)  # first seen idle now
        clock.now += 61
        hooks.scale_out([((frozenset(), frozenset(), ()), 4)])  # work waits: no scale-in
        hooks.scale_in(lambda: providers)
        await _settle()
        assert not idle.exists()
        hooks.scale_out([])
        providers[1] = View("b", slots_in_use=2)  # b took work: its idle time starts again
        clock.now += 1
        hooks.scale_in(lambda: providers)
        await _settle()

    asyncio.run(run())
    assert idle.read_text().splitlines() == ["a"]
