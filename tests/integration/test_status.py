"""Normalized status with a real server: jobs marked late once past their deadlines (never
before; how soon after is a figure of bench/lateness.py), and an external scheduler's raw
statuses walking through mainframe-like values."""

from __future__ import annotations

import textwrap
from contextlib import closing

import pytest

from support import wait_until

LATE_TO_START, RUNNING_LATE, FAILURE, RUNNING, SUCCESS = 8, 9, 2, 1, 4
JOB = 1


def seconds(stamp) -> float:
    return stamp.ToNanoseconds() / 1e9


def first_event(cluster, job_id, wanted, timeout=30):
    with closing(cluster.client.watch(job_id, timeout=timeout)) as events:
        for event in events:
            if wanted(event):
                return event
    raise AssertionError("the job ended without the wanted event")


def test_a_job_not_started_in_time_is_late_to_start(cluster):
    job = cluster.client.submit_job({"name": "late", "wait_for_providers": True, "max_wait": 1,
                                     "tasks": [{"name": "t", "command": ["true"]}]})
    event = first_event(cluster, job.id, lambda e: e.kind == JOB and e.status == LATE_TO_START)
    assert seconds(event.time) >= seconds(job.submit_time) + 1, "never before its deadline"
    assert cluster.client.get_job(job.id).status == LATE_TO_START
    cluster.client.cancel_job(job.id)


def test_a_job_still_running_past_its_runtime_is_running_late(cluster):
    cluster.add_agent("a1", slots=1)
    job = cluster.client.submit_job({"name": "slow", "max_runtime": 1,
                                     "tasks": [{"name": "t", "command": ["sleep", "30"]}]})
    started = first_event(cluster, job.id, lambda e: e.kind == JOB and e.status == RUNNING)
    late = first_event(cluster, job.id, lambda e: e.kind == JOB and e.status == RUNNING_LATE)
    assert seconds(late.time) >= seconds(started.time) + 1, "never before its deadline"
    assert cluster.client.get_job(job.id).status == RUNNING_LATE
    cluster.client.cancel_job(job.id)


SCHEDULER = textwrap.dedent("""
    #!/bin/sh
    # A fake mainframe scheduler: submit prints an id; each poll moves one step on.
    state={state}
    case "$1" in
      submit) echo 0 > "$state"; echo '{{"id": "JOB00042"}}' ;;
      poll)
        n=$(cat "$state"); echo $((n + 1)) > "$state"
        case $n in
          0) echo '{{"queue": "INPUT", "status": "AWAITING EXECUTION"}}' ;;
          1) echo '{{"queue": "EXEC", "status": "EXECUTING"}}' ;;
          *) echo '{{"queue": "PRINT", "status": "ABEND", "specific": "S0C7", "done": true, "exit_code": 12}}' ;;
        esac ;;
      cancel) echo '{{}}' ;;
    esac
""").lstrip()


def test_an_external_scheduler_walks_through_normalized_statuses(cluster, tmp_path):
    script = tmp_path / "mf.sh"
    script.write_text(SCHEDULER.format(state=tmp_path / "state"))
    script.chmod(0o755)
    cluster.add_agent("a1", slots=1)
    job = cluster.client.submit_job({"name": "mf", "tasks": [{"name": "t", "external": {
        "submit": [str(script), "submit"], "poll": [str(script), "poll"], "cancel": [str(script), "cancel"],
        "poll_interval": 0.05}}]})
    assert cluster.client.wait_job(job.id, timeout=60).state == 4  # FAILED
    seen = []
    with closing(cluster.client.watch(job.id, timeout=30)) as events:
        for event in events:
            if event.environment == "external":
                seen.append((event.raw.get("status"), event.status))
            if event.kind == JOB and event.raw_status == "FAILED":
                break
    assert seen[:3] == [("AWAITING EXECUTION", 3), ("EXECUTING", RUNNING), ("ABEND", FAILURE)]
    (task,) = list(cluster.client.list_tasks(job.id))
    assert "ABEND" in task.error


def test_an_abend_with_exit_code_zero_fails_the_job_and_its_dependent_never_runs(cluster, tmp_path):
    """One truth: the status everyone sees (FAILURE, from the scheduler's ABEND) decides the outcome,
    not the exit code 0 the scheduler also reported."""
    script = tmp_path / "mf.sh"
    script.write_text(SCHEDULER.format(state=tmp_path / "state").replace('"exit_code": 12', '"exit_code": 0'))
    script.chmod(0o755)
    marker = tmp_path / "next-ran"
    cluster.add_agent("a1", slots=1)
    job = cluster.client.submit_job({"name": "mf", "tasks": [
        {"name": "t", "max_attempts": 1, "external": {
            "submit": [str(script), "submit"], "poll": [str(script), "poll"], "cancel": [str(script), "cancel"],
            "poll_interval": 0.05}},
        {"name": "next", "after": ["t"], "command": ["touch", str(marker)]}]})
    done = cluster.client.wait_job(job.id, timeout=60)
    tasks = {t.name: t for t in cluster.client.list_tasks(job.id)}
    assert (done.state, done.status) == (4, FAILURE)  # FAILED
    assert (tasks["t"].status, tasks["t"].exit_code) == (FAILURE, 0) and "ABEND" in tasks["t"].reason
    assert tasks["next"].state == 7 and not marker.exists(), "the dependent was cancelled, never run"


