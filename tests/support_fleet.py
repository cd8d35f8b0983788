"""Simulated agents on real streams (hello, ready, heartbeats, probe replies; no tasks), as
cheap as they can be made so that they take little from the server they share the machine with:
a minimal HTTP/2 client (support_h2: a heartbeat is one small socket write, where gRPC's Python
client spent about as much CPU per message as the server), messages serialized once, ~100 streams
per HTTP/2 connection, and one ticker per process writing the heartbeats of the agents whose turn
it is. Every agent's sends are logged, so that each suspicion of the server can be judged
(`judge`). Run `simulate` in a process of its own (bench/agents.py, the fleet tests); it needs an
insecure server (one identity for every agent: raise --max-streams)."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from array import array

from support_h2 import Stream, connect, grpc_message

STREAMS_PER_CHANNEL = 100  # HTTP/2 connections carry this many agent streams each
TICKS = 20  # heartbeat ticks per interval in each simulator process
CONNECT = "/jobplane.v1.ProviderService/Connect"
# Shared counters per simulator process: streams welcomed, streams ended (each agent then connects
# again), heartbeats written, worst tick lateness (ms), heartbeats skipped because the server's
# HTTP/2 flow control had no room for them (it does not read), streams welcomed and still open.
WELCOMED, ENDED, BEATS, LATE, SKIPPED, CONNECTED = range(6)
COUNTERS = 6


def simulate(address: str, first: int, count: int, heartbeat: float, ramp: float, stop, stats, link,
             quiet: int = 0) -> None:
    """A process holding `count` simulated agents (named sim-FIRST..) until `stop` is set;
    each ask on `link` is answered with its agents' send logs (`Fleet.sent`). The first `quiet`
    of them hang once connected: no heartbeat, no answer to a probe."""
    asyncio.run(_Simulator(address, first, count, heartbeat, stats, quiet).run(ramp, stop, link))


class _Simulator:
    def __init__(self, address: str, first: int, count: int, heartbeat: float, stats, quiet: int) -> None:
        from jobplane.v1 import provider_pb2 as pb

        self.pb, self.first, self.heartbeat, self.stats, self.quiet = pb, first, heartbeat, stats, quiet
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.beat = grpc_message(pb.ConnectRequest(heartbeat=pb.Heartbeat(free_slots=1)).SerializeToString())
        self.ready = grpc_message(pb.ConnectRequest(ready=pb.Ready(free_slots=1)).SerializeToString())
        self.channels: dict[int, asyncio.Task] = {}
        self.slots: list[set] = [set() for _ in range(TICKS)]  # agents (index) whose heartbeat is due at each tick
        self.streams: dict[int, Stream] = {}  # agent index -> its welcomed stream
        self.errors: dict[str, int] = {}
        # Per agent, every message it sent (hello, ready, heartbeat, probe reply) as its wall-clock
        # time when written, and every heartbeat it could not write as minus that time.
        self.logs = [array("d") for _ in range(count)]
        self.count = count
        self.stopping = False
        self.connecting: set[asyncio.Task] = set()  # agents connecting: cancelled at the end

    async def run(self, ramp: float, stop, link) -> None:
        ticker = asyncio.create_task(self._ticker())
        for i in range(self.count):
            self._spawn(i)
            await asyncio.sleep(ramp / self.count)
        # What the ramp made lives until the end: kept out of the collector's full passes (which
        # otherwise stall this loop, and so its heartbeats, for as long as they walk it).
        gc.collect()
        gc.freeze()
        while not stop.is_set():
            await asyncio.sleep(0.2)
            if link.poll():
                link.recv()
                link.send({f"sim-{self.first + i}": log.tobytes() for i, log in enumerate(self.logs)})
        ticker.cancel()
        self.stopping = True
        for task in list(self.connecting):
            task.cancel()
        for task in self.channels.values():
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().close()

    async def _channel(self, k: int):
        task = self.channels.get(k)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None or task.result().lost)):
            task = self.channels[k] = asyncio.ensure_future(connect(self.host, self.port))
        return await task

    async def _connect(self, i: int) -> None:
        """Agent i connects (hello and ready written at once); when its stream ends it connects
        again, as the jobplane agent does, after a pause of 1-2 s."""
        pb = self.pb
        name = f"sim-{self.first + i}"
        welcomed = False

        def on_message(raw: bytes) -> None:
            nonlocal welcomed
            which = (response := pb.ConnectResponse.FromString(raw)).WhichOneof("message")
            if which == "welcome":
                welcomed = True
                self.stats[WELCOMED] += 1
                self.stats[CONNECTED] += 1
                self.streams[i] = stream
                if i >= self.quiet:
                    self.slots[i % TICKS].add(i)
            elif which == "probe" and i >= self.quiet:
                reply = pb.ConnectRequest(probe_reply=pb.ProbeReply(probe_id=response.probe.probe_id))
                self._sent(i, stream.send(grpc_message(reply.SerializeToString())))

        def on_end(why: str) -> None:
            if welcomed:
                self.stats[CONNECTED] -= 1
                self.slots[i % TICKS].discard(i)
                self.streams.pop(i, None)
            self.stats[ENDED] += 1
            self._ended(name, why)
            if not self.stopping:
                asyncio.get_running_loop().call_later(random.uniform(1.0, 2.0), self._spawn, i)

        stream = Stream(on_message, on_end)
        hello = pb.ConnectRequest(hello=pb.Hello(name=name, slots=1, heartbeat_interval_seconds=self.heartbeat,
                                                 facts=pb.ProviderFacts(hostname=name))).SerializeToString()
        try:
            conn = await self._channel(i // STREAMS_PER_CHANNEL)
        except OSError as exc:
            on_end(f"cannot connect: {exc}")
            return
        if conn.open(stream, CONNECT, grpc_message(hello) + self.ready):
            now = time.time()
            self.logs[i].extend((now, now))
        else:
            on_end(f"the connection takes no new stream: {conn.lost or 'no room in its window'}")

    def _spawn(self, i: int) -> None:
        if not self.stopping:
            task = asyncio.ensure_future(self._connect(i))
            self.connecting.add(task)
            task.add_done_callback(self.connecting.discard)

    def _ended(self, name: str, why: str) -> None:
        why = why[:int(os.environ.get("FLEET_ERROR_CHARS", "160"))]
        self.errors[why] = self.errors.get(why, 0) + 1
        if self.errors[why] == 1:  # a bench: say each reason once
            print(f"  {name}: stream ended: {why}", flush=True)

    def _sent(self, i: int, ok: bool, now: float | None = None) -> None:
        now = now or time.time()
        self.logs[i].append(now if ok else -now)
        if not ok:
            self.stats[SKIPPED] += 1

    async def _ticker(self) -> None:
        period = self.heartbeat / TICKS
        due, tick = time.monotonic(), 0
        stats, streams, beat = self.stats, self.streams, self.beat
        while True:
            due += period
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            stats[LATE] = max(stats[LATE], int((time.monotonic() - due) * 1000))
            now = time.time()
            for i in self.slots[tick % TICKS]:
                self._sent(i, streams[i].send(beat), now)
            stats[BEATS] += len(self.slots[tick % TICKS])
            tick += 1


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
