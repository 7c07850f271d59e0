r"""Explicit mode: a cell with integer sizes expanded into its components.

Every structured result of the symbolic layer can be checked against sympy's
componentwise differentiation of these expansions (the first referee of CONTRIBUTING.md).
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.kronecker import KroneckerProduct, kronecker_product
from sympy.matrices.expressions.matexpr import MatrixElement, MatrixExpr

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Concat, Elementwise, Signal, t
from gradflow.errors import CellDefinitionError, NotDifferentiableError
from gradflow.symbolic.jacobian import Diag
from gradflow.symbolic.nodes import Adjoint, Chain, MatSum, Rows

__all__ = ["explicit", "explicit_step"]


def _require_concrete(cell: Cell) -> None:
    if not cell.is_concrete:
        sizes = ", ".join(f"{s}=2" for s in cell.size_symbols)
        raise CellDefinitionError(
            f"explicit mode needs integer sizes; cell {cell.name!r} still has "
            f"{', '.join(map(str, cell.size_symbols))}: use cell.with_sizes({sizes})"
        )


def explicit_step(cell: Cell) -> dict[tuple[str, str], sp.ImmutableMatrix]:
    r"""Every node of one step, expanded into components of earlier states, inputs and parameters.

    Intermediates and states read at the current time are replaced by their
    own expansions, so each result depends only on :math:`s^{(t-k)}` (k ≥ 1),
    :math:`x^{(t)}` and the parameters' entries.

    Raises
    ------
    CellDefinitionError
        If the cell still has symbolic sizes.

    Examples
    --------
    >>> import gradflow as gf
    >>> step = explicit_step(gf.cells.elman(n=1, m=1))
    >>> step[("state", "h")]
    Matrix([[tanh(W_h[0, 0]*h[t - 1][0, 0] + W_x[0, 0]*x[t][0, 0] + b[0, 0])]])
    """
    _require_concrete(cell)
    done: dict[tuple[str, str], sp.ImmutableMatrix] = {}
    by_name = {name: (kind, name) for kind, name in cell.order}
    for node in cell.order:
        done[node] = explicit(cell.expression(*node), cell, done, by_name)
    return done


def explicit(
    expr: sp.Basic,
    cell: Cell,
    step: dict[tuple[str, str], sp.ImmutableMatrix] | None = None,
    by_name: dict[str, tuple[str, str]] | None = None,
    values: dict[sp.Basic, sp.Basic] | None = None,
) -> sp.ImmutableMatrix:
    """Expand a matrix expression of ``cell`` into an explicit matrix of components.

    ``values`` maps leaf components (entries of signals, parameters,
    adjoints, and scalar parameters) to numbers or expressions as they are
    read, so a numeric evaluation never builds the symbolic expansion.

    The tree is evaluated node by node with explicit matrix arithmetic
    (much faster than sympy's generic ``as_explicit`` on products). Signals
    read at the current time (intermediates, updated states) are replaced by
    their expansions from ``step`` (computed when not given).

    Raises
    ------
    CellDefinitionError
        If the cell still has symbolic sizes.
    NotDifferentiableError
        For a node explicit mode does not know.
    """
    _require_concrete(cell)
    if step is None:
        step = explicit_step(cell)
    if by_name is None:
        by_name = {name: (kind, name) for kind, name in cell.order}
    known = step
    names = by_name
    lookup = values or {}

    def leaves(node: sp.Basic) -> sp.Matrix:
        rows, cols = (int(n) for n in node.shape)
        return sp.Matrix(
            rows, cols, lambda a, b: lookup.get(MatrixElement(node, a, b), MatrixElement(node, a, b))
        )

    def signal(node: Signal) -> sp.Matrix:
        if node.time == t and node.role != "input":
            return sp.Matrix(known[names[node.name]])
        return leaves(node)

    def value(node: sp.Basic) -> Any:
        if not isinstance(node, MatrixExpr):
            return node.xreplace(lookup) if lookup else node  # a scalar
        if isinstance(node, Signal):
            return signal(node)
        if isinstance(node, sp.MatrixSymbol):
            return leaves(node)
        if isinstance(node, sp.MatAdd):
            parts = [value(a) for a in node.args]
            total = parts[0]
            for part in parts[1:]:
                total = total + part
            return total
        if isinstance(node, sp.MatMul):
            result: Any = sp.S.One
            for arg in node.args:
                result = result * value(arg)
            return result
        if isinstance(node, sp.HadamardProduct):
            parts = [value(a) for a in node.args]
            result = parts[0]
            for part in parts[1:]:
                result = result.multiply_elementwise(part)
            return result
        if isinstance(node, Elementwise):
            inner = value(node.arg).applyfunc(node.activation)
            return inner.evalf(30) if lookup else inner
        if isinstance(node, Diag):
            return sp.diag(*value(node.vector))
        if isinstance(node, Concat):
            return sp.Matrix.vstack(*(value(p) for p in node.parts))
        if isinstance(node, sp.BlockMatrix):
            rows = [sp.Matrix.hstack(*(value(b) for b in row)) for row in node.blocks.tolist()]
            return sp.Matrix.vstack(*rows)
        if isinstance(node, KroneckerProduct):
            return kronecker_product(*(value(a) for a in node.args))
        if isinstance(node, sp.Transpose):
            return value(node.arg).T
        if isinstance(node, Rows):
            start, size = int(node.args[1]), int(node.args[2])
            return value(node.vector)[start : start + size, :]
        if isinstance(node, Adjoint):
            return leaves(node)
        if isinstance(node, Chain | MatSum):
            expanded = node.doit()
            if expanded == node:
                raise NotDifferentiableError(f"explicit mode needs integer bounds in {node}")
            return value(expanded)
        if isinstance(node, sp.MatPow):
            return value(node.base) ** int(node.exp)
        if isinstance(node, sp.Identity | sp.ZeroMatrix | sp.OneMatrix):
            return sp.Matrix(node.as_explicit())
        raise NotDifferentiableError(f"explicit mode cannot expand {node} ({type(node).__name__})")

    return sp.ImmutableMatrix(value(expr))