def _mainframe_job(cluster, tmp_path):
    script = tmp_path / "mf.sh"
    script.write_text(SCHEDULER.format(state=tmp_path / "state"))
    script.chmod(0o755)
    return cluster.client.submit_job({"name": "mf", "tasks": [{"name": "t", "external": {
        "submit": [str(script), "submit"], "poll": [str(script), "poll"], "poll_interval": 0.05}}]})


def _abend_seen_by(client, job_id):
    with closing(client.watch(job_id, timeout=30)) as events:
        for event in events:
            if event.environment == "external" and event.raw.get("status") == "ABEND":
                return event
    raise AssertionError("no ABEND event")


def _viewer(cluster, name, groups=()):
    from jobplane.client import Client

    secret = cluster.client.create_token("viewer", user=name, groups=groups).secret
    return Client.connect(cluster.server.address, token=secret, ca=cluster.server.ca), secret


def _set_policy(cluster, secret, scope, name, rules):
    import grpc
    from google.protobuf import struct_pb2

    from jobplane.v1 import policy_pb2, policy_pb2_grpc

    creds = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(cluster.server.ca.read_bytes()),
                                               grpc.access_token_call_credentials(secret))
    document = struct_pb2.Struct()
    document.update({"rules": rules})
    with grpc.secure_channel(cluster.server.address, creds) as channel:
        return policy_pb2_grpc.PolicyServiceStub(channel).SetPolicy(
            policy_pb2.SetPolicyRequest(scope=scope, name=name, document=document), timeout=10)


ABEND = {"environment": "external", "when": {"status": "ABEND"}}
ON_HOLD, RESTART, UNKNOWN = 7, 6, 11


def _three_viewers(cluster):
    """alice maps ABEND to ON_HOLD (and failed jobs to UNKNOWN), group ops to RESTART, bob has none."""
    from jobplane.v1 import policy_pb2

    (alice, alice_secret), (bob, _), (carol, _) = (_viewer(cluster, "alice"), _viewer(cluster, "bob"),
                                                   _viewer(cluster, "carol", ["ops"]))
    assert _set_policy(cluster, alice_secret, policy_pb2.POLICY_SCOPE_USER, "alice", [
        {**ABEND, "status": "ON_HOLD"},
        {"environment": "jobplane", "when": {"state": "FAILED"}, "status": "UNKNOWN"}]).policy.version == 1
    _set_policy(cluster, cluster.server.token, policy_pb2.POLICY_SCOPE_GROUP, "ops", [{**ABEND, "status": "RESTART"}])
    return alice, alice_secret, bob, carol


def test_users_with_different_policies_see_different_statuses_and_the_same_raw_values(cluster, tmp_path):
    import grpc

    from jobplane.v1 import policy_pb2

    alice, alice_secret, bob, carol = _three_viewers(cluster)
    try:
        with pytest.raises(grpc.RpcError) as denied:  # a viewer may change only its own user policy
            _set_policy(cluster, alice_secret, policy_pb2.POLICY_SCOPE_GROUP, "ops", [])
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        cluster.add_agent("a1", slots=1)
        job = _mainframe_job(cluster, tmp_path)
        cluster.client.wait_job(job.id, timeout=60)
        seen = {name: _abend_seen_by(client, job.id) for name, client in
                (("alice", alice), ("bob", bob), ("carol", carol))}
        assert {name: e.status for name, e in seen.items()} == {"alice": ON_HOLD, "bob": FAILURE, "carol": RESTART}
        assert len({tuple(sorted(e.raw.items())) for e in seen.values()}) == 1, "the same raw values for all"
        with closing(cluster.client.watch(timeout=30, filter="type=POLICY")) as events:
            changes = [next(events), next(events)]
        assert [(dict(e.raw), e.raw_status) for e in changes] == [
            ({"scope": "user", "name": "alice", "version": "1"}, "SET"),
            ({"scope": "group", "name": "ops", "version": "1"}, "SET")]
        assert changes[0].message == "user policy 'alice' version 1 set by alice"
    finally:
        for client in (alice, bob, carol):
            client.close()


