"""An attempt queued at the agent beyond its slots (queue-ahead) waits for a slot, and one
stopped while it waits ends at once without taking a slot."""

import asyncio

from jobplane.agent.slots import Slots


def test_a_queued_attempt_stopped_while_every_slot_is_busy_ends_at_once_and_takes_no_slot():
    async def scenario():
        slots = Slots(1)
        assert await slots.take(asyncio.get_running_loop().create_future())  # the one slot runs a long task
        stop = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(slots.take(stop))
        await asyncio.sleep(0)
        assert not waiting.done(), "it waits for a slot"
        assert slots.waiting == 1
        stop.set_result("cancelled")
        assert await asyncio.wait_for(waiting, 5) is False
        assert slots.waiting == 0
        slots.release()  # the long task ends: its slot is free for the next, not lost
        assert not slots.locked()
        assert await slots.take(asyncio.get_running_loop().create_future())

    asyncio.run(scenario())


def test_queued_attempts_take_the_slots_their_predecessors_free_in_the_order_they_came():
    async def scenario():
        slots = Slots(1)
        never = asyncio.get_running_loop().create_future()
        assert await slots.take(never)
        waiting = []
        for _ in range(3):
            waiting.append(asyncio.create_task(slots.take(never)))
            await asyncio.sleep(0)
        for n in range(3):
            slots.release()
            assert await asyncio.wait_for(waiting[n], 5) is True
            assert [w.done() for w in waiting] == [True] * (n + 1) + [False] * (2 - n), "first come, first served"
            assert slots.locked(), "it holds the slot now"

    asyncio.run(scenario())


def test_an_attempt_stopped_before_it_queued_takes_no_slot():
    async def scenario():
        slots = Slots(1)
        stop = asyncio.get_running_loop().create_future()
        stop.set_result("cancelled")
        assert await slots.take(stop) is False
        assert not slots.locked()

    asyncio.run(scenario())


def test_a_queued_attempt_no_slot_frees_for_in_time_takes_none():
    async def scenario():
        slots = Slots(1)
        assert await slots.take(asyncio.get_running_loop().create_future())  # a task that turned out long
        stop = asyncio.get_running_loop().create_future()
        assert await asyncio.wait_for(slots.take(stop, 0.05), 5) is False
        assert not stop.done(), "not stopped: given up on"
        slots.release()
        assert not slots.locked(), "the slot it waited for is not taken by it later"

    asyncio.run(scenario())


def test_a_slot_given_to_an_attempt_cancelled_before_it_ran_goes_to_the_next():
    """The agent cancels an attempt's task (it stops): a slot handed to it in the same loop
    turn is not lost with it."""
    async def scenario():
        slots = Slots(1)
        never = asyncio.get_running_loop().create_future()
        assert await slots.take(never)
        first = asyncio.create_task(slots.take(never))
        second = asyncio.create_task(slots.take(never))
        await asyncio.sleep(0)
        slots.release()  # the slot goes to the first...
        first.cancel()  # ...which is cancelled before it runs
        assert await asyncio.wait_for(second, 5) is True
        assert first.cancelled()
        assert slots.waiting == 0 and slots.locked()
        slots.release()
        assert not slots.locked()

    asyncio.run(scenario())


def test_a_slot_and_a_stop_coming_together_leave_the_slot_free():
    async def scenario():
        slots = Slots(1)
        assert await slots.take(asyncio.get_running_loop().create_future())
        stop = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(slots.take(stop))
        await asyncio.sleep(0)
        slots.release()
        stop.set_result("cancelled")
        assert await asyncio.wait_for(waiting, 5) is False
        assert not slots.locked()

    asyncio.run(scenario())


def test_attempts_adopted_beyond_the_slots_hold_them_until_enough_end():
    """An earlier process of the agent, with more slots, left three attempts running: a new
    assignment waits until two of them have ended, not one."""
    async def scenario():
        slots = Slots(2)
        for _ in range(3):
            slots.hold()
        never = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(slots.take(never))
        await asyncio.sleep(0)
        slots.release()
        await asyncio.sleep(0)
        assert not waiting.done(), "two slots, still held by the two adopted attempts left"
        slots.release()
        assert await asyncio.wait_for(waiting, 5) is True
        slots.release()
        assert not slots.locked()

    asyncio.run(scenario())
