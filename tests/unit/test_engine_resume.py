"""Undrain (`providers resume`), driven on the engine: a resumed provider takes work in the state
it would be in had it never been drained; a drain's leftovers (its deadline) do nothing after."""

from support_engine import assigned, cmd, engine, provider

from jobplane.server.domain.extract import extract_tasks
from jobplane.server.domain.model import EventKind, Hello, JobSpec, ProviderState

P = ProviderState


def submit(e, *tasks):
    spec = JobSpec("job", 0, {}, tuple(tasks), wait_for_providers=True)
    return e.submit(spec, extract_tasks(spec, max_tasks=100, default_max_attempts=1))


def test_a_resumed_provider_takes_the_work_that_waited_and_says_so():
    e = engine()
    provider(e, "a", slots=1)
    e.drain("a", wait=False, deadline=0)
    submit(e, cmd("t"))
    assert assigned(e.take_changes()) == {}
    e.resume_provider("a")
    cs = e.take_changes()
    assert e.providers["a"].state == P.ACTIVE and not e.providers["a"].drained
    assert assigned(cs) == {"a": [("t", 1)]}
    assert [ev.message for ev in cs.events if ev.kind == EventKind.PROVIDER] == ["provider a resumed: taking work"]


def test_resume_leaves_a_provider_that_is_not_drained_as_it_is():
    e = engine()
    provider(e, "a")
    e.take_changes()
    e.resume_provider("a")
    cs = e.take_changes()
    assert e.providers["a"].state == P.ACTIVE and cs.events == [] and not cs.providers


def test_a_resumed_standby_stands_by_again():
    e = engine()
    provider(e, "s", standby=True)
    e.drain("s", wait=False, deadline=0)
    e.resume_provider("s")
    assert e.providers["s"].state == P.STANDBY


def test_the_deadline_of_a_drain_that_was_resumed_hands_nothing_on():
    e = engine()
    provider(e, "a", slots=1)
    submit(e, cmd("slow"))
    e.take_changes()
    e.drain("a", wait=True, deadline=30)
    (_, deadline), = e.take_changes().timers
    e.resume_provider("a")
    e.take_changes()
    e.drain("a", wait=True, deadline=0)  # drained again, with no deadline this time
    e.take_changes()
    deadline(e)  # the first drain's deadline
    cs = e.take_changes()
    assert e.providers["a"].state == P.DRAINING and not cs.stops and not cs.continuations


def test_a_drained_provider_resumed_while_away_takes_work_when_it_connects():
    e = engine()
    conn = provider(e, "a", slots=1)
    e.goodbye("a", conn, wait=False, deadline=0)
    e.disconnect("a", conn)
    e.drain("a", wait=False, deadline=0)
    assert e.providers["a"].state == P.DRAINED  # drained, and gone
    e.resume_provider("a")
    assert e.providers["a"].state == P.STOPPED
    submit(e, cmd("t"))
    e.take_changes()
    e.connect(Hello("a", {}, {}, 1, 1.0, (), False), conn_id=conn + 1)
    assert e.providers["a"].state == P.CONNECTING
    e.ready_signal("a", conn + 1)
    assert assigned(e.take_changes()) == {"a": [("t", 1)]}
