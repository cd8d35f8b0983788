"""`jobplane providers` shows a restart grace while it runs and how attempts are contained."""

import time

from google.protobuf.timestamp_pb2 import Timestamp

from jobplane.client.cmd_providers import provider_details, provider_table
from jobplane.v1 import provider_pb2


def test_a_provider_in_its_restart_grace_says_when_the_grace_ends():
    ends = Timestamp()
    ends.FromSeconds(int(time.time()) + 90)
    waiting = provider_pb2.Provider(id="a", state=provider_pb2.PROVIDER_STATE_SUSPECT, restart_grace_until=ends)
    assert "SUSPECT (restart grace ends in 1m)" in provider_table([waiting])
    back = provider_pb2.Provider(id="a", state=provider_pb2.PROVIDER_STATE_ACTIVE)
    assert "restart grace" not in provider_table([back])


def test_provider_details_say_how_attempts_are_contained():
    p = provider_pb2.Provider(id="a", state=provider_pb2.PROVIDER_STATE_ACTIVE, containment="cgroup",
                              kill_deadline_seconds=1.0)
    assert "cgroup; a lost agent's attempts are killed within the reconnect grace + 1s" in provider_details(p)
    (line,) = [l for l in provider_details(provider_pb2.Provider(id="old")).splitlines() if "Containment" in l]
    assert line.split() == ["Containment", "-"]  # an agent that did not say


def test_slots_used_show_the_tasks_queued_ahead_beyond_them():
    busy = provider_pb2.Provider(id="a", state=provider_pb2.PROVIDER_STATE_ACTIVE, slots=8, slots_in_use=8,
                                 queued_ahead=12)
    assert "8/8 +12 ahead" in provider_table([busy]) and "8/8 +12 ahead" in provider_details(busy)
    calm = provider_pb2.Provider(id="a", state=provider_pb2.PROVIDER_STATE_ACTIVE, slots=8, slots_in_use=3)
    assert "3/8" in provider_table([calm]) and "ahead" not in provider_table([calm])
