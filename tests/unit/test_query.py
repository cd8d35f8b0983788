"""The filter and sort grammar of jobs, tasks and events (server/domain/query.py)."""

import pytest

from jobplane.server.domain.model import JobState, Status
from jobplane.server.domain.query import NUMBER, TEXT, TIME, Field, matches_all, parse_filter, parse_order
from jobplane.server.errors import InvalidArgument

FIELDS = {"status": Field("enum", Status), "state": Field("enum", JobState), "name": TEXT, "priority": NUMBER,
          "submitted": TIME, "label.*": TEXT, "raw.*": TEXT, "environment": TEXT}
NOW = 1_800_000_000.0


def holds(text, record):
    return matches_all(parse_filter(text, FIELDS, NOW), lambda key: record.get(key))


def test_terms_lists_globs_and_quotes():
    job = {"status": int(Status.FAILURE), "name": "nightly load", "raw.queue": "PRINT", "label.team": "etl"}
    assert holds('status=failure,unknown name="nightly load" raw.queue=PR* label.team=etl', job)
    assert holds("status!=RUNNING AND label.team!=web", job)
    assert not holds("status=RUNNING,SUCCESS", job)
    assert not holds("raw.queue=BATCH", job)
    assert not holds("label.owner=anyone", job), "a missing value never equals"
    assert holds("label.owner!=anyone", job)
    assert holds("name=nightly?load", job)


def test_numbers_and_raw_values_compare_as_numbers():
    assert holds("priority>=5 priority<10", {"priority": 5})
    assert not holds("priority>5", {"priority": 5})
    assert holds("raw.exit_code>9", {"raw.exit_code": "12"}), "12 > 9 as numbers, not as text"
    assert holds("raw.exit_code=12.0", {"raw.exit_code": "12"})


def test_several_values_match_when_any_does():
    assert holds("environment=external", {"environment": ("process", "external")})
    assert not holds("environment!=external", {"environment": ("process", "external")})
    assert holds("environment!=python", {"environment": ("process", "external")})


def test_times_absolute_and_relative():
    assert holds("submitted>=-1h", {"submitted": NOW - 1800})
    assert not holds("submitted>=-1h", {"submitted": NOW - 7200})
    assert holds("submitted<2027-01-16", {"submitted": NOW})  # NOW is 2027-01-15T08:00Z
    assert not holds("submitted<2027-01-15", {"submitted": NOW})
    assert holds("submitted>=2027-01-15T07:59:00Z", {"submitted": NOW})
    assert not holds("submitted>=-1d", {}), "a job that has no time never matches"


@pytest.mark.parametrize("text, words", [
    ("colour=red", "position 0: unknown key 'colour'; use one of"),
    ("name=x state", "position 12: expected an operator"),
    ("status=SLEEPING", "position 7: status='SLEEPING' is not a status; use one of RUNNING, FAILURE"),
    ("status>RUNNING", "position 7: status takes = or != use one of"),
    ("priority=high", "position 9: priority takes a number"),
    ("submitted>=yesterday", "position 11: submitted takes a time such as"),
    ('name="open', "position 5: unterminated quote"),
    ("priority>1,2", "position 0: priority> takes one value"),
    ("name=", "position 5: expected a value"),
    ("status=UNSPECIFIED", "position 7: status=.UNSPECIFIED. is not a status"),
])
def test_bad_filters_name_the_position_and_the_fix(text, words):
    with pytest.raises(InvalidArgument, match="filter: " + words.replace("(", r"\(")) as err:
        parse_filter(text, FIELDS, NOW)
    assert err.value.field == "filter"


def test_order():
    assert parse_order("status,-submitted , label.team", FIELDS) == [
        ("status", False), ("submitted", True), ("label.team", False)]
    assert parse_order("", FIELDS) == []
    with pytest.raises(InvalidArgument, match="order_by: unknown key 'colour'"):
        parse_order("colour", FIELDS)
    with pytest.raises(InvalidArgument, match="order_by: empty key"):
        parse_order("status,,name", FIELDS)
