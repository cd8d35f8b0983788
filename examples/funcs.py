"""Example callables for Python tasks: `python = "jobplane.examples.funcs:square"`.

A task's `args` become the call's arguments (a table: keyword arguments; an array: positional);
sweep parameters arrive as keyword arguments; chunked tasks get their chunk as `items`.
The return value must be JSON-serializable: it becomes the task's result. A function with a
`ctx` parameter also gets the task's context: `ctx.checkpoint(state)`, `ctx.resume`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobplane.agent.checkpoint import TaskContext


def square(x: float) -> float:
    return x * x


def add(a: float, b: float) -> float:
    return a + b


def sum_items(items: Iterable[float]) -> float:
    return sum(items)


def sum_items_resumable(items: Iterable[float], ctx: TaskContext) -> float:
    """Like sum_items, with a checkpoint after each item: a continued attempt resumes there."""
    items = list(items)
    state = ctx.resume or {"done": 0, "total": 0}
    for i in range(state["done"], len(items)):
        state = {"done": i + 1, "total": state["total"] + items[i]}
        ctx.checkpoint(state)
    return state["total"]


def noop() -> None:
    """Does nothing, successfully: handy for checking that the plumbing works."""


def fail(message: str) -> None:
    """Always fails, with `message`: shows what a failed task looks like."""
    raise RuntimeError(message)
