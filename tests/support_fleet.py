"""Simulated agents on real streams (hello, ready, heartbeats, probe replies; no tasks), as
cheap as they can be made so that they take little from the server they share the machine with:
messages serialized once and written as bytes, ~100 streams per HTTP/2 connection, and one ticker
per process writing the heartbeats of the agents whose turn it is (an agent costs a waiting read
and one write per interval). Run `simulate` in a process of its own (bench/agents.py, the fleet
tests); it needs an insecure server (one identity for every agent: raise --max-streams)."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from array import array

STREAMS_PER_CHANNEL = 100  # HTTP/2 connections carry this many agent streams each
TICKS = 20  # heartbeat ticks per interval in each simulator process
CONNECT = "/jobplane.v1.ProviderService/Connect"
# Shared counters per simulator process: streams welcomed, streams ended (each agent then connects
# again), heartbeats written, worst tick lateness (ms), heartbeats skipped because the stream's last
# write was still not taken (the server reads too slowly), streams welcomed and still open.
WELCOMED, ENDED, BEATS, LATE, SKIPPED, CONNECTED = range(6)
COUNTERS = 6


def simulate(address: str, first: int, count: int, heartbeat: float, ramp: float, stop, stats, link,
             quiet: int = 0) -> None:
    """A process holding `count` simulated agents (named sim-FIRST..) until `stop` is set;
    each ask on `link` is answered with its agents' send logs (`Fleet.sent`). The first `quiet`
    of them hang once connected: no heartbeat, no answer to a probe."""
    asyncio.run(_simulate(address, first, count, heartbeat, ramp, stop, stats, link, quiet))


async def _simulate(address: str, first: int, count: int, heartbeat: float, ramp: float, stop, stats,
                    link, quiet: int) -> None:
    import grpc

    from jobplane.v1 import provider_pb2 as pb

    beat = pb.ConnectRequest(heartbeat=pb.Heartbeat(free_slots=1)).SerializeToString()
    ready = pb.ConnectRequest(ready=pb.Ready(free_slots=1)).SerializeToString()
    channels = [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range((count + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL)]
    connects = [c.stream_stream(CONNECT) for c in channels]  # bytes in, bytes out: nothing re-encoded
    slots: list[list] = [[] for _ in range(TICKS)]
    busy: set = set()  # calls with a write not yet taken: a call takes one write at a time
    readers = []
    errors: dict[str, int] = {}
    # Per agent, every message it sent (hello, ready, heartbeat, probe reply) as its wall-clock
    # time when handed to gRPC, and every heartbeat it skipped as minus the time it was due: what
    # the server's suspicions are judged against (`judge`).
    logs = [array("d") for _ in range(count)]
    index = {}  # call -> agent index

    async def agent(i: int) -> None:
        """One simulated agent: connects, and after its stream ends connects again (as the
        jobplane agent does) after a pause of 1-2 s."""
        name = f"sim-{first + i}"
        hello = pb.ConnectRequest(hello=pb.Hello(name=name, slots=1, heartbeat_interval_seconds=heartbeat,
                                                 facts=pb.ProviderFacts(hostname=name))).SerializeToString()
        while True:
            try:
                await stream(i, name, hello)
            except asyncio.CancelledError:
                return
            stats[ENDED] += 1
            await asyncio.sleep(random.uniform(1.0, 2.0))

    async def stream(i: int, name: str, hello: bytes) -> None:
        call = connects[i // STREAMS_PER_CHANNEL]()
        index[call] = i
        welcomed = False
        try:
            logs[i].append(time.time())
            await call.write(hello)
            logs[i].append(time.time())
            await call.write(ready)
            while (raw := await call.read()) is not grpc.aio.EOF:
                response = pb.ConnectResponse.FromString(raw)
                which = response.WhichOneof("message")
                if which == "welcome":
                    stats[WELCOMED] += 1
                    stats[CONNECTED] += 1
                    welcomed = True
                    if i >= quiet:
                        slots[i % TICKS].append(call)
                elif which == "probe" and i >= quiet:
                    while call in busy:
                        await asyncio.sleep(0.01)
                    busy.add(call)
                    try:
                        logs[i].append(time.time())
                        await call.write(pb.ConnectRequest(probe_reply=pb.ProbeReply(
                            probe_id=response.probe.probe_id)).SerializeToString())
                    finally:
                        busy.discard(call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bench: count it and say it once
            why = f"{type(exc).__name__}: {exc}"[:int(os.environ.get("FLEET_ERROR_CHARS", "160"))]
            errors[why] = errors.get(why, 0) + 1
            if errors[why] == 1:
                print(f"  {name}: stream ended: {why}", flush=True)
        finally:
            if welcomed:
                stats[CONNECTED] -= 1
            if call in slots[i % TICKS]:
                slots[i % TICKS].remove(call)
            index.pop(call, None)

    async def write(call) -> None:
        """A heartbeat on a call the ticker marked busy (before this task ran: a probe's reply
        that came in between must wait, or gRPC fails the second write and ends the stream)."""
        try:
            logs[index[call]].append(time.time())
            await call.write(beat)
        except Exception:  # noqa: BLE001 - the stream ended: its reader counts it
            pass
        finally:
            busy.discard(call)

    async def ticker() -> None:
        period = heartbeat / TICKS
        due, tick = time.monotonic(), 0
        while True:
            due += period
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            late = time.monotonic() - due
            stats[LATE] = max(stats[LATE], int(late * 1000))
            calls = [c for c in slots[tick % TICKS] if c not in busy]
            if len(calls) < len(slots[tick % TICKS]):
                stats[SKIPPED] += len(slots[tick % TICKS]) - len(calls)
                for c in slots[tick % TICKS]:
                    if c in busy:
                        logs[index[c]].append(-(due - time.monotonic() + time.time()))
            tick += 1
            for call in calls:  # not awaited here: a slow stream must not hold the next tick back
                busy.add(call)
                asyncio.ensure_future(write(call))
            stats[BEATS] += len(calls)

    beats = asyncio.create_task(ticker())
    for i in range(count):
        readers.append(asyncio.create_task(agent(i)))
        await asyncio.sleep(ramp / count)
    # What the ramp made lives until the end: kept out of the collector's full passes (which
    # otherwise stall this loop, and so its heartbeats, for as long as they walk it).
    gc.collect()
    gc.freeze()
    while not stop.is_set():
        await asyncio.sleep(0.2)
        if link.poll():
            link.recv()
            link.send({f"sim-{first + i}": log.tobytes() for i, log in enumerate(logs)})
    beats.cancel()
    for r in readers:
        r.cancel()
    for c in channels:
        await c.close()


class Fleet:
    """Simulated agents in processes of their own, added a share at a time (sim-0, sim-1, ...)."""

    def __init__(self, address: str, heartbeat: float) -> None:
        import multiprocessing

        self.address, self.heartbeat = address, heartbeat
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self.procs: list = []
        self._stats: list = []
        self._links: list = []
        self.size = 0

    def add(self, n: int, procs: int = 1, seconds: float = 0.0, quiet: int = 0) -> None:
        """`n` more agents over `procs` processes, connecting over `seconds` (0: in one burst);
        the first `quiet` of each process hang once connected (no heartbeat, no probe answered)."""
        for i in range(procs):
            share = n // procs + (1 if i < n % procs else 0)
            if not share:
                continue
            stats = self._ctx.Array("q", COUNTERS, lock=False)
            ours, theirs = self._ctx.Pipe()
            proc = self._ctx.Process(target=simulate, args=(self.address, self.size, share, self.heartbeat, seconds,
                                                            self._stop, stats, theirs, quiet), daemon=True)
            proc.start()
            self.procs.append(proc)
            self._stats.append(stats)
            self._links.append(ours)
            self.size += share

    def count(self, which: int) -> int:
        """WELCOMED, ENDED, BEATS, SKIPPED or CONNECTED summed over the processes; LATE: the worst (ms)."""
        values = [s[which] for s in self._stats]
        return max(values, default=0) if which == LATE else sum(values)

    def connected(self) -> int:
        """Streams welcomed and not ended."""
        return self.count(CONNECTED)

    def sent(self) -> dict[str, array]:
        """Each agent's send log, by name: the wall-clock time of every message it sent, and
        minus the time of every heartbeat it skipped, oldest first. Waits for every process (one
        still ramping answers once it has connected its share)."""
        for link in self._links:
            link.send("sent")
        logs = {}
        for link in self._links:
            for name, raw in link.recv().items():
                logs[name] = array("d", raw)
        return logs

    def reset_late(self) -> None:
        for s in self._stats:
            s[LATE] = 0

    def close(self) -> None:
        self._stop.set()
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def judge(events: list[tuple[str, float]], logs: dict[str, array], allowed: float) -> tuple[int, int]:
    """(justified, false) of the server's suspicions `events` ((provider, time) each, from its
    SUSPECT events) against the agents' send logs: justified if the agent had sent nothing for
    longer than `allowed` (its heartbeat interval x the server's tolerance) when it was suspected,
    false if it had sent something within that time (which the server did not take in time). An
    agent the simulator does not know is counted as false."""
    justified = false = 0
    for provider, when in events:
        sent = [t for t in logs.get(provider, ()) if 0 < t <= when]
        if sent and when - sent[-1] > allowed:
            justified += 1
        else:
            false += 1
    return justified, false
