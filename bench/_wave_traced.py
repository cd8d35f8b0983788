"""`python bench/_wave_traced.py -m jobplane.server|jobplane.agent ARGS...`: the server or an agent
with timestamps taken at the steps of a wave (for bench/wave_trace.py), written as it exits to
$JOBPLANE_WAVE_TRACE/PID.trace, one `monotonic_seconds event fields...` per line (CLOCK_MONOTONIC:
one clock for every process of the machine). Nothing of jobplane is changed: its methods are
wrapped here before it starts.

Agent: ag_assign (an Assignments message taken: how many, the seq it acknowledges), ag_send (a
call sent to a Python worker), ag_reply (a worker's pipe readable), ag_fin (a FINISHED report
queued), ag_batch (a TaskReports message taken for sending: its seq).
Server: sv_reports (a TaskReports message read: provider, seq), sv_commit (a batch handed to the
writer thread: its operations), sv_write (on the writer thread: the statements' wall and CPU ms,
then the COMMIT's), sv_written (the loop told the commit ended), sv_finish (a committed batch
answered and delivered), sv_assign (assignments queued for a provider: provider, how many).
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
import time

_EVENTS: list[tuple[float, tuple]] = []
_DIR = os.environ.get("JOBPLANE_WAVE_TRACE", "")


def _t(*what: object) -> None:
    _EVENTS.append((time.monotonic(), what))


def _flush() -> None:
    if not _DIR:
        return
    with open(os.path.join(_DIR, f"{os.getpid()}.trace"), "a") as out:
        out.writelines(f"{at:.6f} " + " ".join(map(str, what)) + "\n" for at, what in _EVENTS)
    _EVENTS.clear()


def _wrap(cls: type, name: str, before=None, after=None) -> None:
    """Replace cls.name by a function that calls before(self, *args) and after(self, result, *args)
    around it."""
    original = getattr(cls, name)

    def wrapped(self, *args, **kwargs):
        if before is not None:
            before(self, *args)
        result = original(self, *args, **kwargs)
        if after is not None:
            after(self, result, *args)
        return result

    setattr(cls, name, wrapped)


def _trace_agent() -> None:
    from jobplane.agent import link, outbox, pyworkers

    def on_dispatch(self, response) -> None:
        if response.WhichOneof("message") == "assign":
            assign = response.assign
            _t("ag_assign", len(assign.assignments), assign.ack.seq if assign.HasField("ack") else -1)

    _wrap(link.Link, "_dispatch", before=on_dispatch)
    _wrap(pyworkers.WorkerPool, "_send", before=lambda self, worker, job: _t("ag_send", worker.pid))
    _wrap(pyworkers.WorkerPool, "_on_readable", before=lambda self, worker: _t("ag_reply", worker.pid))
    _wrap(outbox.Outbox, "finished", after=lambda self, result, *args: _t("ag_fin"))
    next_batch = outbox.Outbox.next_batch

    async def traced_next_batch(self):
        batch = await next_batch(self)
        _t("ag_batch", batch.seq, len(batch.reports))
        return batch

    outbox.Outbox.next_batch = traced_next_batch


def _trace_server() -> None:
    from jobplane.server import core
    from jobplane.server.services import providers
    from jobplane.server.store import repo, staging

    def on_handle(self, conn, message) -> None:
        if message.WhichOneof("message") == "reports":
            _t("sv_reports", conn.provider, message.reports.seq, len(message.reports.reports))

    def on_close(self, batch) -> None:
        if batch.write is not None:
            _t("sv_commit", len(batch.outcomes))

    def on_deliver(self, result, cs) -> None:
        for provider_id, items in cs.assignments.items():
            _t("sv_assign", provider_id, len(items))

    _wrap(providers.ProviderService, "_handle", before=on_handle)
    _wrap(providers.ProviderService, "deliver", after=on_deliver)
    _wrap(core.Core, "_close", after=on_close)
    _wrap(core.Core, "_written", before=lambda self, batch: _t("sv_written"))
    _wrap(core.Core, "_finish", before=lambda self, batch: _t("sv_finish", len(batch.outcomes)))
    run, write = staging.Staged.run, repo.Store.write
    split: dict[str, float] = {}

    def timed_run(self, db):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return run(self, db)
        finally:
            split["wall"], split["cpu"] = time.perf_counter() - wall, time.thread_time() - cpu

    def timed_write(self, staged, term=None):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return write(self, staged, term)
        finally:
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            ms = [1e3 * split.get("wall", 0.0), 1e3 * split.get("cpu", 0.0),
                  1e3 * (wall - split.get("wall", 0.0)), 1e3 * (cpu - split.get("cpu", 0.0))]
            _t("sv_write", *(f"{value:.3f}" for value in ms))  # list.append: safe from the writer thread

    staging.Staged.run = timed_run
    repo.Store.write = timed_write


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "-m":
        raise SystemExit("usage: _wave_traced.py -m jobplane.server|jobplane.agent ARGS...")
    module = sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    if module == "jobplane.agent":
        _trace_agent()
    elif module == "jobplane.server":
        _trace_server()
    atexit.register(_flush)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
