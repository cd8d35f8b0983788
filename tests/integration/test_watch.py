"""The event stream: normalized statuses, and resume from an id with no gap and no duplicate."""

import json
import os
import re
import signal
import subprocess
import sys
import threading

import grpc
import pytest

from jobplane.v1 import event_pb2, event_pb2_grpc
from support import admin_channel, wait_until

SUCCEEDED = 3
NS = {1: "RUNNING", 2: "FAILURE", 3: "WAITING", 4: "SUCCESS", 5: "CANCEL", 6: "RESTART"}


def collect_until_job_end(client, job_id, after=0):
    events = []
    for event in client.watch(job_id, after_event_id=after):
        events.append(event)
        if event.kind == 1 and event.raw_status in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return events
    raise AssertionError("stream ended before the job did")


def test_task_events_walk_through_normalized_statuses(cluster, tmp_path):
    """A task that runs until the test has seen it RUNNING: every state is its own event."""
    cluster.add_agent("a")
    go = tmp_path / "go"
    job = cluster.client.submit_job({"name": "w", "tasks": [
        {"name": "t", "command": ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"]}]})
    events = []
    for event in cluster.client.watch(job.id):
        events.append(event)
        if event.kind == 2 and event.raw_status == "RUNNING":
            go.touch()
        if event.kind == 1 and event.raw_status in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
    task_path = [(e.raw_status, NS[e.status]) for e in events if e.kind == 2]
    assert task_path == [("QUEUED", "WAITING"), ("ASSIGNED", "WAITING"), ("RUNNING", "RUNNING"),
                         ("SUCCEEDED", "SUCCESS")]
    assert [NS[e.status] for e in events if e.kind == 1] == ["WAITING", "RUNNING", "SUCCESS"]


def test_a_fast_task_ends_in_one_event_or_two_and_a_watcher_of_everything_misses_no_id(cluster):
    """No-op tasks may start and end in one commit: then their end takes the place of their
    RUNNING event. Either way each task's path is whole and a watch of everything has every id."""
    cluster.add_agent("a", slots=4)
    job = cluster.client.submit_job({"name": "fast", "tasks": [
        {"name": f"t{i}", "python": "jobplane.examples.funcs:noop"} for i in range(40)]})
    events = collect_until_job_end(cluster.client, "", after=0)
    ids = [e.id for e in events]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    paths: dict[str, list[str]] = {}
    for e in events:
        if e.kind == 2 and e.job_id == job.id:
            paths.setdefault(e.task_id, []).append(e.raw_status)
    assert len(paths) == 40
    for path in paths.values():
        assert path in (["QUEUED", "ASSIGNED", "RUNNING", "SUCCEEDED"], ["QUEUED", "ASSIGNED", "SUCCEEDED"]), path
    assert {e.task_id: e.attempt for e in events if e.kind == 2 and e.raw_status == "SUCCEEDED"} == \
        {t: 1 for t in paths}
    succeeded = [e for e in events if e.kind == 2 and e.raw_status == "SUCCEEDED"]
    assert all(e.provider_id == "a" for e in succeeded), "the end names where the task ran"


def test_resume_from_an_event_id_replays_exactly_the_missed_events(cluster):
    cluster.add_agent("a", slots=2)
    job = cluster.client.submit_job({"name": "r", "tasks": [
        {"name": f"t{i}", "command": ["sh", "-c", "sleep 0.1"]} for i in range(6)]})
    full = collect_until_job_end(cluster.client, job.id)
    ids = [e.id for e in full]
    assert ids == sorted(set(ids)), "ids must increase with no duplicate"
    cut = ids[len(ids) // 3]
    resumed = collect_until_job_end(cluster.client, job.id, after=cut)
    assert [e.id for e in resumed] == [i for i in ids if i > cut]
    assert [e.SerializeToString() for e in resumed] == [e.SerializeToString() for e in full if e.id > cut]


def test_watcher_that_joins_mid_run_sees_replay_then_live_without_gap(cluster):
    """All-jobs watch started while work is running: replay and live must join seamlessly."""
    cluster.add_agent("a", slots=2)
    job = cluster.client.submit_job({"name": "mid", "tasks": [
        {"name": f"t{i}", "command": ["sh", "-c", "sleep 0.3"]} for i in range(6)]})
    for event in cluster.client.watch(job.id):
        if event.raw_status == "RUNNING":
            break
    late = collect_until_job_end(cluster.client, "", after=0)
    seen = [e.id for e in late]
    assert seen == list(range(seen[0], seen[0] + len(seen))), "a watch of everything has every id once, in order"
    assert cluster.client.get_job(job.id).state == SUCCEEDED


def _raw_watch(channel, after: int = 0):
    return event_pb2_grpc.EventServiceStub(channel).WatchEvents(event_pb2.WatchEventsRequest(after_event_id=after),
                                                               timeout=120)


def _window_bound_channel(server):
    """A channel whose stream window stays at HTTP/2's initial 64 KiB (no BDP probing grows it),
    so a stream on it that is not read stops the server's writes soon."""
    creds = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(server.ca.read_bytes()),
                                               grpc.access_token_call_credentials(server.token))
    return grpc.secure_channel(server.address, creds, options=[("grpc.http2.bdp_probe", 0)])


@pytest.mark.server_args("--watcher-queue", "5")
def test_a_stalled_watcher_is_cut_off_with_where_to_resume_while_a_fast_one_keeps_up(sqlite_cluster):
    """The stalled watcher is a stream nobody reads: once HTTP/2 flow control stops the server's
    writes to it, every commit adds a batch to its queue until the sixth is refused."""
    c = sqlite_cluster
    c.add_agent("a", slots=4)
    stalled_channel, fast_channel = _window_bound_channel(c.server), admin_channel(c.server)
    stalled = _raw_watch(stalled_channel)
    fast: list = []
    fast_error: list = []
    job_ids: list[str] = []

    def follow():
        try:
            for response in _raw_watch(fast_channel):
                fast.extend(response.events)
                if any(e.kind == 1 and e.job_id in job_ids and e.raw_status == "SUCCEEDED" for e in response.events):
                    return
        except grpc.RpcError as exc:
            fast_error.append(exc)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    job = c.client.submit_job({"name": "many", "tasks": [
        {"name": f"task-{i:04d}", "python": "jobplane.examples.funcs:noop"} for i in range(1000)]})
    job_ids.append(job.id)
    follower.join(120)
    assert not follower.is_alive(), "the fast watcher did not see the job end"
    assert not fast_error, f"the fast watcher was cut off: {fast_error[0].details()}"
    ids = [e.id for e in fast]
    assert ids == list(range(1, ids[-1] + 1)), "the fast watcher got every event once, in order"

    got: list = []
    with pytest.raises(grpc.RpcError) as cut:
        for response in stalled:
            got.extend(response.events)
            assert got[-1].id < ids[-1], "the stalled watcher was never cut off (is --watcher-queue applied?)"
    assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, cut.value.details()
    resume = int(re.search(r"after_event_id=(\d+)", cut.value.details()).group(1))
    assert [e.id for e in got] == list(range(1, resume + 1)), "everything up to where it is told to resume"
    rest = []
    for response in _raw_watch(fast_channel, after=resume):
        rest.extend(response.events)
        if rest and rest[-1].id >= ids[-1]:
            break
    union = got + [e for e in rest if e.id <= ids[-1]]
    assert [e.SerializeToString() for e in union] == [e.SerializeToString() for e in fast], "no gap, no duplicate"
    for channel in (stalled_channel, fast_channel):
        channel.close()


def _cli_watch(server, *args: str):
    return subprocess.Popen([sys.executable, "-m", "jobplane.client.cli", "watch", *args, "-o", "json",
                             "--server", server.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **server.env()})


def _json_lines(text: str) -> list[dict]:
    """The complete lines a watcher printed (one cut short by a kill is not an event it saw)."""
    lines = text.split("\n")
    return [json.loads(line) for line in lines[:-1] if line]


def test_a_killed_cli_watcher_resumes_from_its_last_id_without_gap_or_duplicate(cluster, tmp_path):
    gate = tmp_path / "gate"
    cluster.add_agent("a", slots=2)
    job = cluster.client.submit_job({"name": "gated", "tasks": [
        {"name": f"t{i}", "command": ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"]} for i in range(4)]})
    first = _cli_watch(cluster.server, job.id, "--from", "0")
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(first.stdout), daemon=True)
    reader.start()

    def running_printed():
        assert first.poll() is None, first.stderr.read()
        return any('"kind":"TASK"' in line and '"raw_status":"RUNNING"' in line for line in printed)

    wait_until(running_printed, 30, "the watcher to print a task's RUNNING event")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    reader.join(10)  # what it printed before it died, to the end of the pipe
    seen = _json_lines("".join(printed))
    last = int(seen[-1]["id"])
    gate.touch()  # the rest of the job happens while no watcher is there
    assert cluster.client.wait_job(job.id, timeout=60).state == SUCCEEDED

    resumed = _cli_watch(cluster.server, job.id, "--from", str(last))
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    full = _cli_watch(cluster.server, job.id, "--from", "0")
    everything, err = full.communicate(timeout=60)
    assert full.returncode == 0, err
    after = _json_lines(out)
    assert after, "events happened after the kill"
    assert [int(e["id"]) for e in seen + after] == [int(e["id"]) for e in _json_lines(everything)]
    assert seen + after == _json_lines(everything), "the same events, as the full watch printed them"
