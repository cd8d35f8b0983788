"""Supervision when the server itself is behind: its ticks come late, a little each time or
all at once, and the heartbeats its providers sent meanwhile still wait to be read. Judged by
the providers' states and the probes the engine sends, as `providers list` and the event log
show them."""

from support_engine import engine, provider

from jobplane.server.domain.model import ProviderState

TICK = 0.1  # the server's --supervise-interval


def behind(e, now: float, seconds: float, late: float) -> float:
    """The server runs `seconds`, every tick of it `late` seconds late; returns the new time."""
    end = now + seconds
    while now < end - 1e-9:
        now += TICK + late
        e.begin(now)
        e.supervise(late)
    return now


def test_a_server_behind_a_little_at_every_tick_does_not_suspect_its_providers_for_it():
    """No tick is late by the 0.5 s that is logged as a stall, but together they are: over 3.6 s
    the server was behind for 2.4 s. A provider promised a signal every 1 s (x tolerance 2) whose
    heartbeats wait on the connection meanwhile is not suspected for that; once it is silent past
    its promise on the server's slowed clock (its own time, not the server's), it is."""
    e = engine()
    provider(e, "a", slots=1)
    e.take_changes()
    now = behind(e, 100.0, 3.6, late=0.2)
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.ACTIVE and not cs.probes
    now = behind(e, now, 1.2, late=0.2)  # silent 4.8 s, 3.2 of them the server's: 1.6 s
    assert e.providers["a"].state == ProviderState.ACTIVE
    behind(e, now, 1.5, late=0.2)  # silent 6.3 s, 4.2 of them the server's: 2.1 s, past 1 s x 2
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.SUSPECT and "a" in cs.probes


def test_a_server_on_time_suspects_the_same_silence():
    """The same 3.6 s of silence on a server whose ticks come on time (late by less than
    supervision.BEHIND, as a busy but healthy loop's are): the provider is suspected and probed
    after 2 s, and lost when its probe goes unanswered."""
    e = engine()
    provider(e, "a", slots=1)
    e.take_changes()
    behind(e, 100.0, 3.6, late=0.01)
    events = [(ev.provider_id, ev.raw_status) for ev in e.take_changes().events]
    assert events == [("a", "SUSPECT"), ("a", "LOST")]


def test_heartbeats_taken_while_the_server_is_behind_keep_a_provider_active():
    """a beats (its heartbeats taken when the server reads them, late); b is silent: only b is
    suspected, and only after its promise has passed on the slowed clock."""
    e = engine()
    conn_a = provider(e, "a", slots=1)
    provider(e, "b", slots=1)
    e.take_changes()
    now = 100.0
    for _ in range(6):
        now = behind(e, now, 1.2, late=0.2)  # 1.2 s, 0.8 of them behind
        e.report("a", conn_a, [])
    assert e.providers["a"].state == ProviderState.ACTIVE
    assert e.providers["b"].state == ProviderState.SUSPECT  # silent 7.2 s, 4.8 of them the server's: 2.4 s


def test_a_provider_lost_twice_before_a_standby_came_is_owed_one_place():
    """An active provider lost, back, and lost again before any standby connected: when two
    standbys come, one of them takes its place, not both."""
    e = engine()
    provider(e, "a", slots=1)
    e.provider_rules.lost(e.providers["a"], "provider a lost: test")
    provider(e, "a", slots=1)  # back, and lost again
    e.provider_rules.lost(e.providers["a"], "provider a lost: test")
    provider(e, "s1", slots=1, standby=True)
    provider(e, "s2", slots=1, standby=True)
    e.take_changes()
    states = sorted(e.providers[p].state.name for p in ("s1", "s2"))
    assert states == ["ACTIVE", "STANDBY"], states


def fleet(e, n: int) -> dict[str, int]:
    conns = {f"a{i}": provider(e, f"a{i}", slots=1) for i in range(n)}
    e.take_changes()
    return conns


def suspected(e) -> int:
    return sum(p.state == ProviderState.SUSPECT for p in e.providers.values())


def test_a_server_that_takes_a_quarter_of_the_promised_heartbeats_while_behind_suspects_no_one():
    """100 providers promise a heartbeat a second (suspected past 2 s of silence). The server is
    behind: its ticks come 0.06 s late (credited, a little) and it takes 25 heartbeats a second,
    in turn, where 100 are sent: each provider is heard from every 4 s while the rest of its
    heartbeats wait on its connection. Ticks alone would leave each silent 2.5 s of its own; the
    shortfall of heartbeats taken slows supervision's clock enough that none is suspected."""
    e = engine()
    conns = fleet(e, 100)
    names, now, turn = list(conns), 100.0, 0
    while now < 112.0:
        now = behind(e, now, 0.16, late=0.06)
        for _ in range(4):  # the heartbeats the server took in this tick's time
            name = names[turn % len(names)]
            e.report(name, conns[name], [])
            turn += 1
        e.supervision.pace.taken(4)
    assert suspected(e) == 0 and not e.take_changes().probes


def test_a_fleet_silent_on_a_server_that_is_on_time_is_suspected_on_time():
    """The same 100 providers all silent (a partition, or dead) on a server whose ticks come on
    time: no heartbeat is taken, but the server is not behind, so nothing is credited and every
    one is suspected once 2 s have passed."""
    e = engine()
    fleet(e, 100)
    behind(e, 100.0, 2.2, late=0.01)
    assert suspected(e) == 100


def test_a_fleet_silent_on_a_server_behind_is_suspected_at_a_quarter_of_the_pace_at_worst():
    """The same silent fleet on a server behind (ticks 0.06 s late): supervision's clock slows,
    but to no less than a quarter: every provider is suspected within 4 x 2 s and a little."""
    e = engine()
    fleet(e, 100)
    now = behind(e, 100.0, 4.0, late=0.06)
    assert suspected(e) == 0
    behind(e, now, 5.0, late=0.06)
    assert suspected(e) + sum(p.state == ProviderState.LOST for p in e.providers.values()) == 100


def test_a_provider_heard_at_every_heartbeat_for_a_long_while_is_suspected_when_it_falls_silent():
    """A provider heard from every 1 s for a minute (each time its entry comes due it was heard
    from: put straight back, no full look) is never probed meanwhile; once it falls silent it is
    suspected after its promise (1 s x 2) runs out on a server that is on time, and not before."""
    e = engine()
    conn = provider(e, "a", slots=1)
    e.take_changes()
    now = 100.0
    for _ in range(600):
        now += TICK
        e.begin(now)
        if round(now * 10) % 10 == 0:
            e.report("a", conn, [])
        e.supervise(0.0)
    cs = e.take_changes()
    assert e.providers["a"].state == ProviderState.ACTIVE and not cs.probes
    silent_from = e.providers["a"].last_seen
    for _ in range(50):  # 5 s of the server's time
        if e.providers["a"].state != ProviderState.ACTIVE:
            break
        now += TICK
        e.begin(now)
        e.supervise(0.0)
    assert e.providers["a"].state == ProviderState.SUSPECT and "a" in e.take_changes().probes
    assert 2.0 < now - silent_from <= 2.0 + 2 * TICK
