"""Many connected agents on one server: simulated agents (hello, ready, heartbeats, probe
replies; no tasks) ramp up in steps; each step is held for a while and then measured:

    python bench/agents.py [--steps 1000,5000,10000,20000] [--heartbeat 2] [--hold 30] [--procs 2]

Per step: agents connected (streams the simulator holds, welcomed and not ended; an agent whose
stream ends connects again after 1-2 s, as the jobplane agent does: `reconn` counts them), providers
ACTIVE (the server's own gauge), the server's RSS and RSS per agent (above the RSS before any
agent connected), the heartbeat handling time p50/p99 (the server's own histogram
`jobplane_heartbeat_handling_seconds` over the hold: a heartbeat read off its stream to the
engine taking it), the server's CPU per heartbeat (its utime+stime from /proc over the hold,
divided by the heartbeats handled: everything the server did for the fleet in that time,
supervision included), commits per connected agent while the step connected, suspicions
(SUSPECT events for silence) judged against what each simulated agent really sent (justified: it had sent
nothing for longer than heartbeat x tolerance when it was suspected, its heartbeats skipped or
late; false: it had, and the server did not take it in time) and failovers (LOST events), how late the
simulator's own heartbeat ticks ran and how many heartbeats it could not write because the
server's HTTP/2 flow control had no room (the server reads too slowly) - if those grow, the step
says whether the simulator or the server fell behind - and the CPU each used. When streams ended
in a step, it also says how many Connect calls the server's own handler finished meanwhile, by
code (streams ended before it ever saw them, e.g. CANCELLED by gRPC core, are not among them).
/metrics is scraped at most once a second (it costs the server too).

The simulator is made cheap so that on a 2-core machine it takes as little from the server as
it can (tests/support_fleet.py): a minimal HTTP/2 client (tests/support_h2.py), agents in --procs
processes, ~100 streams per HTTP/2 connection, messages serialized once, one ticker per process
writing the heartbeats of the agents whose turn it is (agents spread over the interval): about
16 us of simulator CPU per heartbeat, where gRPC's Python client took about 68. The server is
insecure (one identity for every agent, so --max-streams is raised), on SQLite. To measure
another checkout's server with this bench, run it with that checkout's interpreter (its editable
install maps jobplane.server there), e.g. ../other-checkout/.venv/bin/python bench/agents.py
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
import urllib.request
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import ServerProc, wait_until  # noqa: E402
from support_fleet import ENDED, LATE, SKIPPED, Fleet, judge  # noqa: E402
from support_http import HTTP, http_address  # noqa: E402

def scrape(url: str) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    body = urllib.request.urlopen(f"{url}/metrics", timeout=60).read().decode()
    samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name != "jobplane_provider_silence_seconds":
                samples[(s.name, *sorted(s.labels.items()))] = s.value
            else:
                samples[("silence_max",)] = max(samples.get(("silence_max",), 0.0), s.value)
    return samples


def quantile(before: dict, after: dict, q: float) -> str:
    """The upper bound of the bucket holding quantile q of the heartbeats handled in between."""
    name = "jobplane_heartbeat_handling_seconds_bucket"
    bounds = sorted((float(k[1][1]) if k[1][1] != "+Inf" else float("inf"), v - before.get(k, 0.0))
                    for k, v in after.items() if k[0] == name)
    total = bounds[-1][1] if bounds else 0
    if not total:
        return "-"
    for bound, cumulative in bounds:
        if cumulative >= q * total:
            return f"<={bound * 1000:g}ms" if bound != float("inf") else ">5s"
    return "?"


def connects(before: dict, after: dict) -> str:
    """Connect calls the server answered in between, by status code (an agent stream ends with
    its call: OK when the server hung up, CANCELLED when the agent did)."""
    codes = {dict(k[1:])["code"]: v - before.get(k, 0.0) for k, v in after.items()
             if k[0] == "jobplane_rpcs_total" and dict(k[1:]).get("method", "").endswith("/Connect")}
    return ", ".join(f"{code} {n:.0f}" for code, n in sorted(codes.items()) if n) or "none"


def delta(before: dict, after: dict, name: str) -> float:
    return after.get((name,), 0.0) - before.get((name,), 0.0)


def active(samples: dict) -> int:
    return int(samples.get(("jobplane_providers", ("state", "ACTIVE")), 0))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def failovers(db: Path, status: str, like: str = "%") -> list[tuple[str, float]]:
    """The providers' SUSPECT (probed, nothing moved) or LOST (given up on: streams closed, tasks
    would be handed on) events so far whose message is `like` that, as (provider, time)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT provider, time FROM event WHERE provider != '' AND raw_status = ? AND "
                            "message LIKE ?", (status, like)).fetchall()


