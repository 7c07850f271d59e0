"""Command-line arguments: cell specs (:mod:`gradflow.cells.specs`) and sizes (``n=3 m=2``)."""

from __future__ import annotations

from collections.abc import Sequence

from gradflow.cells.specs import BUILTIN, parse_cell
from gradflow.errors import UsageError

__all__ = ["BUILTIN", "parse_cell", "parse_sizes"]


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
