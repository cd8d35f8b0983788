"""The event hub and the frames watchers write: one batch per filter per commit, shared bytes
that parse as the stream's responses, pending batches joined (and, under load, batches that
arrive soon after a frame), a watcher that falls behind cut off alone. (The streams themselves, with a real server, are in tests/integration/test_watch.py.)"""

from __future__ import annotations

import asyncio

import grpc

from jobplane.server.domain.model import Event, EventKind
from jobplane.server import events as events_module
from jobplane.server.events import EventHub, Subscription
from jobplane.server.services import convert, watch
from jobplane.v1 import continuation_pb2, event_pb2, job_pb2, job_pb2_grpc, status_pb2

JOB, TASK, CONTINUATION = EventKind.JOB, EventKind.TASK, EventKind.CONTINUATION


def hub() -> EventHub:
    return EventHub(to_message=convert.event_to_proto, encode=watch.encode_event)


def events(first: int, *specs: tuple[EventKind, int]) -> list[Event]:
    return [Event(first + i, 1.5e9 + i, kind, job_id=job_id, task_name=f"e{first + i}")
            for i, (kind, job_id) in enumerate(specs)]


def ids(data: bytes) -> list[int]:
    return [e.id for e in event_pb2.WatchEventsResponse.FromString(data).events]


def take(sub: Subscription):
    return asyncio.run(sub.take())


def test_watchers_of_one_filter_share_one_batch_whose_bytes_are_the_response():
    events_hub = hub()
    everything = [events_hub.subscribe(None) for _ in range(3)]
    of_job_7 = events_hub.subscribe(7)
    continuations = events_hub.subscribe(None, CONTINUATION)
    published = events(1, (JOB, 7), (TASK, 8), (CONTINUATION, 7), (TASK, 7))
    events_hub.publish(published)
    (shared,), *others = [take(sub) for sub in everything]
    assert all(batch is shared for (batch,) in others), "converted and encoded once"
    expected = event_pb2.WatchEventsResponse(events=[convert.event_to_proto(e) for e in published])
    assert shared.data == expected.SerializeToString()
    assert (shared.first_id, shared.last_id) == (1, 4)
    assert ids(take(of_job_7)[0].data) == [1, 3, 4]
    (only,) = take(continuations)
    reply = continuation_pb2.WatchContinuationsResponse.FromString(only.data)
    assert [e.id for e in reply.events] == [3], "the same bytes serve WatchContinuations"


def test_pending_batches_are_joined_into_one_frame_without_what_was_replayed():
    events_hub = hub()
    sub = events_hub.subscribe(None)
    for first in (1, 4, 7):
        events_hub.publish(events(first, (TASK, 1), (TASK, 1), (TASK, 1)))
    batches = take(sub)
    assert len(batches) == 3
    # The replay sent up to id 5: the batch it cuts through is re-encoded, the rest is shared.
    (frame, last), = watch._live_frames(batches, 5, None)
    assert ids(frame) == [6, 7, 8, 9] and last == 9


def test_frames_are_cut_at_the_size_limit(monkeypatch):
    events_hub = hub()
    sub = events_hub.subscribe(None)
    for first in range(1, 7):
        events_hub.publish(events(first, (TASK, 1)))
    batches = take(sub)
    monkeypatch.setattr(watch, "FRAME_BYTES", 2 * len(batches[0].data))
    frames = list(watch._live_frames(batches, 0, None))
    assert [(ids(frame), last) for frame, last in frames] == [([1, 2], 2), ([3, 4], 4), ([5, 6], 6)]


def test_a_caller_with_policies_gets_copies_and_others_keep_the_shared_messages():
    events_hub = hub()
    mine, theirs = events_hub.subscribe(None), events_hub.subscribe(None)
    events_hub.publish(events(1, (TASK, 1), (TASK, 1)))

    def renormalize(event: event_pb2.Event) -> None:
        event.status = status_pb2.NORMALIZED_STATUS_FAILURE

    ((frame, _),) = watch._live_frames(take(mine), 0, renormalize)
    assert {e.status for e in event_pb2.WatchEventsResponse.FromString(frame).events} == {status_pb2.NORMALIZED_STATUS_FAILURE}
    (batch,) = take(theirs)
    assert {m.status for m in batch.messages} == {status_pb2.NORMALIZED_STATUS_UNKNOWN}
    assert {e.status for e in event_pb2.WatchEventsResponse.FromString(batch.data).events} == {status_pb2.NORMALIZED_STATUS_UNKNOWN}


