"""Example callables for Python tasks: `python = "jobplane.examples.funcs:square"`.

A task's `args` become the call's arguments (a table: keyword arguments; an array: positional);
sweep parameters arrive as keyword arguments; chunked tasks get their chunk as `items`.
The return value must be JSON-serializable: it becomes the task's result.
"""

from __future__ import annotations

from collections.abc import Iterable


def square(x: float) -> float:
    return x * x


def add(a: float, b: float) -> float:
    return a + b


def sum_items(items: Iterable[float]) -> float:
    return sum(items)


def noop() -> None:
    """Does nothing, successfully: handy for checking that the plumbing works."""


def fail(message: str) -> None:
    """Always fails, with `message`: shows what a failed task looks like."""
    raise RuntimeError(message)
