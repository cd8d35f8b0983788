"""The SDK's retry policy: bounded, growing pauses between rounds over the replicas; reads and
a submit with its request id are retried after a failed way to the server, any other call only
when it certainly reached no server."""

import uuid

import grpc
import pytest

from jobplane.client import DeadlineExceeded, InvalidArgument, JobplaneError, ResourceExhausted, Retry, Unavailable
from jobplane.client.calls import cancel_job, get_job, submit_job
from jobplane.client.replicas import Replicas
from jobplane.client.retry import Tries, may_retry, never_sent, resumable

SPEC = {"name": "j", "tasks": [{"name": "t", "command": ["true"]}]}
REFUSED = Unavailable("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
                      "Failed to connect to remote host: Connection refused")
UNRESOLVED = Unavailable("errors resolving dead:7070: [field:hostname lookup error:address lookup failed for "
                         "dead:7070: Domain name not found]")
CUT = JobplaneError("Stream removed (Unwrap failed (TSI_DATA_CORRUPTED))")  # a connection cut mid-message


def replicas(*addresses: str) -> Replicas:
    return Replicas({address: grpc.insecure_channel(address) for address in addresses})


def test_pauses_grow_with_jitter_up_to_the_bound():
    pauses = list(Retry(attempts=6, first_pause=0.5, max_pause=3.0).pauses())
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(pauses) == 5
    assert all(c / 2 <= p <= c for p, c in zip(pauses, ceilings))
    assert list(Retry(attempts=1).pauses()) == []
    with pytest.raises(ValueError):
        Retry(attempts=0)


def test_reads_and_a_submit_with_its_id_are_retried_after_a_failed_way_to_the_server():
    submit = submit_job(SPEC)
    assert str(uuid.UUID(submit.request.request_id)) == submit.request.request_id
    assert submit_job(SPEC).request.request_id != submit.request.request_id, "a fresh id per submit_job call"
    for call in (submit, get_job("1")):
        assert call.idempotent
        for error in (Unavailable("down"), DeadlineExceeded("slow"), CUT, REFUSED):
            assert may_retry(error, idempotent=call.idempotent)
        for error in (InvalidArgument("spec.name: empty"), ResourceExhausted("slow down"), JobplaneError("boom"),
                      JobplaneError("Stream removed", grpc.StatusCode.INTERNAL)):
            assert not may_retry(error, idempotent=call.idempotent)
    assert not submit_job(SPEC, request_id="").idempotent, "no request id: no safe retry"


def test_another_change_is_retried_only_when_it_certainly_reached_no_server():
    cancel = cancel_job("1")
    assert not cancel.idempotent
    assert never_sent(REFUSED) and never_sent(UNRESOLVED)
    assert may_retry(REFUSED, idempotent=False) and may_retry(UNRESOLVED, idempotent=False)
    for maybe_done in (Unavailable("Socket closed"), Unavailable("this replica stopped leading; retry"),
                       DeadlineExceeded("Deadline Exceeded"), CUT):
        assert not never_sent(maybe_done)
        assert not may_retry(maybe_done, idempotent=False), maybe_done


def test_a_watch_resumes_after_a_break_but_not_after_its_own_deadline():
    assert resumable(Unavailable("Socket closed")) and resumable(CUT) and resumable(REFUSED)
    assert not resumable(DeadlineExceeded("Deadline Exceeded"))
    assert not resumable(InvalidArgument("filter: unknown key"))


def test_the_next_replica_is_tried_at_once_and_a_pause_comes_after_each_round():
    servers = replicas("a:1", "b:1", "c:1")
    tries = Tries(Retry(attempts=2, first_pause=0.5, max_pause=0.5), servers, "GetJob", idempotent=True)
    seen, pauses = [], []
    while True:
        replica = servers.current
        seen.append(replica.address)
        pause = tries.after(Unavailable("down"), replica)
        if pause is None:
            break
        pauses.append(pause)
    assert seen == ["a:1", "b:1", "c:1", "a:1", "b:1", "c:1"], "two rounds over the three replicas"
    assert pauses[:2] == [0.0, 0.0] and 0.25 <= pauses[2] <= 0.5 and pauses[3:] == [0.0, 0.0]
    assert servers.current.address == "c:1", "the last one tried stays current"


def test_a_final_error_moves_nothing_and_progress_starts_a_fresh_round():
    servers = replicas("a:1", "b:1")
    tries = Tries(Retry(attempts=1), servers, "CancelJob", idempotent=False)
    assert tries.after(Unavailable("Socket closed"), servers.current) is None
    assert servers.current.address == "a:1"
    assert tries.after(REFUSED, servers.current) == 0.0 and servers.current.address == "b:1"
    tries.progressed()  # b answered for a while, then broke
    assert tries.after(REFUSED, servers.current) == 0.0 and servers.current.address == "a:1"
    assert tries.after(REFUSED, servers.current) is None, "one round, no pause: Retry(attempts=1)"


def test_moving_on_from_a_replica_another_call_left_already_keeps_the_current_one():
    servers = replicas("a:1", "b:1", "c:1")
    a = servers.current
    assert servers.move_on(a).address == "b:1"
    assert servers.move_on(a).address == "b:1", "a second failure on a does not skip b"
