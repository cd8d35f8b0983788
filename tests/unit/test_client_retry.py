"""The SDK's submit retry policy: bounded, growing pauses; only UNAVAILABLE and DEADLINE_EXCEEDED,
and only for a request that carries an id."""

import uuid

import grpc
import pytest

from jobplane.client import DeadlineExceeded, InvalidArgument, JobplaneError, ResourceExhausted, Retry, Unavailable
from jobplane.client.retry import next_pause, submit_request

SPEC = {"name": "j", "tasks": [{"name": "t", "command": ["true"]}]}


def test_pauses_grow_with_jitter_up_to_the_bound():
    pauses = list(Retry(attempts=6, first_pause=0.5, max_pause=3.0).pauses())
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(pauses) == 5
    assert all(c / 2 <= p <= c for p, c in zip(pauses, ceilings))
    assert list(Retry(attempts=1).pauses()) == []
    with pytest.raises(ValueError):
        Retry(attempts=0)


def test_only_a_failed_way_to_the_server_is_retried_and_only_with_a_request_id():
    request = submit_request(SPEC, None)
    assert str(uuid.UUID(request.request_id)) == request.request_id
    assert submit_request(SPEC, None).request_id != request.request_id, "a fresh id per submit_job call"
    cut = JobplaneError("Stream removed (Unwrap failed (TSI_DATA_CORRUPTED))")  # a connection cut mid-message
    for error in (Unavailable("down"), DeadlineExceeded("slow"), cut):
        assert next_pause(Retry().pauses(), error, request) is not None
    for error in (InvalidArgument("spec.name: empty"), ResourceExhausted("slow down"), JobplaneError("boom"),
                  JobplaneError("Stream removed", grpc.StatusCode.INTERNAL)):
        assert next_pause(Retry().pauses(), error, request) is None
    assert next_pause(Retry().pauses(), Unavailable("down"), submit_request(SPEC, "")) is None
    pauses = Retry(attempts=2).pauses()
    assert next_pause(pauses, Unavailable("down"), request) is not None
    assert next_pause(pauses, Unavailable("down"), request) is None, "no tries left"
