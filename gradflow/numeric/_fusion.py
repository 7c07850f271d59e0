r"""Products of several matrices with one signal, formed as one product per step.

An LSTM's four gates each multiply :math:`h^{(t-1)}` by their own matrix:
:math:`W_f h, W_i h, W_o h, W_c h`. Formed separately, that is four small
matrix products per step; formed together, :math:`[W_f; W_i; W_o; W_c]\, h`
is one product of four times the width, which BLAS (and a GPU) run closer to
their peak. This module finds such groups in a sweep of the schedule: every
subtree :math:`W s` (a matrix parameter times a signal read) of the sweep's
nodes, grouped by the read, when the read's value is known before the step
starts (a node of an earlier sweep, or one read at an earlier time of this
sweep's direction) and the group has at least two matrices. The forward
kernels then receive those subtrees' values instead of computing them (see
:func:`gradflow.numeric.compiled.compile`). The pullbacks are fused the other
way round by :mod:`gradflow.numeric.bptt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Signal

__all__ = ["Fused", "fusable"]


@dataclass(frozen=True)
class Fused:
    """One product per step: the read ``read`` times the stacked ``params`` (rows ``spans`` each)."""

    read: tuple[str, int]
    params: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]


def _product(cell: Cell, node: sp.Basic) -> tuple[str, Signal] | None:
    """``(W, s)`` for a subtree :math:`W s`, a matrix parameter times a signal read."""
    if not isinstance(node, sp.MatMul) or len(node.args) != 2:
        return None
    matrix, signal = node.args
    if isinstance(matrix, sp.MatrixSymbol) and matrix.name in cell.params and isinstance(signal, Signal):
        return matrix.name, signal
    return None


def fusable(
    cell: Cell, sweeps: Any
) -> tuple[tuple[tuple[Fused, ...], ...], dict[str, list[tuple[sp.Basic, int, int]]]]:
    """The fused products of each sweep, and for each node the subtrees they give it.

    Returns
    -------
    (tuple, dict)
        Per sweep, its :class:`Fused` groups; and node name -> ``[(subtree, group, position)]``:
        the subtree's value is the ``position``-th block of group ``group`` of the node's sweep.

    Examples
    --------
    >>> import gradflow as gf
    >>> from gradflow.numeric.compiled import schedule
    >>> cell = gf.cells.lstm().with_sizes(n=3, m=2)
    >>> groups, given = fusable(cell, schedule(cell))
    >>> groups[0][0].read, groups[0][0].params
    (('h', -1), ('W_c', 'W_f', 'W_i', 'W_o'))
    >>> sorted(given)
    ['c_tilde', 'f', 'i', 'o']
    """
    groups: list[tuple[Fused, ...]] = []
    given: dict[str, list[tuple[sp.Basic, int, int]]] = {}
    for sweep in sweeps:
        own = {name for _, name in sweep.nodes}
        found: dict[tuple[str, int], dict[str, list[tuple[str, sp.Basic]]]] = {}
        for kind, name in sweep.nodes:
            for node in sorted(cell.expression(kind, name).atoms(sp.MatMul), key=sp.default_sort_key):
                product = _product(cell, node)
                if product is None:
                    continue
                param, signal = product
                lag = int(signal.lag)
                if signal.role == "input" and lag == 0:
                    continue  # hoisted out of the time loop already
                if signal.name in own and lag * sweep.direction >= 0:
                    continue  # computed within this step: not known before it starts
                found.setdefault((signal.name, lag), {}).setdefault(param, []).append((name, node))
        fused: list[Fused] = []
        for read, by_param in sorted(found.items()):
            if len(by_param) < 2:
                continue
            params = tuple(sorted(by_param))
            spans, start = [], 0
            for position, param in enumerate(params):
                rows = int(cell.params[param][0])
                spans.append((start, start + rows))
                start += rows
                for name, node in by_param[param]:
                    given.setdefault(name, []).append((node, len(fused), position))
            fused.append(Fused(read, params, tuple(spans)))
        groups.append(tuple(fused))
    return tuple(groups), given