def test_a_status_event_names_the_rule_that_decided_what_its_reader_sees(cluster, tmp_path):
    from jobplane.v1 import policy_pb2

    dave, dave_secret = _viewer(cluster, "dave")
    try:
        _set_policy(cluster, dave_secret, policy_pb2.POLICY_SCOPE_USER, "dave", [
            {"environment": "external", "when": {"status": "EXECUTING"}, "status": "ON_HOLD"}])
        cluster.add_agent("a1", slots=1)
        job = _mainframe_job(cluster, tmp_path)
        cluster.client.wait_job(job.id, timeout=60)

        def executing(client):
            with closing(client.watch(job.id, timeout=30)) as events:
                return next(e for e in events if e.raw.get("status") == "EXECUTING")

        theirs, admins = executing(dave), executing(cluster.client)
        assert (theirs.status, admins.status) == (ON_HOLD, RUNNING)
        assert theirs.message == "user policy 'dave' rules[0]: external: status = 'EXECUTING' -> ON_HOLD"
        assert admins.message.startswith("default policy 'default' rules[")
    finally:
        dave.close()


def test_get_list_and_summary_show_each_users_normalization(cluster, tmp_path):
    alice, _, bob, carol = _three_viewers(cluster)
    try:
        cluster.add_agent("a1", slots=1)
        job = _mainframe_job(cluster, tmp_path)
        cluster.client.wait_job(job.id, timeout=60)
        users = {"alice": alice, "bob": bob, "carol": carol}
        tasks = {name: c.get_task(next(iter(c.list_tasks(job.id))).id) for name, c in users.items()}
        assert {n: t.status for n, t in tasks.items()} == {"alice": ON_HOLD, "bob": FAILURE, "carol": RESTART}
        assert {n: t.attempts[-1].status for n, t in tasks.items()} == {
            "alice": ON_HOLD, "bob": FAILURE, "carol": RESTART}, "attempts too"
        raws = {tuple(sorted(t.raw.items())) for t in tasks.values()}
        assert len(raws) == 1 and dict(next(iter(raws)))["status"] == "ABEND", raws
        assert {t.environment for t in tasks.values()} == {"external"}
        assert {n: c.get_job(job.id).status for n, c in users.items()} == {
            "alice": UNKNOWN, "bob": FAILURE, "carol": FAILURE}
        assert dict(alice.get_job(job.id).raw) == {"state": "FAILED"}
        # filters see the caller's statuses
        assert [t.id for t in alice.list_tasks(job.id, filter="status=ON_HOLD")] == [tasks["bob"].id]
        assert list(bob.list_tasks(job.id, filter="status=ON_HOLD")) == []
        assert [j.id for j in alice.list_jobs(filter="status=UNKNOWN")] == [job.id]
        assert list(bob.list_jobs(filter="status=UNKNOWN")) == []
        summary = {n: {c.status: c.count for c in u.summarize_jobs().counts} for n, u in users.items()}
        assert summary == {"alice": {UNKNOWN: 1}, "bob": {FAILURE: 1}, "carol": {FAILURE: 1}}
    finally:
        for client in (alice, bob, carol):
            client.close()


@pytest.mark.server_args("--event-retention", "1")
def test_a_resume_from_before_the_retention_gets_the_oldest_available_id(cluster):
    import re

    from jobplane.client import FailedPrecondition

    def resume_refused() -> str:
        try:
            next(iter(cluster.client.watch(after_event_id=1, timeout=2)), None)
        except FailedPrecondition as exc:
            return str(exc)
        except Exception:  # the deadline: events after 1 are still there
            return ""
        return ""

    cluster.client.submit_job({"name": "old", "wait_for_providers": True, "tasks": [{"name": "t", "command": ["true"]}]})
    message = wait_until(resume_refused, 30, "the old events to be compacted")
    oldest = int(re.search(r"events before id (\d+) were compacted", message).group(1))
    fresh = cluster.client.submit_job({"name": "new", "wait_for_providers": True,
                                       "tasks": [{"name": "t", "command": ["true"]}]})
    first = next(iter(cluster.client.watch(after_event_id=oldest - 1, timeout=10)))
    assert first.id >= oldest and first.job_id == fresh.id


