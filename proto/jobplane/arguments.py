"""Command-line argument types the CLI and the agent share (argparse `type=` callables)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(least: int, hint: str = "") -> Callable[[str], int]:
    """A whole number of at least `least`; `hint` follows the refusal (e.g. what 0 means)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}{hint}, got {value}")
        return value
    return parse


__all__ = ["whole_number"]
