"""An attempt queued at the agent beyond its slots (queue-ahead) waits for a slot, and one
stopped while it waits ends at once without taking a slot."""

import asyncio

from jobplane.agent.agent import _slot_or_stop


def test_a_queued_attempt_stopped_while_every_slot_is_busy_ends_at_once_and_takes_no_slot():
    async def scenario():
        slots = asyncio.Semaphore(1)
        await slots.acquire()  # the one slot runs a long task
        stop = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(_slot_or_stop(slots, stop))
        await asyncio.sleep(0)
        assert not waiting.done(), "it waits for a slot"
        stop.set_result("cancelled")
        assert await asyncio.wait_for(waiting, 5) is False
        slots.release()  # the long task ends: its slot is free for the next, not lost
        assert not slots.locked()
        await asyncio.wait_for(slots.acquire(), 5)

    asyncio.run(scenario())


def test_a_queued_attempt_takes_the_slot_its_predecessor_frees():
    async def scenario():
        slots = asyncio.Semaphore(1)
        await slots.acquire()
        stop = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(_slot_or_stop(slots, stop))
        await asyncio.sleep(0)
        slots.release()
        assert await asyncio.wait_for(waiting, 5) is True
        assert slots.locked(), "it holds the slot now"

    asyncio.run(scenario())


def test_an_attempt_stopped_before_it_queued_takes_no_slot():
    async def scenario():
        slots = asyncio.Semaphore(1)
        stop = asyncio.get_running_loop().create_future()
        stop.set_result("cancelled")
        assert await _slot_or_stop(slots, stop) is False
        assert not slots.locked()

    asyncio.run(scenario())


def test_a_queued_attempt_no_slot_frees_for_in_time_takes_none():
    async def scenario():
        slots = asyncio.Semaphore(1)
        await slots.acquire()  # a task that turned out long holds the one slot
        stop = asyncio.get_running_loop().create_future()
        assert await asyncio.wait_for(_slot_or_stop(slots, stop, 0.05), 5) is False
        assert not stop.done(), "not stopped: given up on"
        slots.release()
        assert not slots.locked(), "the slot it waited for is not taken by it later"

    asyncio.run(scenario())