def test_a_job_in_each_environment_shows_its_raw_properties_and_normalized_status(cluster, tmp_path):
    script = tmp_path / "mf.sh"
    script.write_text(SCHEDULER.format(state=tmp_path / "state"))
    script.chmod(0o755)
    cluster.add_agent("a1", slots=3)
    job = cluster.client.submit_job({"name": "three", "tasks": [
        {"name": "proc", "command": ["sh", "-c", "exit 0"]},
        {"name": "py", "python": "jobplane.examples.funcs:fail", "args": {"message": "no luck"}},
        {"name": "mf", "external": {"submit": [str(script), "submit"], "poll": [str(script), "poll"],
                                    "poll_interval": 0.05}}]})
    cluster.client.wait_job(job.id, timeout=60)
    tasks = {t.name: cluster.client.get_task(t.id) for t in cluster.client.list_tasks(job.id)}
    shown = {name: (t.environment, t.status, t.raw.get("status", t.raw.get("state"))) for name, t in tasks.items()}
    assert shown == {"proc": ("process", SUCCESS, "exited"), "py": ("python", FAILURE, "raised"),
                     "mf": ("external", FAILURE, "ABEND")}
    assert tasks["py"].raw["exception_type"] and tasks["mf"].raw["specific"] == "S0C7"
    assert [t.name for t in cluster.client.list_tasks(job.id, filter="environment=python,external", order_by="name")
            ] == ["mf", "py"]


UNHEARD_OF = textwrap.dedent("""
    #!/bin/sh
    # A scheduler whose statuses no policy knows; it finishes once {release} exists.
    case "$1" in
      submit) echo '{{"id": "NIGHT01"}}' ;;
      poll)
        if [ -e {release} ]; then
          echo '{{"queue": "NIGHT", "status": "FROBNICATED", "done": true, "exit_code": 0}}'
        else
          echo '{{"queue": "NIGHT", "status": "FROBNICATING", "specific": "Z9"}}'
        fi ;;
      cancel) echo '{{}}' ;;
    esac
""").lstrip()


def test_a_status_no_rule_knows_is_unknown_in_get_and_watch_with_its_raw_values(cluster, tmp_path):
    release = tmp_path / "release"
    script = tmp_path / "night.sh"
    script.write_text(UNHEARD_OF.format(release=release))
    script.chmod(0o755)
    cluster.add_agent("a1", slots=1)
    job = cluster.client.submit_job({"name": "night", "tasks": [{"name": "t", "external": {
        "submit": [str(script), "submit"], "poll": [str(script), "poll"], "poll_interval": 0.05}}]})
    raw = {"queue": "NIGHT", "status": "FROBNICATING", "specific": "Z9"}

    def task_shown():
        (task,) = list(cluster.client.list_tasks(job.id))
        task = cluster.client.get_task(task.id)
        return task if dict(task.raw) == raw else None

    task = wait_until(task_shown, 30, "the task to show the scheduler's raw values")
    assert (task.environment, task.status) == ("external", UNKNOWN)
    assert task.attempts[-1].status == UNKNOWN and dict(task.attempts[-1].raw) == raw
    event = first_event(cluster, job.id, lambda e: e.environment == "external" and e.raw.get("status") == "FROBNICATING")
    assert (event.status, event.raw_status, dict(event.raw)) == (UNKNOWN, "FROBNICATING", raw)
    release.touch()
    assert cluster.client.wait_job(job.id, timeout=60).state == 3  # SUCCEEDED: exit code 0
    (task,) = list(cluster.client.list_tasks(job.id))
    final = cluster.client.get_task(task.id)
    assert (final.raw["queue"], final.raw["status"]) == ("NIGHT", "FROBNICATED"), "raw values kept to the end"


def test_a_user_rule_on_queue_and_status_maps_for_that_user_only(cluster, tmp_path):
    from jobplane.v1 import policy_pb2

    (alice, alice_secret), (bob, _) = _viewer(cluster, "alice"), _viewer(cluster, "bob")
    try:
        # The decoys before it match one of the two properties only: they must not decide.
        _set_policy(cluster, alice_secret, policy_pb2.POLICY_SCOPE_USER, "alice", [
            {"environment": "external", "when": {"queue": "INPUT", "status": "ABEND"}, "status": "ON_HOLD"},
            {"environment": "external", "when": {"queue": "PRINT", "status": "EXECUTING"}, "status": "INACTIVE"},
            {"environment": "external", "when": {"queue": {"in": ["PRINT", "OUTPUT"]}, "status": {"glob": "AB*"}},
             "status": "RESTART"}])
        cluster.add_agent("a1", slots=1)
        job = _mainframe_job(cluster, tmp_path)
        cluster.client.wait_job(job.id, timeout=60)
        (task_id,) = [t.id for t in cluster.client.list_tasks(job.id)]
        shown = {name: c.get_task(task_id) for name, c in (("alice", alice), ("bob", bob), ("admin", cluster.client))}
        assert {name: t.status for name, t in shown.items()} == {"alice": RESTART, "bob": FAILURE, "admin": FAILURE}
        assert {(t.raw["queue"], t.raw["status"]) for t in shown.values()} == {("PRINT", "ABEND")}
    finally:
        alice.close()
        bob.close()
