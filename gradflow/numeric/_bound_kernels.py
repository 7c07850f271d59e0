r"""Lowering a symbolic step bound to an array kernel: norms, per-unit maxima, rates, block bounds.

Private to :mod:`gradflow.numeric.analysis`. A bound of
:func:`~gradflow.symbolic.bounds.chain_bound` is a scalar expression in

* :class:`~gradflow.symbolic.nodes.Norm` -- of a parameter matrix (``matrix_norm``), of a
  vector or a diagonal (the largest absolute entry), of the small matrix of a block
  Jacobian's bounds (its spectral norm, one per sequence of the batch);
* :class:`~gradflow.symbolic.bound_nodes.UnitMax` -- the largest over the units of a
  per-unit expression, whose :class:`~gradflow.symbolic.bound_nodes.Unit` atoms are the
  simulated vectors (laid out ``(..., n)``) and whose scalar factors are broadcast along
  the units;
* :class:`~gradflow.symbolic.bound_nodes.UnitRate` and
  :class:`~gradflow.symbolic.bound_nodes.BlockBound` -- names, computed once from their
  definitions;

and scalar parameters. The kernel ``f(xp, P, R, dtype)`` returns one value per
sequence, ``(B,)`` (or a scalar when the bound reads no signal).
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from gradflow.cells.cell import Cell
from gradflow.errors import GradflowError
from gradflow.numeric.lower import Emitter
from gradflow.numeric.scalar import ScalarPrinter
from gradflow.symbolic.bound_nodes import BlockBound, Unit, UnitMax, UnitRate
from gradflow.symbolic.jacobian import Diag
from gradflow.symbolic.nodes import Norm

__all__ = ["lower_bound"]


def _matrix_norm(xp: Any, rows: list[list[Any]], dtype: Any) -> Any:
    """The spectral norm of a small matrix whose entries are batches ``(...,)`` (or scalars)."""
    entries = xp.broadcast_arrays(*(xp.asarray(entry, dtype=dtype) for row in rows for entry in row))
    batch = tuple(entries[0].shape)
    matrix = xp.reshape(xp.stack(entries, axis=-1), (*batch, len(rows), len(rows[0])))
    return xp.linalg.matrix_norm(matrix, ord=2)


def _along_units(xp: Any, value: Any, dtype: Any) -> Any:
    """A value per sequence ``(...,)`` as ``(..., 1)``, to broadcast along the units."""
    return xp.expand_dims(xp.asarray(value, dtype=dtype), axis=-1)


def _leaves(expr: sp.Basic) -> list[sp.Basic]:
    """The operands of the scalar arithmetic of ``expr``, in a fixed order."""
    if isinstance(expr, sp.Add | sp.Mul | sp.Pow | sp.Abs):
        found: list[sp.Basic] = []
        for arg in expr.args:
            found += [leaf for leaf in _leaves(arg) if leaf not in found]
        return found
    return [expr]


class _BoundLowering:
    """One kernel: an :class:`Emitter` and the names of the nodes computed so far."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        # no value forms (tanh' = 1 - tanh^2 is exactly 0 in saturation): the bound must not fall below the
        # chain, whose kernels compute every derivative in its stable form
        self.emitter = Emitter(set(cell.params), value_forms=False)
        self.emitter.globals.update(_matrix_norm=_matrix_norm, _along_units=_along_units)
        self.scalars: dict[sp.Basic, str] = {}
        self.units: dict[sp.Basic, str] = {}

    def _names(self, expr: sp.Expr, node_code: Any) -> dict[sp.Basic, str]:
        names: dict[sp.Basic, str] = {}
        for leaf in _leaves(expr):
            if leaf.is_number:
                continue
            if isinstance(leaf, sp.Symbol) and leaf.name in self.cell.params:
                names[leaf] = f"P[{leaf.name!r}]"
                continue
            code = node_code(leaf)
            if code is None:
                raise GradflowError(
                    f"cannot evaluate the bound {expr} numerically: {leaf} is neither a norm, a maximum over "
                    "the units nor a parameter of the cell"
                )
            names[leaf] = code
        return names

    def scalar(self, expr: sp.Expr) -> str:
        """Source of a scalar bound expression, one value per sequence."""
        return ScalarPrinter(self._names(expr, self._scalar_node)).print(expr)

    def _scalar_node(self, node: sp.Basic) -> str | None:
        if node in self.scalars:
            return self.scalars[node]
        if isinstance(node, Norm):
            code = self._norm(node)
        elif isinstance(node, UnitMax):
            code = f"xp.max({self.per_unit(node.expr)}, axis=-1)"
        elif isinstance(node, BlockBound):
            code = self.scalar(node.definition)
        else:
            return None
        self.scalars[node] = self.emitter.assign(code)
        return self.scalars[node]

    def per_unit(self, expr: sp.Expr) -> str:
        """Source of a per-unit expression, laid out ``(..., n)``."""
        return ScalarPrinter(self._names(expr, self._unit_node)).print(expr)

    def _unit_node(self, node: sp.Basic) -> str | None:
        if isinstance(node, Unit):
            return self.emitter.vector(node.vector)
        if isinstance(node, UnitRate):
            if node not in self.units:
                self.units[node] = self.emitter.assign(self.per_unit(node.definition))
            return self.units[node]
        scalar = self._scalar_node(node)
        return None if scalar is None else f"_along_units(xp, {scalar}, dtype)"

    def _norm(self, norm: Norm) -> str:
        arg, p = norm.arg, norm.p
        if isinstance(arg, Diag) and p == 2:
            return f"xp.max(xp.abs({self.emitter.vector(arg.vector)}), axis=-1)"
        if isinstance(arg, sp.Identity):
            return "1.0"
        if isinstance(arg, sp.ImmutableMatrix) and p == 2:  # the matrix of a block Jacobian's bounds
            rows = [[self.scalar(arg[r, s]) for s in range(arg.shape[1])] for r in range(arg.shape[0])]
            return f"_matrix_norm(xp, [{', '.join('[' + ', '.join(row) + ']' for row in rows)}], dtype)"
        if p == sp.oo and arg.shape[1] == 1:
            return f"xp.max(xp.abs({self.emitter.vector(arg)}), axis=-1)"
        if isinstance(arg, sp.MatrixSymbol) and p == 2:
            return f"xp.linalg.matrix_norm(P[{arg.name!r}], ord=2)"
        raise GradflowError(f"cannot evaluate the norm {norm} numerically")


def lower_bound(cell: Cell, expr: sp.Expr) -> tuple[Any, frozenset[tuple[str, int]]]:
    """A kernel ``f(xp, P, R, dtype)`` of a scalar bound expression, and the signals it reads.

    Raises
    ------
    GradflowError
        For a node or a norm that has no numeric form here.
    """
    lowering = _BoundLowering(cell)
    code = lowering.scalar(expr)
    _, function = lowering.emitter.function("bound", "xp, P, R, dtype", code)
    return function, frozenset(lowering.emitter.reads)
