"""Argument checks that every layer shares.

Layer-neutral, like :mod:`gradflow.errors` and :mod:`gradflow._io`: the cells,
the symbolic and numeric layers, the sweeps and the command line all ask the
same question of an argument that counts something, through :func:`is_int`,
and each raises its own error with its own message.
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["is_int"]


def is_int(value: Any) -> bool:
    """Whether ``value`` is an int or a NumPy integer, but not a bool.

    ``True`` is an ``int`` to Python, but an argument that counts steps, units
    or workers is never meant to be ``True``; NumPy integers (``np.int64(3)``,
    what indexing an integer array gives) count as ints. Callers convert with
    ``int(value)`` after the check.

    Examples
    --------
    >>> import numpy as np
    >>> [is_int(v) for v in (3, np.int64(3), True, np.bool_(True), 3.0, "3", None)]
    [True, True, False, False, False, False, False]
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
