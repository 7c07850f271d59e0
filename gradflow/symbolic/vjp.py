r"""Vector–Jacobian products: gradients pulled back through a cell's expression tree.

Given a cotangent :math:`g` (a column vector shaped like an expression), the
pullback to a variable :math:`v` is :math:`(\partial e/\partial v)^\top g`,
shaped like :math:`v` -- for a matrix parameter that is a sum of outer
products, the textbook form of a weight gradient:

.. math::
    \text{pullback of } g \text{ through } \sigma(W u) \text{ to } W
    = (\sigma'(W u) \circ g)\, u^\top .

One rule per node type, the reverse of :mod:`gradflow.symbolic.jacobian`'s:
sums pass :math:`g` on; :math:`W u` sends :math:`W^\top g` to :math:`u`
and :math:`g u^\top` to :math:`W`; :math:`a \circ b` sends :math:`b \circ g`
to :math:`a`; :math:`\sigma(u)` sends :math:`\sigma'(u) \circ g` to :math:`u`.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from gradflow.cells.cell import Cell
from gradflow.cells.expr import Concat, Elementwise
from gradflow.errors import NotDifferentiableError
from gradflow.symbolic.jacobian import current_reads
from gradflow.symbolic.nodes import Rows

__all__ = ["pullback", "step_pullback"]


def _product(factors: list[Any]) -> Any:
    kept = [f for f in factors if not isinstance(f, sp.Identity)]
    if not kept:
        return factors[0]
    return kept[0] if len(kept) == 1 else sp.MatMul(*kept)


def _transposed_product(factors: list[MatrixExpr]) -> list[Any]:
    return [sp.Transpose(f) for f in reversed(factors)]


def _zero_like(wrt: sp.Basic) -> sp.Basic:
    if isinstance(wrt, MatrixExpr):
        return sp.ZeroMatrix(*wrt.shape)
    return sp.ZeroMatrix(1, 1)


def _total(terms: list[sp.Basic], wrt: sp.Basic) -> sp.Basic:
    kept = [term for term in terms if not isinstance(term, sp.ZeroMatrix)]
    if not kept:
        return _zero_like(wrt)
    return kept[0] if len(kept) == 1 else sp.MatAdd(*kept)


def pullback(expr: sp.Basic, wrt: sp.Basic, cotangent: sp.Basic) -> sp.Basic:
    r"""The pullback :math:`(\partial^{+} \text{expr}/\partial \text{wrt})^\top g`, structured.

    Parameters
    ----------
    expr : sympy matrix expression
        A column vector of the cell language.
    wrt : Signal, MatrixSymbol or Symbol
        A signal at a time, a vector or matrix parameter, or a scalar
        parameter (whose pullback is a 1×1 matrix :math:`g^\top \partial e/\partial \alpha`).
    cotangent : sympy matrix expression
        :math:`g`, shaped like ``expr``.

    Returns
    -------
    sympy matrix expression
        Shaped like ``wrt`` (1×1 for a scalar); a ``ZeroMatrix`` when ``expr``
        does not read ``wrt``.

    Raises
    ------
    NotDifferentiableError
        For a node outside the cell language.

    Examples
    --------
    >>> import sympy as sp, gradflow as gf
    >>> cell = gf.cells.elman()
    >>> g = sp.MatrixSymbol("g", *cell.updates["h"].shape)
    >>> print(gf.export.to_text(pullback(cell.updates["h"], cell.parameter("W_h"), g)))
    (tanh'(W_h h^(t-1) + W_x x^(t) + b) ∘ g) h^(t-1)ᵀ
    """
    contributions: list[sp.Basic] = []

    def pull(node: sp.Basic, g: Any) -> None:
        if node == wrt:
            contributions.append(g)
            return
        if not node.has(wrt):
            return
        if isinstance(node, sp.MatAdd):
            for arg in node.args:
                pull(arg, g)
        elif isinstance(node, sp.MatMul):
            matmul(node, g)
        elif isinstance(node, sp.HadamardProduct):
            for i, factor in enumerate(node.args):
                if factor.has(wrt):
                    others = [*node.args[:i], *node.args[i + 1 :]]
                    pull(factor, sp.HadamardProduct(*others, g))
        elif isinstance(node, Elementwise):
            slope = node.activation.derivative.expression
            if slope.is_number:  # a linear activation: c g (the identity: g)
                pull(node.arg, g if slope == 1 else sp.MatMul(slope, g))
            else:
                pull(node.arg, sp.HadamardProduct(Elementwise(node.activation.derivative, node.arg), g))
        elif isinstance(node, Concat):
            offset: sp.Expr = sp.S.Zero
            for part in node.parts:
                size = part.shape[0]
                if part.has(wrt):
                    pull(part, Rows(g, offset, size))
                offset = offset + size
        else:
            raise NotDifferentiableError(
                f"cannot pull a gradient back through {node} ({type(node).__name__})"
            )

    def matmul(node: sp.MatMul, g: Any) -> None:
        scalars = [a for a in node.args if not isinstance(a, MatrixExpr)]
        matrices = [a for a in node.args if isinstance(a, MatrixExpr)]
        coefficient = sp.Mul(*scalars)
        if not isinstance(wrt, MatrixExpr) and coefficient.has(wrt):
            # a scalar parameter: g^T (dc/dα) M, a 1x1 matrix
            contributions.append(sp.MatMul(sp.diff(coefficient, wrt), sp.Transpose(g), _product(matrices)))
        scaled = g if coefficient == 1 else sp.MatMul(coefficient, g)
        for i, factor in enumerate(matrices):
            if not factor.has(wrt):
                continue
            before, after = matrices[:i], matrices[i + 1 :]
            left = _product([*_transposed_product(before), scaled]) if before else scaled
            if after:  # a matrix factor: only the parameter itself may read wrt
                if factor != wrt:
                    raise NotDifferentiableError(
                        f"cannot pull a gradient back through the matrix factor {factor} of {node}"
                    )
                contributions.append(sp.MatMul(left, sp.Transpose(_product(after))))
            else:
                pull(factor, left)

    pull(expr, cotangent)
    return _total(contributions, wrt)


def step_pullback(cell: Cell, cotangents: dict[str, sp.Basic], wrt: sp.Basic) -> sp.Basic:
    r"""Pull cotangents of the new states back to ``wrt`` through one whole step.

    Reverse mode through :attr:`Cell.order`: each node's cotangent is the sum
    of what the nodes reading it at the current time send back, so gates
    shared by several updates are counted once per use.

    Parameters
    ----------
    cell : Cell
    cotangents : dict of str to matrix expression
        Cotangents of the new states (or outputs) :math:`g_s`, by name; a
        missing name means zero.
    wrt : Signal, MatrixSymbol or Symbol
        What to pull back to (a previous state, an input, a parameter).

    Returns
    -------
    sympy matrix expression
        :math:`\sum_s (d s^{(t)}/d\,\text{wrt})^\top g_s`, shaped like ``wrt``.
    """
    pending: dict[str, list[sp.Basic]] = {name: [g] for name, g in cotangents.items()}
    found: list[sp.Basic] = []
    for kind, name in reversed(cell.order):
        terms = [g for g in pending.pop(name, []) if not isinstance(g, sp.ZeroMatrix)]
        if not terms:
            continue
        g = terms[0] if len(terms) == 1 else sp.MatAdd(*terms)
        expr = cell.expression(kind, name)
        direct = pullback(expr, wrt, g)
        if not isinstance(direct, sp.ZeroMatrix):
            found.append(direct)
        for read in current_reads(expr):
            back = pullback(expr, read, g)
            if not isinstance(back, sp.ZeroMatrix):
                pending.setdefault(read.name, []).append(back)
    return _total(found, wrt)
