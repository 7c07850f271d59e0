r"""Structured Jacobians of cell expressions, in numerator layout.

sympy's own matrix calculus cannot be trusted here (docs/architecture.md,
"Pitfalls that shaped the design"): it works in denominator layout, fails
beyond one step and can silently return 0. gradflow applies its own rules to the cell's expression
tree instead, one small rule per node type, and keeps the result structured:

.. math::
    \frac{\partial}{\partial v}\,\sigma(u) = \operatorname{diag}(\sigma'(u))\,
    \frac{\partial u}{\partial v}, \qquad
    \frac{\partial}{\partial v}(a \circ b) = \operatorname{diag}(b)\frac{\partial a}{\partial v}
    + \operatorname{diag}(a)\frac{\partial b}{\partial v}, \qquad
    \frac{\partial}{\partial v} W u = W \frac{\partial u}{\partial v}.

:math:`\partial y / \partial x` has shape ``(dim y, dim x)``. A matrix
parameter :math:`W` (:math:`p \times q`) is differentiated through
:math:`\operatorname{vec} W` (columns stacked):
:math:`\partial (A W u) / \partial \operatorname{vec} W = u^\top \otimes A`
(Magnus & Neudecker, *Matrix Differential Calculus*, 3rd ed., ch. 9).
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.kronecker import KroneckerProduct
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow._checks import is_int
from gradflow.cells.cell import Cell
from gradflow.cells.expr import Concat, Elementwise, Signal, t
from gradflow.errors import CellDefinitionError, NotDifferentiableError

__all__ = ["Diag", "local_jacobian", "step_jacobian", "total_jacobians"]


class Diag(MatrixExpr):  # type: ignore[misc]
    r""":math:`\operatorname{diag}(v)`, the square matrix with the vector ``v`` on its diagonal."""

    is_commutative = False

    def __new__(cls, vector: Any) -> Diag:
        """Build the node; ``vector`` must be a column vector expression."""
        if not isinstance(vector, MatrixExpr) or vector.shape[1] != 1:
            raise NotDifferentiableError(f"diag needs a column vector, got {vector}")
        return super().__new__(cls, vector)  # type: ignore[no-any-return]

    @property
    def vector(self) -> MatrixExpr:
        """The diagonal."""
        return self.args[0]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        """``(n, n)`` for a vector of length n."""
        return (self.vector.shape[0], self.vector.shape[0])

    def _entry(self, i: Any, j: Any, **kwargs: Any) -> sp.Expr:
        return sp.KroneckerDelta(i, j) * self.vector._entry(i, 0, **kwargs)

    def _sympystr(self, printer: Any) -> str:
        return f"diag({printer._print(self.vector)})"


def _dim(wrt: sp.Basic) -> sp.Expr:
    """Number of independent components of the variable (vec for matrices)."""
    if isinstance(wrt, MatrixExpr):
        rows, cols = wrt.shape
        return rows * cols  # type: ignore[no-any-return]
    return sp.S.One


def _is_zero(expr: sp.Basic) -> bool:
    return isinstance(expr, sp.ZeroMatrix)


def _mul(*factors: Any) -> sp.Basic:
    """A product with the identities dropped and zeros absorbed; factors flattened."""
    flat: list[Any] = []
    for factor in factors:
        flat.extend(factor.args if isinstance(factor, sp.MatMul) else [factor])
    rows = next(f.shape[0] for f in flat if isinstance(f, MatrixExpr))
    cols = next(f.shape[1] for f in reversed(flat) if isinstance(f, MatrixExpr))
    if any(_is_zero(f) for f in flat) or any(f == 0 for f in flat if not isinstance(f, MatrixExpr)):
        return sp.ZeroMatrix(rows, cols)
    matrices = [f for f in flat if isinstance(f, MatrixExpr)]
    scalars = [f for f in flat if not isinstance(f, MatrixExpr)]
    kept = [m for m in matrices if not isinstance(m, sp.Identity)] or matrices[:1]
    coefficient = sp.Mul(*scalars)
    if coefficient == 1:
        return kept[0] if len(kept) == 1 else sp.MatMul(*kept)
    return sp.MatMul(coefficient, *kept)


def _add(terms: list[sp.Basic], rows: sp.Expr, cols: sp.Expr) -> sp.Basic:
    kept = [term for term in terms if not _is_zero(term)]
    if not kept:
        return sp.ZeroMatrix(rows, cols)
    return kept[0] if len(kept) == 1 else sp.MatAdd(*kept)


def local_jacobian(expr: sp.Basic, wrt: sp.Basic) -> sp.Basic:
    r"""The partial derivative :math:`\partial^{+} \text{expr} / \partial \text{wrt}`, structured.

    Every other signal and parameter is held fixed: this is the Jacobian a
    single edge of the unrolled graph carries.

    Parameters
    ----------
    expr : sympy matrix expression
        A column vector of the cell language (shape (r, 1)).
    wrt : Signal, MatrixSymbol or Symbol
        A signal at a time, a vector or matrix parameter (matrices through
        vec, columns stacked), or a scalar parameter.

    Returns
    -------
    sympy matrix expression
        Shape (r, dim wrt); ``ZeroMatrix`` when ``expr`` does not read ``wrt``.

    Raises
    ------
    NotDifferentiableError
        For a node outside the cell language.

    Examples
    --------
    >>> import gradflow as gf
    >>> cell = gf.cells.elman()
    >>> print(local_jacobian(cell.updates["h"], cell.signal("h", gf.cells.t - 1)))
    diag(tanh'(W_h*h[t - 1] + W_x*x[t] + b))*W_h
    """
    cols = _dim(wrt)
    cache: dict[sp.Basic, sp.Basic] = {}

    def d(node: sp.Basic) -> sp.Basic:
        if node not in cache:
            cache[node] = rule(node)
        return cache[node]

    def rule(node: sp.Basic) -> sp.Basic:
        shape = node.shape
        zero = sp.ZeroMatrix(shape[0], cols)
        if node == wrt:
            if isinstance(node, MatrixExpr) and node.shape[1] == 1:
                return sp.Identity(shape[0])
            raise NotDifferentiableError(f"{node} stands alone where a vector is expected")
        if not node.has(wrt):
            return zero
        if isinstance(node, sp.MatAdd):
            return _add([d(arg) for arg in node.args], shape[0], cols)
        if isinstance(node, sp.MatMul):
            return matmul(node)
        if isinstance(node, sp.HadamardProduct):
            terms = []
            for i, factor in enumerate(node.args):
                others = node.args[:i] + node.args[i + 1 :]
                other = others[0] if len(others) == 1 else sp.HadamardProduct(*others)
                df = d(factor)
                terms.append(zero if _is_zero(df) else _mul(Diag(other), df))
            return _add(terms, shape[0], cols)
        if isinstance(node, Elementwise):
            du = d(node.arg)
            if _is_zero(du):
                return zero
            slope = node.activation.derivative.expression
            if slope.is_number:  # a linear activation: diag(c) = c I (the identity: I)
                return du if slope == 1 else _mul(slope, du)
            return _mul(Diag(Elementwise(node.activation.derivative, node.arg)), du)
        if isinstance(node, Concat):
            return sp.BlockMatrix([[d(part)] for part in node.parts])
        raise NotDifferentiableError(
            f"cannot differentiate {node} ({type(node).__name__}) with respect to {wrt}"
        )

    def matmul(node: sp.MatMul) -> sp.Basic:
        scalars = [a for a in node.args if not isinstance(a, MatrixExpr)]
        matrices = [a for a in node.args if isinstance(a, MatrixExpr)]
        coefficient = sp.Mul(*scalars)
        terms: list[sp.Basic] = []
        if not isinstance(wrt, MatrixExpr) and coefficient.has(wrt):
            # a scalar parameter in the coefficient: d(c M)/dα = (dc/dα) M, a column
            terms.append(_mul(sp.diff(coefficient, wrt), *matrices))
        for i, factor in enumerate(matrices):
            if not factor.has(wrt):
                continue
            before, after = matrices[:i], matrices[i + 1 :]
            if after:  # a matrix factor: only the parameter itself may depend on wrt
                if factor != wrt:
                    raise NotDifferentiableError(
                        f"cannot differentiate the matrix factor {factor} of {node} with respect to {wrt}"
                    )
                right = after[0] if len(after) == 1 else sp.MatMul(*after)
                left = _mul(*before) if before else sp.Identity(factor.shape[0])
                terms.append(_mul(coefficient, KroneckerProduct(sp.Transpose(right), left)))
            else:
                terms.append(_mul(coefficient, *before, d(factor)))
        return _add(terms, node.shape[0], cols)

    return d(expr)


def current_reads(expr: sp.Basic) -> list[Signal]:
    """Signals an expression reads at the current time (intermediates, outputs, updated states)."""
    return sorted(
        (s for s in expr.atoms(Signal) if s.time == t and s.role != "input"),
        key=lambda s: s.name,
    )


def total_jacobians(cell: Cell, wrt: sp.Basic) -> dict[tuple[str, str], sp.Basic]:
    r"""Within-step total Jacobians of every node of ``cell.order`` with respect to ``wrt``.

    The chain rule through the intermediates of one step:
    :math:`\frac{d N}{d v} = \frac{\partial^{+} N}{\partial v} + \sum_g
    \frac{\partial^{+} N}{\partial g^{(t)}} \frac{d g^{(t)}}{d v}` over the
    signals :math:`g^{(t)}` that node :math:`N` reads at the current time.

    Returns
    -------
    dict
        ``(kind, name) -> Jacobian`` for every node in ``cell.order``.
    """
    totals: dict[tuple[str, str], sp.Basic] = {}
    by_name = {name: (kind, name) for kind, name in cell.order}
    for node in cell.order:
        expr = cell.expression(*node)
        rows, cols = expr.shape[0], _dim(wrt)
        terms = [local_jacobian(expr, wrt)]
        for read in current_reads(expr):
            inner = totals[by_name[read.name]]
            if not _is_zero(inner):
                direct = local_jacobian(expr, read)
                if not _is_zero(direct):
                    terms.append(_mul(direct, inner))
        totals[node] = _add(terms, rows, cols)
    return totals


def step_jacobian(cell: Cell, state: str, wrt: str | None = None, lag: int = 1) -> sp.Basic:
    r"""The structured step Jacobian :math:`\partial s^{(t)} / \partial s'^{(t-\text{lag})}`.

    The total derivative of the new value of ``state`` with respect to the
    value of state ``wrt`` ``lag`` steps back (forward in time for a backward
    state), through every intermediate of the step; numerator layout.

    Parameters
    ----------
    cell : Cell
    state : str
        The state differentiated.
    wrt : str, optional
        The state differentiated against (default: ``state``).
    lag : int, default 1
        How many steps back; a skip cell has a second Jacobian at its delay.

    Returns
    -------
    sympy matrix expression
        Shape (size of state, size of wrt); a ``ZeroMatrix`` when there is no
        direct dependence at that lag.

    Raises
    ------
    CellDefinitionError
        For a state the cell lacks, or a lag that is not a positive int.

    Examples
    --------
    >>> import gradflow as gf
    >>> print(step_jacobian(gf.cells.lstm(forget_gate=False), "c"))
    I
    >>> print(step_jacobian(gf.cells.elman(), "h"))
    diag(tanh'(W_h*h[t - 1] + W_x*x[t] + b))*W_h
    """
    wrt = state if wrt is None else wrt
    for name in (state, wrt):
        if name not in cell.states:
            raise CellDefinitionError(
                f"cell {cell.name!r} has no state {name!r}; its states are {', '.join(cell.states)}"
            )
    if not is_int(lag) or lag < 1:
        raise CellDefinitionError(f"the lag of a step Jacobian must be an int >= 1, got {lag!r}")
    lag = int(lag)
    offset = lag if wrt in cell.backward else -lag
    totals = total_jacobians(cell, cell.signal(wrt, t + offset))
    return totals[("state", state)]
