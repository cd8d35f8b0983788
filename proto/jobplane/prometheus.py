"""Counters, histograms and the Prometheus text exposition format (version 0.0.4), written by
hand: a few lines per metric, standard library only. Shared by the server's `/metrics` and the
agent's (`--metrics`): the agent never imports the server."""

from __future__ import annotations

import bisect
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LabelValues = tuple[str, ...]


class Counter:
    """A monotonically increasing count per label values."""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labels = name, help_text, labels
        self.values: defaultdict[LabelValues, float] = defaultdict(float)

    def inc(self, *label_values: str, by: float = 1) -> None:
        self.values[label_values] += by


class Histogram:
    """Observations counted into cumulative buckets (upper bounds), with their sum and count."""

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * (len(buckets) + 1)  # the last is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1


def gauge(name: str, help_text: str, values: dict[tuple[str, ...], float], *labels: str) -> list[str]:
    """A gauge's lines: its value per label values (read when scraped)."""
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge",
            *(f"{name}{_labels(labels, key)} {_number(v)}" for key, v in values.items())]


def counter(c: Counter) -> list[str]:
    lines = [f"# HELP {c.name} {c.help}", f"# TYPE {c.name} counter"]
    values = dict(c.values) if c.values or c.labels else {(): 0.0}
    lines += [f"{c.name}{_labels(c.labels, key)} {_number(v)}" for key, v in sorted(values.items())]
    return lines


def histogram(h: Histogram) -> list[str]:
    lines = [f"# HELP {h.name} {h.help}", f"# TYPE {h.name} histogram"]
    total = 0
    for bound, n in zip([*h.buckets, float("inf")], h.counts):
        total += n
        lines.append(f'{h.name}_bucket{{le="{_number(bound)}"}} {total}')
    lines += [f"{h.name}_sum {_number(h.sum)}", f"{h.name}_count {h.count}"]
    return lines


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values)) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))
