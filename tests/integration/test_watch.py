"""The event stream: normalized statuses, and resume from an id with no gap and no duplicate."""

SUCCEEDED = 3
NS = {1: "RUNNING", 2: "FAILURE", 3: "WAITING", 4: "SUCCESS", 5: "CANCEL", 6: "RESTART"}


def collect_until_job_end(client, job_id, after=0):
    events = []
    for event in client.watch(job_id, after_event_id=after):
        events.append(event)
        if event.kind == 1 and event.raw_status in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return events
    raise AssertionError("stream ended before the job did")


def test_task_events_walk_through_normalized_statuses(cluster):
    cluster.add_agent("a")
    job = cluster.client.submit_job({"name": "w", "tasks": [{"name": "t", "command": ["true"]}]})
    events = collect_until_job_end(cluster.client, job.id)
    task_path = [(e.raw_status, NS[e.status]) for e in events if e.kind == 2]
    assert task_path == [("QUEUED", "WAITING"), ("ASSIGNED", "WAITING"), ("RUNNING", "RUNNING"),
                         ("SUCCEEDED", "SUCCESS")]
    assert [NS[e.status] for e in events if e.kind == 1] == ["WAITING", "RUNNING", "SUCCESS"]


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
