import pytest

from jobplane.server.domain.filters import Term, parse_filter
from jobplane.server.domain.model import JobState
from jobplane.server.errors import InvalidArgument

KEYS = {"state": JobState, "name": None, "label.*": None}


def test_terms_and_prefix():
    assert parse_filter("state=running name=nightly*  label.gpu=true", KEYS) == [
        Term("state", "RUNNING", False), Term("name", "nightly", True), Term("label.gpu", "true", False)]


@pytest.mark.parametrize("text, words", [
    ("colour=red", "unknown key 'colour' at position 0"),
    ("name=x state", "expected key=value at position 7"),
    ("state=SLEEPING", "use one of QUEUED, RUNNING"),
])
def test_bad_filters_point_at_the_position(text, words):
    with pytest.raises(InvalidArgument, match=words):
        parse_filter(text, KEYS)