def judged(events: list[tuple[str, float]], logs: dict, allowed: float, start: float, end: float) -> str:
    """'justified/false' of the suspicions between `start` and `end` (support_fleet.judge)."""
    return "%d/%d" % judge([(p, t) for p, t in events if start <= t < end], logs, allowed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", default="1000,5000,10000,20000", help="agents connected at each step")
    p.add_argument("--heartbeat", type=float, default=2.0, help="the agents' heartbeat interval, seconds")
    p.add_argument("--hold", type=float, default=30.0, help="seconds each step is measured, once all connected")
    p.add_argument("--procs", type=int, default=2, help="processes each step adds simulated agents in")
    p.add_argument("--rate", type=float, default=1000.0, help="agents connecting per second (all processes)")
    p.add_argument("--tolerance", type=float, default=2.0,
                   help="the server's --heartbeat-tolerance: silence allowed, in heartbeat intervals")
    p.add_argument("--keep", type=Path, help="run in this directory and keep it (the server's log and database)")
    a = p.parse_args()
    steps = [int(s) for s in a.steps.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if a.keep is None else a.keep
        work.mkdir(parents=True, exist_ok=True)
        db = work / "bench.db"
        server = ServerProc(work, f"sqlite:///{db}", insecure=True, extra=[*HTTP, "--reconnect-grace", "10",
                                                                     "--max-streams", "100000",
                                                                     "--heartbeat-tolerance", str(a.tolerance)])
        url = f"http://{http_address(server)}"
        fleet = Fleet(server.agent_address, a.heartbeat)
        time.sleep(1.0)
        base_rss = rss_mib(server.pid)
        print(f"server {server.pid}, SQLite, RSS {base_rss:.0f} MiB with no agent; heartbeats every "
              f"{a.heartbeat:g} s; each step held {a.hold:g} s; simulator in {a.procs} processes per step")
        print(f"{'agents':>7} {'ACTIVE':>7} {'RSS MiB':>8} {'KiB/agent':>9} {'ramp p99':>9} {'hb p50':>9} "
              f"{'hb p99':>9} {'hb max':>9} {'CPU us/hb':>9} {'commits/agent':>13} {'silence max':>11} "
              f"{'suspected j/f':>15} {'lost':>6} {'sim late':>8} {'reconn':>6} {'skipped':>7} {'server CPU':>10} "
              f"{'sim CPU':>7}", flush=True)
        print("  (ramp p99: heartbeats handled while the step's agents connected; hb p50/p99/max and the rest: "
              "over the hold, the steady state; suspected: over the ramp + over the hold, each as justified/false: "
              "justified if the agent had sent nothing for longer than heartbeat x tolerance, false if it had)",
              flush=True)
        try:
            for target in steps:
                add = target - fleet.size
                ramp_start, ramp_time, ended = scrape(url), time.time(), fleet.count(ENDED)
                fleet.add(add, a.procs, add / a.rate)
                try:
                    wait_until(lambda: fleet.connected() >= target and active(scrape(url)) >= target,
                               60 + target / 100, f"{target} agents connected and ACTIVE", interval=1.0)
                except AssertionError as exc:
                    print(f"  not all connected and ACTIVE: {exc}", flush=True)
                time.sleep(a.heartbeat * 2)  # every agent has a heartbeat in flight: the steady state
                before, cpu_before, hold_time = scrape(url), cpu_seconds(server.pid), time.time()
                sim_before = sum(cpu_seconds(pr.pid) for pr in fleet.procs)
                commits = delta(ramp_start, before, "jobplane_commit_seconds_count")
                fleet.reset_late()
                time.sleep(a.hold)
                after, cpu_after, end_time = scrape(url), cpu_seconds(server.pid), time.time()
                sim_cpu = (sum(cpu_seconds(pr.pid) for pr in fleet.procs) - sim_before) / a.hold
                beats = delta(before, after, "jobplane_heartbeat_handling_seconds_count")
                rss = rss_mib(server.pid)
                cpu = f"{(cpu_after - cpu_before) / beats * 1e6:.0f}" if beats else "-"
                # Suspicions of silence only: a provider whose stream closed is SUSPECT too (waiting
                # for it to reconnect), which says nothing of its heartbeats ('closed' counts them).
                suspected, lost, logs = failovers(db, "SUSPECT", "silent%"), len(failovers(db, "LOST")), fleet.sent()
                closed = len(failovers(db, "SUSPECT", "stream closed%"))
                allowed = a.heartbeat * a.tolerance
                phases = (f"{judged(suspected, logs, allowed, ramp_time, hold_time)}+"
                          f"{judged(suspected, logs, allowed, hold_time, end_time)}")
                print(f"{fleet.connected():>7} {active(after):>7} {rss:>8.0f} "
                      f"{(rss - base_rss) * 1024 / target:>9.1f} {quantile(ramp_start, before, 0.99):>9} "
                      f"{quantile(before, after, 0.5):>9} {quantile(before, after, 0.99):>9} "
                      f"{quantile(before, after, 1.0):>9} {cpu:>9} {commits / max(1, add):>13.3f} "
                      f"{after.get(('silence_max',), 0.0):>10.1f}s {phases:>15} {lost:>6} "
                      f"{fleet.count(LATE):>6}ms {fleet.count(ENDED):>6} {fleet.count(SKIPPED):>7} "
                      f"{(cpu_after - cpu_before) / a.hold:>9.0%} {sim_cpu:>7.0%}", flush=True)
                if fleet.count(ENDED) > ended:
                    print(f"  {fleet.count(ENDED) - ended} streams ended in this step ({closed} welcomed ones seen "
                          f"closed by the server so far); Connect calls the server answered meanwhile, by code: "
                          f"{connects(ramp_start, after)}", flush=True)
        finally:
            fleet.close()
            server.stop()

if __name__ == "__main__":
    main()
