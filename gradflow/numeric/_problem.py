"""The arrays of one numeric call, checked and bound to a compiled cell.

:func:`gradflow.numeric.simulate.prepare` builds a :class:`Problem`; the
simulation's :class:`~gradflow.numeric._values.Values`, the chain, BPTT and
the analyses read it. It sits below all of them, so that each imports it from
here and none imports another to learn what a problem is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradflow.cells.cell import Cell
from gradflow.numeric.compiled import CompiledCell

__all__ = ["Problem"]


@dataclass
class Problem:
    """A compiled cell with its parameters, inputs and initial values as arrays of one backend.

    Attributes
    ----------
    compiled : CompiledCell
    params : dict of str to array
    inputs : dict of str to list of arrays
        ``inputs[name][t - 1]`` is the input at time ``t``, shape (B, m).
    initial : dict of str to list of arrays
        Each state's history before the sequence starts (after it ends, for a
        backward state): ``initial[name][k]`` is the value ``k + 1`` steps
        outside, shape (B, n).
    T, B : int
    sequences : dict of str to array
        Each input's whole sequence, shape (T, B, m) (``inputs`` holds its rows).
    """

    compiled: CompiledCell
    params: dict[str, Any]
    inputs: dict[str, list[Any]]
    initial: dict[str, list[Any]]
    T: int
    B: int
    sequences: dict[str, Any]

    @property
    def cell(self) -> Cell:
        """The concrete cell."""
        return self.compiled.cell

    @property
    def xp(self) -> Any:
        """The array namespace."""
        return self.compiled.xp