def test_a_watcher_that_falls_behind_is_cut_off_alone():
    events_hub = hub()
    slow, fast = Subscription(None, None, limit=2), events_hub.subscribe(None)
    events_hub._groups[slow.key].add(slow)
    for first in (1, 2, 3):
        events_hub.publish(events(first, (TASK, 1)))
        if first < 3:
            assert [b.last_id for b in take(fast)] == [first]
    assert take(slow) is None and slow.overflowed
    assert [b.last_id for b in take(fast)] == [3]
    events_hub.publish(events(4, (TASK, 1)))
    assert [b.last_id for b in take(fast)] == [4], "the others go on"


def test_the_hubs_watcher_queue_is_how_many_batches_a_subscriber_may_fall_behind():
    from jobplane.server.config import ServerConfig
    from jobplane.server.events import WATCHER_QUEUE_BATCHES
    from jobplane.server.main import parse_args

    assert ServerConfig().watcher_queue == parse_args([]).watcher_queue == WATCHER_QUEUE_BATCHES
    events_hub = EventHub(to_message=convert.event_to_proto, encode=watch.encode_event,
                          watcher_queue=parse_args(["--watcher-queue", "3"]).watcher_queue)
    sub = events_hub.subscribe(None)
    for first in (1, 2, 3):
        events_hub.publish(events(first, (TASK, 1)))
    assert not sub.overflowed, "three pending batches are allowed"
    events_hub.publish(events(4, (TASK, 1)))
    assert take(sub) is None and sub.overflowed, "the fourth cuts it off"


async def taken_at_once(take: asyncio.Future) -> list[int] | bool:
    """The last ids `take` returned, if it did once the loop ran what was ready (no waiting); else False."""
    for _ in range(10):
        await asyncio.sleep(0)
    return take.done() and [b.last_id for b in take.result()]


def test_under_load_batches_that_arrive_soon_after_a_frame_join_the_next_one(monkeypatch):
    # How long frames wait under real load, in milliseconds, is a figure of bench/events.py.
    monkeypatch.setattr(events_module, "FRAMES_PER_SECOND", 1)  # one watcher: frames 1 s apart
    monkeypatch.setattr(events_module, "MAX_SPACING", 1.0)
    events_hub = hub()
    sub = events_hub.subscribe(None)

    async def watch():
        taken = []
        events_hub.publish(events(1, (TASK, 1)))
        taken.append(await taken_at_once(asyncio.ensure_future(sub.take())))
        events_hub.publish(events(2, (TASK, 1)))
        joining = asyncio.ensure_future(sub.take())
        await taken_at_once(joining)  # it has seen batch 2 and waits out the spacing
        events_hub.publish(events(3, (TASK, 1)))
        taken.append([b.last_id for b in await asyncio.wait_for(joining, 30)])
        await asyncio.sleep(1.1)  # quiet for longer than the spacing
        events_hub.publish(events(4, (TASK, 1)))
        taken.append(await taken_at_once(asyncio.ensure_future(sub.take())))
        return taken

    first, joined, after_idle = asyncio.run(watch())
    assert first == [1], "the first event goes out at once"
    assert joined == [2, 3], "a batch that arrives while the next frame waits joins it"
    assert after_idle == [4], "after a quiet spell, at once again"


def test_the_spacing_grows_with_the_watchers_up_to_a_limit():
    events_hub = hub()
    assert events_hub.spacing() == 0
    subs = [events_hub.subscribe(None) for _ in range(10)]
    assert 0 < events_hub.spacing() < events_module.MAX_SPACING
    subs += [events_hub.subscribe(7) for _ in range(10 * events_module.FRAMES_PER_SECOND)]
    assert events_hub.spacing() == events_module.MAX_SPACING
    for sub in subs:
        events_hub.unsubscribe(sub)
        events_hub.unsubscribe(sub)  # a watcher cut off is unsubscribed again when its stream ends
    assert events_hub.spacing() == 0


def test_a_closed_hub_ends_every_watcher():
    events_hub = hub()
    sub = events_hub.subscribe(None)

    async def wait_then_close():
        waiting = asyncio.ensure_future(sub.take())
        await asyncio.sleep(0)
        events_hub.close()
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(wait_then_close()) is None and not sub.overflowed


def test_frame_methods_pass_frames_through_and_serialize_messages():
    registered: dict[str, grpc.RpcMethodHandler] = {}

    class Server:
        def add_generic_rpc_handlers(self, handlers):
            pass

        def add_registered_method_handlers(self, service, handlers):
            registered.update(handlers)

    watch.register_with_frames(job_pb2_grpc.add_JobServiceServicer_to_server,
                               job_pb2_grpc.JobServiceServicer(), Server())
    serialize = registered["WatchEvents"].response_serializer
    message = event_pb2.WatchEventsResponse(events=[event_pb2.Event(id=3)])
    assert serialize(b"frame") == b"frame"
    assert serialize(message) == message.SerializeToString()
    response = job_pb2.GetJobResponse()
    assert registered["GetJob"].response_serializer(response) == b"", "other methods untouched"
