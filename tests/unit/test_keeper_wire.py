"""The keeper's wire: the replies it formats directly on its hot path are the very bytes the
JSON encoder makes, so an agent (of any release) reads them alike."""

from __future__ import annotations

import json

import pytest

from jobplane.agent import keeper_wire as wire


@pytest.mark.parametrize("request_id, pid, start", [
    (1, 4242, 3784084), (10**12, 1, 0), ("an id", 7, 12), (3, 7, None), (True, 7, 12)])
def test_a_started_reply_is_what_the_encoder_makes(request_id, pid, start):
    line = wire.started(request_id, pid, start)
    assert line == wire.encode({"op": "started", "id": request_id, "pid": pid, "start": start})
    assert wire.decode(line) == {"op": "started", "id": request_id, "pid": pid, "start": start}


@pytest.mark.parametrize("summary", [
    {"status": 0, "lost": "", "output": {"out": 0, "err": 0}, "segment": 1 << 20},
    {"status": -9, "lost": "", "output": {"out": 5, "err": 123456789}, "segment": 4096},
    {"status": 0, "lost": "no agent process held its lease (grace 1s)", "output": {"out": 0, "err": 0},
     "segment": 1},
    {"status": None, "lost": "", "output": {"out": 0, "err": 0}, "segment": 1},
    {"status": 0, "lost": 'a "quoted" reason\n', "output": {"out": 0, "err": 0}, "segment": 1},
])
def test_an_ended_message_is_what_the_encoder_makes(summary):
    line = wire.ended(4242, summary)
    assert line == wire.encode({"op": "ended", "pid": 4242, **summary})
    assert json.loads(line) == {"op": "ended", "pid": 4242, **summary}
