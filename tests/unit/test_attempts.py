"""How an attempt ended is one type on both sides of the wire (jobplane.attempts): the agent's
results are it, and its outcomes are numbered as the contract's AttemptOutcome, so each side
converts by number (test_agent_outbox.py checks the agent's FINISHED reports)."""

from jobplane.agent import results
from jobplane.attempts import AttemptResult, Outcome
from jobplane.v1 import provider_pb2


def test_outcomes_are_numbered_as_on_the_wire():
    assert {o.name: int(o) for o in Outcome} == {
        name.removeprefix("ATTEMPT_OUTCOME_"): number
        for name, number in provider_pb2.AttemptOutcome.items() if not name.endswith("UNSPECIFIED")}


def test_the_agent_builds_the_shared_result():
    assert results.AttemptResult is AttemptResult and results.Outcome is Outcome
