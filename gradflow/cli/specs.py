"""Command-line arguments: cell specs (:mod:`gradflow.cells.specs`) and sizes (``n=3 m=2``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any

from gradflow.cells.specs import BUILTIN, parse_cell
from gradflow.errors import UsageError

__all__ = ["BUILTIN", "parse_cell", "parse_sizes", "positive"]


def parse_sizes(pairs: Sequence[str]) -> dict[str, int]:
    """``["n=3", "m=2"]`` as ``{"n": 3, "m": 2}``.

    Raises
    ------
    UsageError
        For a pair that is not ``name=positive integer``.

    Examples
    --------
    >>> parse_sizes(["n=3", "m=2"])
    {'n': 3, 'm': 2}
    """
    sizes = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if not key or not value.isdigit():
            raise UsageError(f"size {pair!r} must look like n=3")
        if int(value) < 1:
            raise UsageError(f"size {pair!r} must be a positive integer")
        sizes[key] = int(value)
    return sizes


def positive(kind: type, text: str) -> Any:
    """An argparse type: ``text`` as a positive finite ``kind`` (int or float).

    Raises
    ------
    argparse.ArgumentTypeError
        For text that is not a number of that kind, or one that is not positive and finite.

    Examples
    --------
    >>> positive(int, "3"), positive(float, "0.5")
    (3, 0.5)
    """
    try:
        value = kind(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {'an integer' if kind is int else 'a number'}"
        ) from err
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive and finite")
    return value
