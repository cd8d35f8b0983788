"""The hand-written Prometheus exposition reads back, through Prometheus's own parser, as
what was counted: label values with quotes and newlines, cumulative buckets, +Inf."""

from prometheus_client.parser import text_string_to_metric_families

from jobplane.prometheus import Counter, Histogram, counter, gauge, histogram


def parsed(lines: list[str]) -> dict:
    text = "\n".join(lines) + "\n"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_counter_labels_are_escaped_and_read_back():
    c = Counter("jobplane_things_total", "Things.", ("method", "code"))
    c.inc('/a"b\\c\nd', "OK")
    c.inc('/a"b\\c\nd', "OK", by=2)
    c.inc("/x", "NOT_FOUND")
    assert parsed(counter(c)) == {("jobplane_things_total", (("code", "OK"), ("method", '/a"b\\c\nd'))): 3.0,
                                  ("jobplane_things_total", (("code", "NOT_FOUND"), ("method", "/x"))): 1.0}


def test_an_unlabelled_counter_starts_at_zero():
    assert parsed(counter(Counter("jobplane_events_total", "Events."))) == {("jobplane_events_total", ()): 0.0}


def test_histogram_buckets_are_cumulative_with_sum_and_count():
    h = Histogram("jobplane_commit_seconds", "Commits.", (0.01, 0.1, 1.0))
    for v in (0.005, 0.01, 0.05, 0.5, 7.0):
        h.observe(v)
    got = parsed(histogram(h))
    buckets = {dict(labels)["le"]: v for (name, labels), v in got.items() if name.endswith("_bucket")}
    assert buckets == {"0.01": 2, "0.1": 3, "1": 4, "+Inf": 5}
    assert got[("jobplane_commit_seconds_count", ())] == 5
    assert abs(got[("jobplane_commit_seconds_sum", ())] - 7.565) < 1e-9


def test_gauges_by_label():
    lines = gauge("jobplane_jobs", "Jobs.", {("SUCCESS",): 3, ("FAILURE",): 0}, "status")
    assert parsed(lines) == {("jobplane_jobs", (("status", "SUCCESS"),)): 3.0,
                             ("jobplane_jobs", (("status", "FAILURE"),)): 0.0}
